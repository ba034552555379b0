"""Adapters to what lives outside the process: the object store (S3, R2, files), the Redis result
cache, the MongoDB results store and the compacted rules topic.

Each retries infrastructure trouble itself (tenacity, botocore's standard retry mode) and raises
typed errors (``mugpos.core.errors``) for what retrying cannot fix.
"""
