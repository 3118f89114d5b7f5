"""Returns the WSGI environ as JSON: {key: [type name, value]}.

Values that JSON can carry (str, int, bool, None) are sent as they are,
anything else as its repr(). Extra keys starting with "_" report what the app
saw: the request body (latin-1) and whether wsgi.file_wrapper is callable.
With QUERY_STRING "errors=MARKER" the app writes MARKER to wsgi.errors.
"""
import json


def application(environ, start_response):
    query = environ.get("QUERY_STRING", "")
    if query.startswith("errors="):
        errors = environ["wsgi.errors"]
        errors.write("wsgi.errors says %s\n" % query[len("errors="):])
        errors.flush()

    out = {}
    for key, value in environ.items():
        if value is None or isinstance(value, (str, int, bool)):
            out[key] = [type(value).__name__, value]
        else:
            out[key] = [type(value).__name__, repr(value)]
    out["_body"] = ["str", environ["wsgi.input"].read().decode("latin-1")]
    out["_file_wrapper_callable"] = ["bool", callable(environ.get("wsgi.file_wrapper"))]

    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
