#!/usr/bin/env python3
"""Seeds a running `iops serve` through its public API, as a first user would.

    seed.py BASE_URL user EMAIL PASSWORD
        registers EMAIL (an existing account is fine) and logs in; prints the access token.
    seed.py BASE_URL report TOKEN REPORT_PASSWORD
        uploads a small CSV, creates an analysis over it, runs its SQL on the server and
        publishes a report
        protected by REPORT_PASSWORD; prints {"short_code", "url", "analysis_name"} as JSON.
    seed.py BASE_URL charts TOKEN
        creates an analysis whose results a client computed (a date, a float and a string
        column), a bar chart and a line chart over its date column, and a public report;
        prints {"short_code", "url", "analysis_name", "charts": [{"id", "chart_type",
        "title"}]} as JSON (the title is what the chart draws at its top).
    seed.py BASE_URL invitation TOKEN
        creates an analysis whose name holds markup, invites invitee@example.com to it as
        editor, and prints {"invite_url", "analysis_name", "email"} as JSON.
    seed.py BASE_URL fuzz TOKEN CONFIG_FILE EMAIL PASSWORD
        creates datasets, analyses, reports (one with a password) and a second user, and
        writes a schemathesis config that offers their ids, short codes, the report
        password and the account's credentials (EMAIL, PASSWORD) to the fuzzer half of
        the time, so that it reaches real resources and success paths instead of only
        404s and 401s.

Standard library only, so it runs wherever Python 3 does. Any unexpected status is an
error naming the request and the answer, and a non-zero exit.
"""
import json
import sys
import urllib.error
import urllib.request
import uuid


class ApiError(Exception):
    pass


def call(base, method, path, token=None, body=None, content_type=None, expect=(200,)):
    headers = {"Accept": "application/json"}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        if content_type is None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        else:
            data = body
            headers["Content-Type"] = content_type
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    if status not in expect:
        raise ApiError(f"{method} {path}: expected {expect}, got {status}: {raw[:500]!r}")
    return status, (json.loads(raw) if raw else None)


def multipart(fields, files):
    """A multipart/form-data body: fields {name: text}, files {name: (filename, ctype, bytes)}."""
    boundary = "e2e" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode()
        out += value.encode() + b"\r\n"
    for name, (filename, ctype, content) in files.items():
        out += (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n"
        ).encode()
        out += content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def user(base, email, password):
    call(base, "POST", "/api/v1/auth/register",
         body={"email": email, "password": password, "full_name": "E2E Tester"},
         expect=(201, 409))
    _, login = call(base, "POST", "/api/v1/auth/login",
                    body={"email": email, "password": password})
    if login.get("token_type") != "bearer" or not login.get("access_token"):
        raise ApiError(f"login answered without a bearer token: {login!r}")
    print(login["access_token"])


def report(base, token, report_password):
    csv = b"region,quarter,revenue\nnorth,Q1,120\nsouth,Q1,95\nnorth,Q2,140\n"
    body, ctype = multipart({"name": "sales.csv"}, {"file": ("sales.csv", "text/csv", csv)})
    _, dataset = call(base, "POST", "/api/v1/datasets", token, body, ctype, expect=(201,))
    if dataset.get("row_count") != 3 or dataset.get("column_count") != 3:
        raise ApiError(f"unexpected dataset counts: {dataset!r}")
    name = "Quarterly revenue <e2e>"
    query = {"sql": "SELECT region, SUM(revenue) AS revenue FROM data "
                     "GROUP BY region ORDER BY region"}
    _, analysis = call(base, "POST", "/api/v1/analyses", token,
                       {"name": name, "dataset_id": dataset["id"],
                        "config": {"query": query}}, expect=(201,))
    # Computed on the server from the uploaded file.
    _, ran = call(base, "POST", f"/api/v1/analyses/{analysis['id']}/run", token)
    if ran.get("status") != "completed" or ran["results"]["rows"] != [["north", 260], ["south", 95]]:
        raise ApiError(f"unexpected run: {ran!r}")
    _, rep = call(base, "POST", f"/api/v1/analyses/{analysis['id']}/reports", token,
                  {"password": report_password}, expect=(201,))
    if not rep.get("has_password") or "password_hash" in rep:
        raise ApiError(f"unexpected report object: {rep!r}")
    print(json.dumps({"short_code": rep["short_code"], "url": rep["url"],
                      "analysis_name": name}))


