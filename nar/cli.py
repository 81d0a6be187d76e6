"""The `nar` command. `nar generate SUITE ...` writes a dataset suite (same as `python -m data_gen`)."""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"generate": "write a dataset suite to a cache folder (see `nar generate --help`)"}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        usage = "\n".join(f"  {name:<10} {text}" for name, text in commands.items())
        print(f"usage: nar COMMAND [ARGS]\n\ncommands:\n{usage}", file=sys.stderr if argv else sys.stdout)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    from data_gen.__main__ import main as generate

    return generate(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
