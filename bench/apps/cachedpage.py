"""cachedpage: a 2 KB HTML page of 50 rows rendered with str.format on every call, sent with
Cache-Control: max-age=60 so that a server with a response cache (wsgo --max-age 60) can answer
it without calling the application.

Each rendering carries a counter in a comment, so that the harness can tell a page from the cache
(the same counter as the last one) from a fresh rendering.
"""

import itertools

ROW = "<tr><td>{0}</td><td>{1:.2f}</td></tr>\n"
PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>wsgo benchmark</title></head>
<body><h1>Price list</h1>
<table>
{rows}</table>
<!-- render {render} -->
</body></html>
"""
ROWS = 50

# next() on an itertools.count is atomic under the GIL.
renders = itertools.count(1)


def application(environ, start_response):
    rows = "".join([ROW.format(i, i * 1.25) for i in range(ROWS)])
    body = PAGE.format(rows=rows, render=next(renders)).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "max-age=60"),
        ],
    )
    return [body]
