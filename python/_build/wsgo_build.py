"""The build backend (PEP 517, PEP 660) of the stand-in wsgo package.

It uses only the standard library, so that ``pip install ./python`` works
without a network: with setuptools as the backend, pip would first try to
download setuptools into an isolated build environment. The package is
pure Python; a wheel is its files, METADATA, WHEEL and RECORD.
"""

import base64
import hashlib
import io
import os
import tarfile
import zipfile

NAME = "wsgo"
VERSION = "0.1.0"
TAG = "py3-none-any"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the python/ directory
DIST_INFO = "%s-%s.dist-info" % (NAME, VERSION)
METADATA = """Metadata-Version: 2.1
Name: %s
Version: %s
Summary: Stand-in for the wsgo server's built-in wsgo module, for running code that imports wsgo outside the server
Requires-Python: >=3.9
""" % (NAME, VERSION)
WHEEL = """Wheel-Version: 1.0
Generator: wsgo_build
Root-Is-Purelib: true
Tag: %s
""" % TAG
# Fixed times keep the archives the same from one build to the next.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    path = os.path.join(metadata_directory, DIST_INFO)
    os.makedirs(path, exist_ok=True)
    for name, text in (("METADATA", METADATA), ("WHEEL", WHEEL)):
        with open(os.path.join(path, name), "w", encoding="utf-8") as f:
            f.write(text)
    return DIST_INFO


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, _package_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file that puts this directory on sys.path: edits show at once.
    return _write_wheel(wheel_directory, {"_wsgo_stub.pth": (ROOT + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, VERSION)
    files = {"pyproject.toml": _read(os.path.join(ROOT, "pyproject.toml")),
             "_build/wsgo_build.py": _read(os.path.abspath(__file__)),
             "PKG-INFO": METADATA.encode()}
    files.update(_package_files())
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo("%s/%s" % (base, path))
            info.size, info.mode, info.mtime = len(data), 0o644, 315532800
            tar.addfile(info, io.BytesIO(data))
    return name


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _package_files():
    """The package's .py files, by their path in the wheel."""
    files = {}
    top = os.path.join(ROOT, NAME)
    for folder, dirs, names in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for n in sorted(names):
            if n.endswith(".py"):
                path = os.path.join(folder, n)
                files[os.path.relpath(path, ROOT).replace(os.sep, "/")] = _read(path)
    return files


def _write_wheel(directory, files):
    files = dict(files)
    files[DIST_INFO + "/METADATA"] = METADATA.encode()
    files[DIST_INFO + "/WHEEL"] = WHEEL.encode()
    record = []
    for path, data in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append("%s/RECORD,," % DIST_INFO)
    files[DIST_INFO + "/RECORD"] = ("\n".join(record) + "\n").encode()
    name = "%s-%s-%s.whl" % (NAME, VERSION, TAG)
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as whl:
        # dist-info last, as the wheel spec recommends.
        for path in sorted(files, key=lambda p: (p.startswith(DIST_INFO), p)):
            info = zipfile.ZipInfo(path, ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(info, files[path])
    return name
