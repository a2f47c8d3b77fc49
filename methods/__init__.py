"""Observation techniques. Importing this package registers every backend in REGISTRY."""
from methods.base import REGISTRY, MoveEvent, Observer, ObserverError, ObserverUnavailable
from methods import bpftrace, ebpf, none, preload, ptrace, strace  # noqa: F401  (registration by subclassing)

__all__ = ["REGISTRY", "MoveEvent", "Observer", "ObserverError", "ObserverUnavailable"]
