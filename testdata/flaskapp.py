"""A small Flask app. It defines only `app`, so wsgo's fallback finds it."""
import hashlib

from flask import Flask, jsonify, make_response, redirect, request

app = Flask(__name__)


@app.route("/")
def index():
    return "hello from flask"


@app.route("/user/<name>")
def user(name):
    return "user %s" % name


@app.route("/json")
def json_view():
    return jsonify(ok=True, items=[1, 2, 3], method=request.method)


@app.route("/form", methods=["POST"])
def form():
    return "name=%s colour=%s" % (request.form["name"], request.form["colour"])


@app.route("/upload", methods=["POST"])
def upload():
    upload = request.files["file"]
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = upload.stream.read(65536)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    return jsonify(filename=upload.filename, size=size, sha256=digest.hexdigest(),
                   note=request.form.get("note"))


@app.route("/setcookie")
def setcookie():
    resp = make_response("cookie set")
    resp.set_cookie("flavour", "chocolate")
    return resp


@app.route("/getcookie")
def getcookie():
    return "flavour=%s" % request.cookies.get("flavour", "none")


@app.route("/redirect")
def go_elsewhere():
    return redirect("/target")


@app.route("/target")
def target():
    return "target reached"
