"""Observation techniques. Importing this package imports every module in it, and each backend
registers itself in REGISTRY by subclassing Observer: a new technique is one new file here."""
import importlib
import pkgutil

from methods.base import REGISTRY, Observer, ObserverError, ObserverUnavailable

from methods.protocol import MoveEvent

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "MoveEvent", "Observer", "ObserverError", "ObserverUnavailable"]
