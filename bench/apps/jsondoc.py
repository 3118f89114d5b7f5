"""jsondoc: a 20-item JSON document serialised with json.dumps on every request.

(Named jsondoc rather than json so that it cannot shadow the standard library.)
"""

import json

ITEMS = [
    {"id": i, "name": "item %d" % i, "price": round(i * 1.25, 2), "tags": ["a", "b", "c"], "active": i % 2 == 0}
    for i in range(20)
]


def application(environ, start_response):
    body = json.dumps({"count": len(ITEMS), "items": ITEMS}).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
