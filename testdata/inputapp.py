"""Exercises wsgi.input; the path picks the reading style, JSON comes back.

  /read              read() everything
  /readn?n=N         read(N) until b''
  /readline          readline() until b''
  /readline?size=N   readline(N) until b''
  /readlines?hint=N  readlines(N), then readlines() for the rest
  /iter              iterate over wsgi.input
  /hash              read(65536) until b'', report sha256 and length

Every answer has "chunks" (list of latin-1 strings, except /hash), "eof"
(repr of the final read, which must be b''), and "content_length" (the
CONTENT_LENGTH the server set, or null).
"""
import hashlib
import json
from urllib.parse import parse_qs


def application(environ, start_response):
    inp = environ["wsgi.input"]
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    out = {"content_length": environ.get("CONTENT_LENGTH")}

    if path == "/read":
        chunks = [inp.read()]
        eof = inp.read()
    elif path == "/readn":
        n = int(query["n"])
        chunks = []
        while True:
            chunk = inp.read(n)
            if not chunk:
                break
            chunks.append(chunk)
        eof = chunk
    elif path == "/readline":
        size = int(query["size"]) if "size" in query else None
        chunks = []
        while True:
            line = inp.readline() if size is None else inp.readline(size)
            if not line:
                break
            chunks.append(line)
        eof = line
    elif path == "/readlines":
        first = inp.readlines(int(query["hint"]))
        rest = inp.readlines()
        out["first"] = [c.decode("latin-1") for c in first]
        chunks = first + rest
        eof = inp.read()
    elif path == "/iter":
        chunks = list(inp)
        eof = inp.read()
    elif path == "/hash":
        digest = hashlib.sha256()
        length = 0
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            digest.update(chunk)
            length += len(chunk)
        chunks = []
        eof = chunk
        out["sha256"] = digest.hexdigest()
        out["length"] = length
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"unknown path\n"]

    out["chunks"] = [c.decode("latin-1") for c in chunks]
    out["types"] = sorted({type(c).__name__ for c in chunks})
    out["eof"] = repr(eof)
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
