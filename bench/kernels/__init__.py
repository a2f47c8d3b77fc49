"""Kernel dependence, measured: every technique on Debian kernels booted with virtme-ng and
on the running kernel (`tapbench kernels`, results/kernels.json).

  catalog   which kernels, fetched and unpacked into a cache of tapbench's own
  vm        booting one with vng, what the guest sees, KVM or software emulation
  cells     one kernel's column, run where that kernel runs (`python -m bench.kernels.cells`)
  features  the kernel features probed for real (`python -m bench.kernels.features`)
  matrix    the results file, typed and versioned, and the verdicts on the article's claims
  section   the document's "Kernel dependence" section
  command   the command line
"""
from bench.kernels.matrix import judge_kernel_claims  # noqa: F401  (the report's entry points)
from bench.kernels.section import code_changed_since, kernel_section  # noqa: F401
