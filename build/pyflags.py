"""Print the cgo flags that embed the Python running this script.

Used by the Makefile as `$(PYTHON) build/pyflags.py cflags|ldflags|executable`.
Works from sysconfig alone, so any CPython 3.9+ can be named by path even
when no matching python3-config sits next to it.
"""
import os
import sys
import sysconfig


def var(name):
    return sysconfig.get_config_var(name) or ""


def cflags():
    return "-I" + sysconfig.get_paths()["include"]


def ldflags():
    version = var("LDVERSION") or var("VERSION")
    if var("Py_ENABLE_SHARED"):
        libdir = var("LIBDIR")
        # An rpath lets bin/wsgo find a libpython outside the loader's
        # default directories (pyenv, a custom prefix) without LD_LIBRARY_PATH.
        flags = ["-L" + libdir, "-Wl,-rpath," + libdir]
    else:
        # A static libpython: export its symbols so that extension modules
        # loaded at run time (_ssl, numpy, ...) can resolve them.
        flags = ["-L" + var("LIBPL"), "-Wl,--export-dynamic"]
    flags.append("-lpython" + version)
    flags += (var("LIBS") + " " + var("SYSLIBS")).split()
    return " ".join(flags)


def executable():
    return os.path.abspath(sys.executable)


if __name__ == "__main__":
    if sys.version_info < (3, 9):
        sys.exit("wsgo needs CPython 3.9 or newer, not %s" % sys.version.split()[0])
    print({"cflags": cflags, "ldflags": ldflags, "executable": executable}[sys.argv[1]]())
