#!/usr/bin/env python3
"""Validates the served OpenAPI document: OpenAPI 3.1 (openapi-spec-validator's 3.1
validator, which also checks every schema against JSON Schema 2020-12), plus what API.md
asks of it: every endpoint listed, the bearer scheme, and problem responses.

    validate_openapi.py FILE
"""
import json
import sys

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

# Every endpoint of API.md, as (method, path).
EXPECTED = [
    ("post", "/api/v1/auth/register"), ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/logout"), ("get", "/api/v1/me"), ("patch", "/api/v1/me"),
    ("post", "/api/v1/me/password"), ("delete", "/api/v1/me"), ("get", "/api/v1/me/usage"),
    ("post", "/api/v1/me/usage/ai-messages"),
    ("post", "/api/v1/datasets"), ("get", "/api/v1/datasets"), ("get", "/api/v1/datasets/{id}"),
    ("patch", "/api/v1/datasets/{id}"), ("delete", "/api/v1/datasets/{id}"),
    ("post", "/api/v1/analyses"), ("get", "/api/v1/analyses"), ("get", "/api/v1/analyses/{id}"),
    ("patch", "/api/v1/analyses/{id}"), ("delete", "/api/v1/analyses/{id}"),
    ("post", "/api/v1/analyses/{id}/reports"), ("get", "/api/v1/reports"),
    ("get", "/api/v1/reports/{id}"), ("patch", "/api/v1/reports/{id}"),
    ("delete", "/api/v1/reports/{id}"),
    ("get", "/r/{short_code}"), ("post", "/r/{short_code}/unlock"),
    ("get", "/api/v1/admin/users"), ("patch", "/api/v1/admin/users/{id}"),
    ("get", "/api/v1/admin/users/{id}/usage"),
    ("get", "/health/live"), ("get", "/health/ready"), ("get", "/metrics"),
]


def main(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    problems = []
    if not str(doc.get("openapi", "")).startswith("3.1."):
        problems.append(f"openapi is {doc.get('openapi')!r}, not 3.1.x")
    try:
        validate(doc, cls=OpenAPIV31SpecValidator)
    except Exception as err:  # the validator raises its own hierarchy; report any of it
        problems.append(f"not a valid OpenAPI 3.1 document: {err}")
    paths = doc.get("paths", {})
    for method, route in EXPECTED:
        if method not in paths.get(route, {}):
            problems.append(f"missing operation {method.upper()} {route}")
    schemes = doc.get("components", {}).get("securitySchemes", {})
    if not any(s.get("type") == "http" and s.get("scheme", "").lower() == "bearer"
               for s in schemes.values()):
        problems.append("no bearer security scheme")
    for route, item in paths.items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            for status, res in op["responses"].items():
                # Errors are documented with their body (problem documents; readiness's
                # 503 is its health report).
                if status.startswith(("4", "5")) and not res.get("content"):
                    problems.append(f"{method.upper()} {route} {status} has no documented body")
    for p in problems:
        print(f"openapi: {p}")
    count = sum(1 for item in paths.values() for m in item if m in
                ("get", "post", "put", "patch", "delete"))
    print(f"openapi: {doc.get('openapi')} document with {count} operations, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
