"""Named, versioned dataset suites written to a cache folder (`python -m data_gen` or `nar generate`)."""

from data_gen.suites import SUITES, Split, build_suite

__all__ = ["SUITES", "Split", "build_suite"]
