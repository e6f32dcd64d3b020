"""Importing this module registers every action executor of the catalog."""

from . import builtin, http, jobs, kubernetes, pods, postgres, redis  # noqa: F401
from .base import EXECUTORS

__all__ = ["EXECUTORS"]