def charts(base, token):
    # Monthly revenue of two regions: the bar chart groups the regions side by side, the
    # line chart draws one line per region over the date axis.
    months = ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01",
              "2026-06-01"]
    north = [1200.5, 1350.0, 1280.25, 1490.0, 1620.75, 1705.0]
    south = [950.0, 910.5, 1040.0, 1115.25, 1090.0, 1230.5]
    rows = [[m, v, "north"] for m, v in zip(months, north)]
    rows += [[m, v, "south"] for m, v in zip(months, south)]
    results = {"columns": [{"name": "month", "type": "date"},
                           {"name": "revenue", "type": "float"},
                           {"name": "region", "type": "string"}],
               "rows": rows}
    name = "Revenue by region <e2e>"
    _, analysis = call(base, "POST", "/api/v1/analyses", token, {"name": name},
                       expect=(201,))
    call(base, "PATCH", f"/api/v1/analyses/{analysis['id']}", token,
         {"status": "completed", "results": results})
    # One chart with a title of its own, one drawn under its name; both have text that
    # must come out escaped (`<`, `&`).
    specs = [
        ("Monthly revenue (bar)", "bar",
         {"x": "month", "y": ["revenue"], "series": "region",
          "title": "Monthly revenue by region & month"}),
        ("Revenue trend <line>", "line",
         {"x": "month", "y": ["revenue"], "series": "region"}),
    ]
    made = []
    for chart_name, chart_type, config in specs:
        _, chart = call(base, "POST", f"/api/v1/analyses/{analysis['id']}/charts", token,
                        {"name": chart_name, "chart_type": chart_type, "config": config},
                        expect=(201,))
        if chart.get("chart_type") != chart_type or chart.get("embed") is not None:
            raise ApiError(f"unexpected chart object: {chart!r}")
        made.append({"id": chart["id"], "chart_type": chart_type,
                     "title": config.get("title", chart_name)})
    _, rep = call(base, "POST", f"/api/v1/analyses/{analysis['id']}/reports", token,
                  {"is_public": True}, expect=(201,))
    if rep.get("has_password"):
        raise ApiError(f"unexpected report object: {rep!r}")
    print(json.dumps({"short_code": rep["short_code"], "url": rep["url"],
                      "analysis_name": name, "charts": made}))


FUZZ_PASSWORD = "fuzz-report-password"


def invitation(base, token):
    name = "Board pack <script>alert(1)</script> & notes"
    _, analysis = call(base, "POST", "/api/v1/analyses", token, {"name": name},
                       expect=(201,))
    email = "invitee@example.com"
    _, inv = call(base, "POST", f"/api/v1/analyses/{analysis['id']}/collaborators", token,
                  {"email": email, "role": "editor"}, expect=(201,))
    if inv.get("status") != "pending" or not inv.get("invite_url", "").startswith("/invitations/"):
        raise ApiError(f"unexpected invitation: {inv!r}")
    print(json.dumps({"invite_url": inv["invite_url"], "analysis_name": name, "email": email}))


