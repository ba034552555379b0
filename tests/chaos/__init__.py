"""Chaos suite: the split pipeline on the real local services while workers die and services go away."""
