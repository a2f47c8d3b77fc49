"""`tapbench cleanup`: what a killed run left behind, removed and named."""
from __future__ import annotations

from bench.run import cleanup

def add_parser(commands) -> None:
    commands.add_parser("cleanup", help="remove what a killed run left behind, and say what").set_defaults(handler=run)


def run(args) -> int:
    if cleanup.clean() == 0:
        print("cleanup: nothing left behind")
    return 0
