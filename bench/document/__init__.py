"""The reading side: what turns a results document into what people read and judge.

Everything here reads a results file and nothing else: the tables and sentences of
results/README.md (report, headline), its plots, and the comparison of two results files
(compare: what `tapbench compare`, the run-to-run table and the gate's verdict use). None of it
imports methods/ or the code that measures (bench/runner.py, bench/sweep.py ...), even
indirectly (tests/test_document_reads_only.py checks it): what a method is comes from the
document's own `methods` section, so a stored sweep can be re-read after the code has moved on.
"""
