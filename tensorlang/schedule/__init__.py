"""Schedules: the *how* of a computation (stages, iteration-variable relations, bounds)."""
from .bound import infer_bounds  # noqa: F401
from .schedule import Fuse, Schedule, Split, Stage, create_schedule, thread_axis  # noqa: F401