def fuzz(base, token, config_path, email, password):
    ids = {"dataset": [], "analysis": [], "report": [], "code": [], "user": [],
           "chart": [], "comment": [], "collaboration": []}
    for i, (filename, ctype, content) in enumerate([
        ("fuzz.csv", "text/csv", b"a,b\n1,2\n3,4\n"),
        ("fuzz.ndjson", "application/x-ndjson", b'{"a": 1}\n{"a": 2}\n'),
    ]):
        body, multipart_type = multipart({}, {"file": (filename, ctype, content)})
        _, dataset = call(base, "POST", "/api/v1/datasets", token, body, multipart_type,
                          expect=(201,))
        ids["dataset"].append(dataset["id"])
        _, analysis = call(base, "POST", "/api/v1/analyses", token,
                           {"name": f"fuzz {i}", "dataset_id": dataset["id"],
                            "config": {"i": i}}, expect=(201,))
        ids["analysis"].append(analysis["id"])
    for body in ({}, {"password": FUZZ_PASSWORD}):
        _, rep = call(base, "POST", f"/api/v1/analyses/{ids['analysis'][0]}/reports", token,
                      body, expect=(201,))
        ids["report"].append(rep["id"])
        ids["code"].append(rep["short_code"])
    _, chart = call(base, "POST", f"/api/v1/analyses/{ids['analysis'][1]}/charts", token,
                    {"name": "fuzz table", "chart_type": "table", "config": {}}, expect=(201,))
    ids["chart"].append(chart["id"])
    _, comment = call(base, "POST", f"/api/v1/charts/{chart['id']}/comments", token,
                      {"body": "fuzz comment"}, expect=(201,))
    ids["comment"].append(comment["id"])
    _, invitation = call(base, "POST", f"/api/v1/analyses/{ids['analysis'][1]}/collaborators",
                         token, {"email": "fuzz-collaborator@example.com", "role": "viewer"},
                         expect=(201,))
    ids["collaboration"].append(invitation["id"])
    other = f"fuzz-target-{uuid.uuid4().hex[:12]}@example.com"
    _, user_obj = call(base, "POST", "/api/v1/auth/register",
                       body={"email": other, "password": "fuzz-password-1"}, expect=(201,))
    ids["user"].append(user_obj["id"])

    def toml_list(values):
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    # Each binding draws from the seeded values half of the time; the rest stays random.
    bindings = [
        ("dataset", "path.id", "^(get|rename|delete)_dataset$"),
        ("analysis", "path.id",
         "^((get|update|delete)_analysis|create_report|(create|list)_charts?"
         "|(invite|list)_collaborators?)$"),
        ("chart", "path.id",
         "^((get|update|delete)_chart|chart_image|(publish|stop|rotate)_embed"
         "|chart_analytics|(create|list)_comments?)$"),
        ("comment", "path.id", "^(edit|delete|resolve)_comment$"),
        ("collaboration", "path.id", "^(change_collaborator_role|revoke_collaborator)$"),
        ("report", "path.id", "^(get|update|delete)_report$"),
        ("code", "path.short_code", "^(view|unlock)$"),
        ("user", "path.id", "^(update_user|user_usage)$"),
        ("dataset", "body.dataset_id", "^(create|update)_analysis$"),
        ("account_password", "body.current_password", "^change_password$"),
    ]
    lines = [f"[dictionaries.{name}]\nvalues = {toml_list(values)}\n"
             for name, values in ids.items()]
    lines.append(f"[dictionaries.password]\nvalues = {toml_list([FUZZ_PASSWORD])}\n")
    lines.append(f"[dictionaries.account_email]\nvalues = {toml_list([email])}\n")
    lines.append(f"[dictionaries.account_password]\nvalues = {toml_list([password])}\n")
    for name, key, regex in bindings:
        lines.append(
            f"[[operations]]\ninclude-operation-id-regex = {json.dumps(regex)}\n"
            f"parameters = {{ {json.dumps(key)} = {{ dictionary = \"{name}\", "
            f"probability = 0.5 }} }}\n")
    lines.append(
        '[[operations]]\ninclude-operation-id = "unlock"\n'
        'parameters = { "path.short_code" = { dictionary = "code", probability = 0.5 }, '
        '"body.password" = { dictionary = "password", probability = 0.5 } }\n')
    lines.append(
        '[[operations]]\ninclude-operation-id = "login"\n'
        'parameters = { "body.email" = { dictionary = "account_email", probability = 0.5 }, '
        '"body.password" = { dictionary = "account_password", probability = 0.5 } }\n')
    with open(config_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(json.dumps(ids))


def main(argv):
    if not (len(argv) == 5 and argv[2] in ("user", "report")
            or len(argv) == 4 and argv[2] in ("charts", "invitation")
            or len(argv) == 7 and argv[2] == "fuzz"):
        print(__doc__, file=sys.stderr)
        return 2
    base = argv[1].rstrip("/")
    try:
        if argv[2] == "user":
            user(base, argv[3], argv[4])
        elif argv[2] == "report":
            report(base, argv[3], argv[4])
        elif argv[2] == "charts":
            charts(base, argv[3])
        elif argv[2] == "invitation":
            invitation(base, argv[3])
        else:
            fuzz(base, *argv[3:7])
    except (ApiError, OSError, ValueError) as err:
        print(f"seed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
