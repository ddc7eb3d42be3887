"""``python -m genbench.schemas [NAME]``: list the shipped schemas, or print one."""

import argparse
import json
import os
import sys

from ..errors import GenbenchError
from . import SCHEMAS, load_schema


def main(argv: list[str] | None = None) -> int:
    """List the shipped schema names, or print the schema ``NAME``; an unknown name is one line, exit 1."""
    parser = argparse.ArgumentParser(prog="python -m genbench.schemas",
                                     description="List the JSON Schemas genbench ships, or print one.")
    parser.add_argument("name", nargs="?", metavar="NAME", help="a schema to print, e.g. genbench.run/2")
    args = parser.parse_args(argv)
    if args.name is None:
        print("\n".join(sorted(SCHEMAS)))
        return 0
    try:
        print(json.dumps(load_schema(args.name), indent=2))
    except GenbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: what was read is all that was wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
