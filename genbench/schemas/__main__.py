"""``python -m genbench.schemas [NAME]``: list the shipped schemas, or print one."""

import json
import sys

from . import SCHEMAS, load_schema

if len(sys.argv) < 2:
    print("\n".join(sorted(SCHEMAS)))
else:
    print(json.dumps(load_schema(sys.argv[1]), indent=2))
