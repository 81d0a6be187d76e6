"""Session settings for the test suite.

XLA's backend (LLVM) optimisations are off for every program the tests compile, in this process and in every process
the tests start (the flag travels in XLA_FLAGS, set before JAX initialises its backend). Most of the suite's time is
compilation, which this roughly halves on CPU; the tests check values, which these optimisations do not change. Users,
benchmarks and `make demo` compile with XLA's defaults.
"""

import os

FAST_COMPILE = "--xla_backend_optimization_level=0"
if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
