"""The reading side: what turns a results document into what people read and judge.

Everything here reads a results file and nothing else: results/README.md (one screen) and
report.html beside it (every section), written from the sections of sections/ (one module a
section, prose in prose/, rendered by as_markdown.py and html.py, assembled by report.py);
the headline and its verdicts (headline, verdicts); the plots; and the comparison of two
results files (compare: what `tapbench compare`, the run-to-run table and the gate's verdict
use). None of it imports methods/ or the code that measures (bench/run/runner.py, bench/sweep.py
...), even indirectly (tests/test_report.py checks it): what a method is comes from the
document's own `methods` section, so a stored sweep can be re-read after the code has moved on.
The one exception is bench/kernels, imported only when results/kernels.json is stored
(kernel_matrix.py says why).
"""
