"""The sweep's probes: measurements made once per technique variant (or once per machine),
outside its groups of rows. Importing this package imports every module in it; each declares
PROBE (bench/probes/_probe.py: its name, its results section, which techniques it applies to)
and run(lineup, context) -> its section's entries. A new probe is one file here, plus its
section on the reading side (bench/document/)."""
import importlib
import pkgutil

MODULES = sorted((importlib.import_module(f"{__name__}.{module.name}") for module in pkgutil.iter_modules(__path__)
                  if not module.name.startswith("_")), key=lambda module: module.PROBE.order)
PROBES = [module.PROBE for module in MODULES]
