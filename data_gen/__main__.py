"""`python -m data_gen SUITE [--cache DIR] [--algorithms a,b] [--workers N]`: write a suite to the cache."""

from __future__ import annotations

import argparse
import json
import sys

from data_gen.suites import ALGORITHMS, SUITES, build_suite


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="data_gen", description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--cache", default="cache", help="cache folder (default: ./cache)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated subset")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of progress lines")
    args = parser.parse_args(argv)
    algorithms = [a for a in args.algorithms.split(",") if a]
    try:
        summary = build_suite(args.suite, args.cache, algorithms, args.workers,
                              log=(lambda _: None) if args.json else print)
    except ValueError as e:
        parser.error(str(e))
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
