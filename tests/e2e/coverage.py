#!/usr/bin/env python3
"""Which documented operations the whole run answered with success (2xx/3xx), from the
server's own /metrics counters. Informational: prints the ones never reached.

    coverage.py OPENAPI_JSON METRICS_LINES
"""
import json
import re
import sys

LINE = re.compile(r'method="(\w+)",route="([^"]*)",status="(\d+)"\}\s+(\d+)')


def main(doc_path, metrics_path):
    with open(doc_path, encoding="utf-8") as f:
        doc = json.load(f)
    succeeded = set()
    with open(metrics_path, encoding="utf-8") as f:
        for line in f:
            m = LINE.search(line)
            if m and m.group(3)[0] in "23" and int(m.group(4)) > 0:
                succeeded.add((m.group(1).lower(), m.group(2)))
    operations = [(method, path) for path, item in doc["paths"].items() for method in item
                  if method in ("get", "post", "put", "patch", "delete")]
    missed = [f"{m.upper()} {p}" for m, p in operations if (m, p) not in succeeded]
    print(f"coverage: {len(operations) - len(missed)} of {len(operations)} operations "
          f"answered with success at least once")
    for op in missed:
        print(f"coverage: never succeeded: {op}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
