"""`tapbench compare`: the differences between two results files."""
from __future__ import annotations

import sys

from bench.document import compare as compare_module
from bench.document.rows import Document

def add_parser(commands) -> None:
    compare_parser = commands.add_parser("compare", help="table of differences between two results files")
    compare_parser.add_argument("old")
    compare_parser.add_argument("new")
    compare_parser.add_argument("--threshold", type=float, default=0.10,
                                help="relative growth of the slowdown that counts (default 0.10)")
    compare_parser.add_argument("--alpha", type=float, default=0.01,
                                help="Mann-Whitney U significance level, one-sided (default 0.01)")
    compare_parser.set_defaults(handler=run)


def run(args) -> int:
    changes, warnings = compare_module.compare_documents(Document.load(args.old), Document.load(args.new),
                                                         args.threshold, args.alpha)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(compare_module.changes_table(changes))
    return 0
