"""Autoscaling of the GPU detect workers, without Faust.

``signals`` reads the detection group's lag from the broker, ``policy`` decides the worker count
(pure), ``baseline`` is a KEDA-style comparison, ``simulator`` replays load traces through both,
``scalers`` apply a decision (local processes, Kubernetes, none), ``cost`` turns worker time into
GPU-hours and $/1,000 images, and ``loop`` ties them together for the control agent.
"""
