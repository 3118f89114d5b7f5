/*
 * wsgo's embedding of CPython: interpreter start-up, the WSGI call, the
 * Python types the server hands to applications (wsgi.input, start_response,
 * wsgi.file_wrapper), and the wsgo module with its background jobs
 * (@wsgo.timer, @wsgo.cron).
 *
 * Reference ownership is stated on each function that creates or stores a
 * Python object; GIL state follows the conventions in wsgo.h. Functions
 * whose names end in _locked require the GIL and never release it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <semaphore.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wsgo.h"
#include "_cgo_export.h"

/* ---- process-wide state (set once at start-up, read under the GIL) ---- */

static PyObject *app;              /* strong: the WSGI callable */
static PyObject *base_environ;     /* strong: the keys every request shares */
static PyObject *field_keys[WSGO_NFIELDS]; /* strong, interned environ keys */
static PyObject *key_wsgi_input;   /* strong, interned "wsgi.input" */
static PyObject *str_close;        /* strong, interned "close" */
static PyObject *timeout_exc;      /* strong: wsgo.RequestTimeoutException */
static PyObject *release_logging_locks; /* strong: see HELPERS */
static PyObject *format_stack;     /* strong: see HELPERS */
static PyObject *memory_report;    /* strong: see HELPERS */
static PyObject *module_dict;      /* strong: the wsgo module's namespace */
static PyObject *job_funcs;        /* strong: list of the job callables, by index (wsgo_take_jobs) */
static PyThreadState *main_ts;     /* the start-up thread's state */

/* Values that most requests repeat; reused instead of decoded each time. */
static const char *const common_values[] = {
	"GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS",
	"HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "http", "https", "127.0.0.1", "", "on",
};
#define NCOMMON (sizeof(common_values) / sizeof(common_values[0]))
static PyObject *common_objects[NCOMMON]; /* strong */
static size_t common_lengths[NCOMMON];

/*
 * Environ keys for request headers ("User-Agent" -> "HTTP_USER_AGENT"),
 * interned once and reused. The table only grows until it is full, so a
 * client sending endless distinct header names cannot grow it without
 * bound; names that do not fit are converted per request.
 */
#define HEADER_KEYS 256
static struct {
	char name[64];
	size_t len;
	PyObject *key; /* strong */
} header_keys[HEADER_KEYS];

/* ---- wsgi.input ---- */

/*
 * InputObject reads the request body. The first part of the body is already
 * in Go's memory when the app starts; more may still be coming from the
 * client. Reads go through the Go callback wsgoReadBody, which is passed the
 * request id so that an input object kept past its request reads nothing.
 */
typedef struct {
	PyObject_HEAD
	int worker;
	uint64_t reqid;
	int64_t buffered; /* bytes Go holds in memory: readable without blocking */
	int more;         /* the client may send more than the buffered part */
	int eof;
	char *ahead;      /* PyMem buffer for readline's look-ahead */
	Py_ssize_t ahead_pos, ahead_len, ahead_cap;
} InputObject;

static PyTypeObject InputType;

/*
 * input_pull copies up to n body bytes into dst. Returns the count, 0 at the
 * end of the body, or -1 with an exception set. Holds the GIL on entry and
 * exit; releases it while Go may wait on the network.
 */
static Py_ssize_t input_pull(InputObject *self, char *dst, Py_ssize_t n)
{
	int64_t got;
	if (self->eof || n <= 0)
		return 0;
	if (self->buffered > 0) {
		if (n > self->buffered)
			n = (Py_ssize_t)self->buffered;
		got = wsgoReadBody(self->worker, self->reqid, dst, n);
	} else if (self->more) {
		Py_BEGIN_ALLOW_THREADS
		got = wsgoReadBody(self->worker, self->reqid, dst, n);
		Py_END_ALLOW_THREADS
	} else {
		got = 0;
	}
	if (got < 0) {
		self->eof = 1;
		PyErr_SetString(PyExc_OSError, got == -2
			? "request body is larger than --max-body-size"
			: "could not read the request body from the client");
		return -1;
	}
	if (got == 0) {
		self->eof = 1;
		return 0;
	}
	if (self->buffered > 0)
		self->buffered -= got;
	return (Py_ssize_t)got;
}

/* Takes up to n bytes of look-ahead into dst; returns how many it took. */
static Py_ssize_t input_take_ahead(InputObject *self, char *dst, Py_ssize_t n)
{
	Py_ssize_t have = self->ahead_len - self->ahead_pos;
	if (n > have)
		n = have;
	memcpy(dst, self->ahead + self->ahead_pos, n);
	self->ahead_pos += n;
	return n;
}

/* Returns a new reference: a bytes object of up to limit bytes (< 0: all). */
static PyObject *input_read_bytes(InputObject *self, Py_ssize_t limit)
{
	Py_ssize_t size, used = 0;
	PyObject *out;
	if (limit >= 0) {
		size = limit;
	} else {
		size = (self->ahead_len - self->ahead_pos) + (Py_ssize_t)self->buffered;
		if (size < 65536)
			size = 65536;
	}
	out = PyBytes_FromStringAndSize(NULL, size);
	if (out == NULL)
		return NULL;
	used = input_take_ahead(self, PyBytes_AS_STRING(out), size);
	for (;;) {
		Py_ssize_t got;
		if (used == size) {
			if (limit >= 0 || self->eof)
				break;
			if (_PyBytes_Resize(&out, size * 2) < 0)
				return NULL;
			size *= 2;
		}
		got = input_pull(self, PyBytes_AS_STRING(out) + used, size - used);
		if (got < 0) {
			Py_DECREF(out);
			return NULL;
		}
		if (got == 0)
			break;
		used += got;
	}
	if (used != size && _PyBytes_Resize(&out, used) < 0)
		return NULL;
	return out;
}

static int parse_size(PyObject *arg, Py_ssize_t *size)
{
	if (arg == NULL || arg == Py_None) {
		*size = -1;
		return 0;
	}
	*size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
	return (*size == -1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *input_read(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t size;
	if (nargs > 1)
		return PyErr_Format(PyExc_TypeError, "read() takes at most 1 argument");
	if (parse_size(nargs ? args[0] : NULL, &size) < 0)
		return NULL;
	return input_read_bytes(self, size);
}

/*
 * Returns a new reference: the next line, including its b"\n", of at most
 * limit bytes (< 0: no limit). Refills the look-ahead buffer as needed.
 */
static PyObject *input_readline_bytes(InputObject *self, Py_ssize_t limit)
{
	Py_ssize_t scanned = 0;
	for (;;) {
		char *start = self->ahead + self->ahead_pos;
		Py_ssize_t have = self->ahead_len - self->ahead_pos;
		Py_ssize_t want = (limit >= 0 && limit < have) ? limit : have;
		char *nl = memchr(start + scanned, '\n', want - scanned);
		if (nl != NULL || (limit >= 0 && have >= limit) || self->eof) {
			Py_ssize_t n = nl ? (nl - start) + 1 : want;
			PyObject *line = PyBytes_FromStringAndSize(start, n);
			if (line != NULL)
				self->ahead_pos += n;
			return line;
		}
		scanned = want;
		/* Compact, grow if full, and pull more of the body. */
		if (self->ahead_pos > 0) {
			memmove(self->ahead, start, have);
			self->ahead_pos = 0;
			self->ahead_len = have;
		}
		if (self->ahead_len == self->ahead_cap) {
			Py_ssize_t cap = self->ahead_cap ? self->ahead_cap * 2 : 8192;
			char *grown = PyMem_Realloc(self->ahead, cap);
			if (grown == NULL)
				return PyErr_NoMemory();
			self->ahead = grown;
			self->ahead_cap = cap;
		}
		{
			Py_ssize_t got = input_pull(self, self->ahead + self->ahead_len,
				self->ahead_cap - self->ahead_len);
			if (got < 0)
				return NULL;
			self->ahead_len += got;
		}
	}
}

static PyObject *input_readline(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t size;
	if (nargs > 1)
		return PyErr_Format(PyExc_TypeError, "readline() takes at most 1 argument");
	if (parse_size(nargs ? args[0] : NULL, &size) < 0)
		return NULL;
	return input_readline_bytes(self, size);
}

static PyObject *input_readlines(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	Py_ssize_t hint, total = 0;
	PyObject *lines;
	if (nargs > 1)
		return PyErr_Format(PyExc_TypeError, "readlines() takes at most 1 argument");
	if (parse_size(nargs ? args[0] : NULL, &hint) < 0)
		return NULL;
	lines = PyList_New(0);
	if (lines == NULL)
		return NULL;
	for (;;) {
		PyObject *line = input_readline_bytes(self, -1);
		if (line == NULL) {
			Py_DECREF(lines);
			return NULL;
		}
		if (PyBytes_GET_SIZE(line) == 0) {
			Py_DECREF(line);
			break;
		}
		total += PyBytes_GET_SIZE(line);
		if (PyList_Append(lines, line) < 0) {
			Py_DECREF(line);
			Py_DECREF(lines);
			return NULL;
		}
		Py_DECREF(line);
		if (hint > 0 && total >= hint)
			break;
	}
	return lines;
}

static PyObject *input_iternext(InputObject *self)
{
	PyObject *line = input_readline_bytes(self, -1);
	if (line != NULL && PyBytes_GET_SIZE(line) == 0) {
		Py_DECREF(line);
		return NULL; /* StopIteration */
	}
	return line;
}

static void input_dealloc(InputObject *self)
{
	PyMem_Free(self->ahead);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef input_methods[] = {
	{"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, "read([size]) -> bytes"},
	{"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL, "readline([size]) -> bytes"},
	{"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL, "readlines([hint]) -> list"},
	{NULL},
};

static PyTypeObject InputType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "wsgo.Input",
	.tp_basicsize = sizeof(InputObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "wsgi.input: the request body",
	.tp_dealloc = (destructor)input_dealloc,
	.tp_iter = PyObject_SelfIter,
	.tp_iternext = (iternextfunc)input_iternext,
	.tp_methods = input_methods,
};

/* ---- start_response ---- */

/*
 * StartResponseObject is the start_response callable of one request. It
 * keeps the status and headers the app chose until Go sends them. The worker
 * holds a reference while the request runs and detaches it (worker = NULL)
 * when the request ends, so a start_response kept by the app cannot touch a
 * later request.
 */
typedef struct {
	PyObject_HEAD
	wsgo_worker *worker;
	int status_code; /* 0 until start_response has been called */
	PyObject *headers; /* strong: list of validated (str, str) tuples */
} StartResponseObject;

static PyTypeObject StartResponseType;

struct wsgo_worker {
	int id;
	PyThreadState *ts;
	int holds_gil;
	int pending;       /* a request has run and not yet been finished */
	uint64_t reqid;
	PyObject *environ; /* strong */
	StartResponseObject *sr; /* strong */
	PyObject *result;  /* strong: what the app returned */
	PyObject *iter;    /* strong: iter(result) for WSGO_ITER */
	PyObject *chunk;   /* strong: the chunk Go is writing */
	unsigned long ident; /* the OS thread's id, as threading.get_ident() gives it */
	sem_t wake;        /* posted by wsgo_worker_unpark */
	int interrupted;   /* RequestTimeoutException was sent during this request */
	wsgo_result res;
	char *hdrbuf;      /* malloc: packed headers for Go */
	size_t hdrcap;
	wsgo_chunk *chunks; /* malloc: WSGO_CHUNKS pointers for Go */
	size_t chunkcap;
};

/* RFC 9110 tchar: the characters a header name may use. */
static int is_token_char(Py_UCS4 c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		(c != 0 && strchr("!#$%&'*+-.^_`|~", (int)c) != NULL);
}

/* Sets ValueError and returns -1 unless s is a str fit for a header. */
static int check_header_text(PyObject *s, int is_name, const char *what)
{
	Py_ssize_t i, n;
	if (!PyUnicode_Check(s)) {
		PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(s)->tp_name);
		return -1;
	}
	n = PyUnicode_GET_LENGTH(s);
	if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
		PyErr_Format(PyExc_ValueError, "%s %R is not latin-1 text", what, s);
		return -1;
	}
	if (is_name && n == 0) {
		PyErr_Format(PyExc_ValueError, "%s is empty", what);
		return -1;
	}
	for (i = 0; i < n; i++) {
		Py_UCS4 c = PyUnicode_READ(PyUnicode_1BYTE_KIND, PyUnicode_DATA(s), i);
		int bad = is_name ? !is_token_char(c) : ((c < 0x20 && c != '\t') || c == 0x7f);
		if (bad) {
			PyErr_Format(PyExc_ValueError, "%s %R contains a forbidden character", what, s);
			return -1;
		}
	}
	return 0;
}

/* Returns the status code of a "NNN Reason" line, or -1 with ValueError. */
static int parse_status(PyObject *status)
{
	const Py_UCS1 *s;
	Py_ssize_t n;
	if (check_header_text(status, 0, "status") < 0)
		return -1;
	s = PyUnicode_1BYTE_DATA(status);
	n = PyUnicode_GET_LENGTH(status);
	if (n < 3 || s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
		s[2] > '9' || (n > 3 && s[3] != ' ')) {
		PyErr_Format(PyExc_ValueError, "status %R is not of the form '200 OK'", status);
		return -1;
	}
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* Returns a new reference: a list copy of headers, every pair validated. */
static PyObject *validated_headers(PyObject *headers)
{
	Py_ssize_t i, n;
	PyObject *list;
	if (!PyList_Check(headers) && !PyTuple_Check(headers)) {
		PyErr_Format(PyExc_TypeError, "response headers must be a list, not %.100s",
			Py_TYPE(headers)->tp_name);
		return NULL;
	}
	list = PySequence_List(headers);
	if (list == NULL)
		return NULL;
	n = PyList_GET_SIZE(list);
	for (i = 0; i < n; i++) {
		PyObject *pair = PyList_GET_ITEM(list, i);
		if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
			PyErr_Format(PyExc_TypeError, "response header %R is not a (name, value) tuple", pair);
			goto fail;
		}
		if (check_header_text(PyTuple_GET_ITEM(pair, 0), 1, "header name") < 0 ||
			check_header_text(PyTuple_GET_ITEM(pair, 1), 0, "header value") < 0)
			goto fail;
	}
	return list;
fail:
	Py_DECREF(list);
	return NULL;
}

static void append_packed(wsgo_worker *w, size_t *len, const void *p, size_t n)
{
	uint32_t n32 = (uint32_t)n;
	size_t need = *len + 4 + n;
	if (need > w->hdrcap) {
		size_t cap = w->hdrcap ? w->hdrcap : 1024;
		while (cap < need)
			cap *= 2;
		w->hdrbuf = realloc(w->hdrbuf, cap);
		if (w->hdrbuf == NULL)
			abort();
		w->hdrcap = cap;
	}
	memcpy(w->hdrbuf + *len, &n32, 4);
	memcpy(w->hdrbuf + *len + 4, p, n);
	*len += 4 + n;
}

/* Copies the app's status and headers into w->res for Go to send. GIL held. */
static void pack_headers_locked(wsgo_worker *w)
{
	size_t len = 0;
	Py_ssize_t i, n;
	StartResponseObject *sr = w->sr;
	if (sr == NULL || sr->status_code == 0 || w->res.headers_sent)
		return;
	n = PyList_GET_SIZE(sr->headers);
	for (i = 0; i < n; i++) {
		PyObject *pair = PyList_GET_ITEM(sr->headers, i);
		PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
		append_packed(w, &len, PyUnicode_DATA(name), PyUnicode_GET_LENGTH(name));
		append_packed(w, &len, PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value));
	}
	w->res.status = sr->status_code;
	w->res.headers = w->hdrbuf;
	w->res.headers_len = len;
}

static PyObject *start_response_call(StartResponseObject *self, PyObject *args, PyObject *kwargs)
{
	static char *kwlist[] = {"status", "headers", "exc_info", NULL};
	PyObject *status, *headers, *exc_info = Py_None, *list;
	int code;
	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", kwlist,
		&status, &headers, &exc_info))
		return NULL;
	if (self->worker == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "start_response called after its request ended");
		return NULL;
	}
	if (exc_info != Py_None) {
		if (self->worker->res.headers_sent) {
			/* Too late to change the response: re-raise the app's error. */
			PyObject *type, *value, *tb;
			if (!PyArg_ParseTuple(exc_info, "OOO:exc_info", &type, &value, &tb))
				return NULL;
			Py_INCREF(type);
			Py_INCREF(value);
			Py_INCREF(tb);
			PyErr_Restore(type, value, tb);
			return NULL;
		}
	} else if (self->status_code != 0) {
		PyErr_SetString(PyExc_RuntimeError,
			"start_response called a second time without exc_info");
		return NULL;
	}
	code = parse_status(status);
	if (code < 0)
		return NULL;
	list = validated_headers(headers);
	if (list == NULL)
		return NULL;
	Py_XSETREF(self->headers, list);
	self->status_code = code;
	return PyObject_GetAttrString((PyObject *)self, "write");
}

static PyObject *start_response_write(StartResponseObject *self, PyObject *data)
{
	wsgo_worker *w = self->worker;
	Py_buffer view;
	int ok;
	if (w == NULL || w->sr != self) {
		PyErr_SetString(PyExc_RuntimeError, "write() called after its request ended");
		return NULL;
	}
	if (self->status_code == 0) {
		PyErr_SetString(PyExc_RuntimeError, "write() called before start_response");
		return NULL;
	}
	if (!PyBytes_Check(data)) {
		PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
		return NULL;
	}
	if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
		return NULL;
	pack_headers_locked(w);
	Py_BEGIN_ALLOW_THREADS
	ok = wsgoWrite(w->id, w->reqid, view.buf, view.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&view);
	if (!ok) {
		PyErr_SetString(PyExc_OSError, "client went away");
		return NULL;
	}
	Py_RETURN_NONE;
}

static void start_response_dealloc(StartResponseObject *self)
{
	Py_XDECREF(self->headers);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef start_response_methods[] = {
	{"write", (PyCFunction)start_response_write, METH_O, "write(data): send body bytes now"},
	{NULL},
};

static PyTypeObject StartResponseType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "wsgo.StartResponse",
	.tp_basicsize = sizeof(StartResponseObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "start_response(status, headers, exc_info=None) -> write",
	.tp_dealloc = (destructor)start_response_dealloc,
	.tp_call = (ternaryfunc)start_response_call,
	.tp_methods = start_response_methods,
};

/* ---- wsgi.file_wrapper ---- */

typedef struct {
	PyObject_HEAD
	PyObject *filelike; /* strong */
	Py_ssize_t blksize;
} FileWrapperObject;

static PyTypeObject FileWrapperType;

static PyObject *file_wrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
	static char *kwlist[] = {"filelike", "block_size", NULL};
	PyObject *filelike;
	Py_ssize_t blksize = 8192;
	FileWrapperObject *self;
	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:file_wrapper", kwlist, &filelike, &blksize))
		return NULL;
	self = (FileWrapperObject *)type->tp_alloc(type, 0);
	if (self == NULL)
		return NULL;
	Py_INCREF(filelike);
	self->filelike = filelike;
	self->blksize = blksize > 0 ? blksize : 8192;
	return (PyObject *)self;
}

static PyObject *file_wrapper_iternext(FileWrapperObject *self)
{
	PyObject *data = PyObject_CallMethod(self->filelike, "read", "n", self->blksize);
	if (data != NULL && PyObject_Length(data) <= 0) {
		/* Empty: the end of the file. No length: an error is already set. */
		Py_DECREF(data);
		return NULL;
	}
	return data;
}

static PyObject *file_wrapper_close(FileWrapperObject *self, PyObject *unused)
{
	if (PyObject_HasAttrString(self->filelike, "close"))
		return PyObject_CallMethod(self->filelike, "close", NULL);
	Py_RETURN_NONE;
}

static void file_wrapper_dealloc(FileWrapperObject *self)
{
	Py_XDECREF(self->filelike);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef file_wrapper_methods[] = {
	{"close", (PyCFunction)file_wrapper_close, METH_NOARGS, "close the wrapped file"},
	{NULL},
};

static PyTypeObject FileWrapperType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "wsgo.FileWrapper",
	.tp_basicsize = sizeof(FileWrapperObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "wsgi.file_wrapper(filelike, block_size=8192)",
	.tp_new = file_wrapper_new,
	.tp_dealloc = (destructor)file_wrapper_dealloc,
	.tp_iter = PyObject_SelfIter,
	.tp_iternext = (iternextfunc)file_wrapper_iternext,
	.tp_methods = file_wrapper_methods,
};

/*
 * If fw wraps a regular file with a real descriptor, fills the WSGO_FILE
 * fields of res and returns 1; otherwise returns 0 (never an error: the
 * wrapper is then iterated like any response). GIL held.
 */
static int file_wrapper_fd_locked(FileWrapperObject *fw, wsgo_result *res)
{
	PyObject *r;
	long fd;
	long long pos;
	struct stat st;

	r = PyObject_CallMethod(fw->filelike, "fileno", NULL);
	if (r == NULL)
		goto no;
	fd = PyLong_AsLong(r);
	Py_DECREF(r);
	if (fd < 0 || fstat((int)fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto no;
	/* tell() is where a buffered file really stands; the descriptor may be ahead. */
	r = PyObject_CallMethod(fw->filelike, "tell", NULL);
	if (r != NULL) {
		pos = PyLong_AsLongLong(r);
		Py_DECREF(r);
	} else {
		PyErr_Clear();
		pos = lseek((int)fd, 0, SEEK_CUR);
	}
	if (pos < 0 || pos > st.st_size)
		goto no;
	res->fd = (int)fd;
	res->offset = pos;
	res->length = st.st_size - pos;
	return 1;
no:
	PyErr_Clear();
	return 0;
}

/* ---- the wsgo built-in module ---- */

/*
 * The Python half of the wsgo module: the job decorators. They run in the
 * module's namespace, so their globals are the module's. A decorator
 * checks its arguments (raising at import, where the mistake is) and
 * records (kind, spec, function, name) in _jobs; the server reads that
 * list once the app has imported (wsgo_take_jobs) and sets _closed, after
 * which decorating only warns. python/wsgo/__init__.py, the stand-in
 * package for use outside the server, checks arguments the same way and
 * records nothing: keep the two in step (tests/cron_test.go compares them).
 */
static const char MODULE_PY[] =
	"import numbers as _numbers, operator as _operator, warnings as _warnings\n"
	"_jobs = []\n"
	"_closed = False\n"
	"_CRON_FIELDS = (('min', 0, 59), ('hour', 0, 23), ('day', 1, 31), ('mon', 1, 12), ('wday', 0, 7))\n"
	"_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)\n"
	"def cron(min, hour, day, mon, wday):\n"
	"    \"\"\"Decorator: run the function in the background at every minute of\n"
	"    local time that matches. Each field is an int, or -1 for any value:\n"
	"    min 0-59, hour 0-23, day (of the month) 1-31, mon 1-12, wday 0-7\n"
	"    (0 and 7 are Sunday, 1 is Monday, as in crontab). Every field that is\n"
	"    not -1 must match. The function is returned unchanged.\"\"\"\n"
	"    spec = []\n"
	"    for (field, low, high), value in zip(_CRON_FIELDS, (min, hour, day, mon, wday)):\n"
	"        if isinstance(value, bool):\n"
	"            raise TypeError('wsgo.cron: %s must be an int, not bool' % field)\n"
	"        try:\n"
	"            value = _operator.index(value)\n"
	"        except TypeError:\n"
	"            raise TypeError('wsgo.cron: %s must be an int, not %s' % (field, type(value).__name__)) from None\n"
	"        if value != -1 and not low <= value <= high:\n"
	"            raise ValueError('wsgo.cron: %s must be -1 (any) or from %d to %d, not %d' % (field, low, high, value))\n"
	"        spec.append(value)\n"
	"    if spec[2] != -1 and spec[3] != -1 and spec[2] > _MONTH_DAYS[spec[3]]:\n"
	"        raise ValueError('wsgo.cron: day %d never comes in month %d' % (spec[2], spec[3]))\n"
	"    return _decorator('cron', tuple(spec))\n"
	"def timer(period):\n"
	"    \"\"\"Decorator: run the function in the background every period seconds\n"
	"    (an int or float above 0), counted from the server's start. The\n"
	"    function is returned unchanged.\"\"\"\n"
	"    if isinstance(period, bool) or not isinstance(period, _numbers.Real):\n"
	"        raise TypeError('wsgo.timer: period must be a number of seconds, not %s' % type(period).__name__)\n"
	"    if not 0 < period < float('inf'):\n"
	"        raise ValueError('wsgo.timer: period must be a number of seconds above 0, not %r' % (period,))\n"
	"    return _decorator('timer', float(period))\n"
	"def _decorator(kind, spec):\n"
	"    def register(func):\n"
	"        if not callable(func):\n"
	"            raise TypeError('@wsgo.%s decorates a function, not %s' % (kind, type(func).__name__))\n"
	"        _register(kind, spec, func)\n"
	"        return func\n"
	"    return register\n"
	"def _register(kind, spec, func):\n"
	"    name = '%s.%s' % (getattr(func, '__module__', None) or '?',\n"
	"                      getattr(func, '__qualname__', None) or getattr(func, '__name__', None) or repr(func))\n"
	"    if _closed:\n"
	"        _warnings.warn('%s: @wsgo.%s has no effect once the app is loaded; jobs are registered while it '\n"
	"                       'imports' % (name, kind), RuntimeWarning, stacklevel=3)\n"
	"        return\n"
	"    _jobs.append((kind, spec, func, name))\n";

/*
 * wsgo.notify_parked(channels, action, arg=""): wake the requests parked on
 * any of the comma-separated channels. Called with the GIL held from any
 * Python thread; the arguments are borrowed, and the strings they give are
 * copied by the Go side before it returns. Returns a new reference: the
 * number of requests woken.
 */
static PyObject *wsgo_notify_parked(PyObject *self, PyObject *args)
{
	const char *channels, *arg = "";
	Py_ssize_t channels_len, arg_len = 0;
	int action;
	long woken;
	(void)self;
	if (!PyArg_ParseTuple(args, "s#i|s#:notify_parked", &channels, &channels_len, &action, &arg, &arg_len))
		return NULL;
	if (action < WSGO_PARK_DISCONNECT || action > WSGO_PARK_HTTP_504) {
		PyErr_Format(PyExc_ValueError,
			"notify_parked: action must be wsgo.RETRY, wsgo.DISCONNECT, wsgo.HTTP_204 or wsgo.HTTP_504, not %d", action);
		return NULL;
	}
	woken = wsgoNotifyParked((char *)channels, (long)channels_len, action, (char *)arg, (long)arg_len);
	return PyLong_FromLong(woken);
}

static PyMethodDef wsgo_module_methods[] = {
	{"notify_parked", wsgo_notify_parked, METH_VARARGS,
		"notify_parked(channels, action, arg='') -> int: wake the requests parked on any of the "
		"comma-separated channels with action (wsgo.RETRY, DISCONNECT, HTTP_204 or HTTP_504); a retry "
		"gets arg as its X-WSGo-Park-Arg header. Returns how many requests it woke."},
	{NULL},
};

static struct PyModuleDef wsgo_module = {
	PyModuleDef_HEAD_INIT, "wsgo", "The wsgo server's interface for applications.", -1,
	wsgo_module_methods,
};

static PyObject *wsgo_module_init(void)
{
	PyObject *m;
	if (PyType_Ready(&InputType) < 0 || PyType_Ready(&StartResponseType) < 0 ||
		PyType_Ready(&FileWrapperType) < 0)
		return NULL;
	m = PyModule_Create(&wsgo_module);
	if (m == NULL)
		return NULL;
	/*
	 * A BaseException, like KeyboardInterrupt: frameworks that turn every
	 * Exception into an error page (Django does) let it through, so the
	 * server sees the timeout and answers 502.
	 */
	timeout_exc = PyErr_NewExceptionWithDoc("wsgo.RequestTimeoutException",
		"Raised in a request's thread when it runs past --request-timeout.",
		PyExc_BaseException, NULL);
	if (timeout_exc == NULL) {
		Py_DECREF(m);
		return NULL;
	}
	Py_INCREF(timeout_exc);
	if (PyModule_AddObject(m, "RequestTimeoutException", timeout_exc) < 0) {
		Py_DECREF(timeout_exc);
		Py_DECREF(m);
		return NULL;
	}
	Py_INCREF(&FileWrapperType);
	if (PyModule_AddObject(m, "FileWrapper", (PyObject *)&FileWrapperType) < 0) {
		Py_DECREF(&FileWrapperType);
		Py_DECREF(m);
		return NULL;
	}
	if (PyModule_AddIntConstant(m, "DISCONNECT", WSGO_PARK_DISCONNECT) < 0 ||
		PyModule_AddIntConstant(m, "RETRY", WSGO_PARK_RETRY) < 0 ||
		PyModule_AddIntConstant(m, "HTTP_204", WSGO_PARK_HTTP_204) < 0 ||
		PyModule_AddIntConstant(m, "HTTP_504", WSGO_PARK_HTTP_504) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	{
		/* The decorators (MODULE_PY), run in the module's namespace. */
		PyObject *d = PyModule_GetDict(m); /* borrowed */
		PyObject *r;
		if (PyDict_SetItemString(d, "__builtins__", PyEval_GetBuiltins()) < 0) {
			Py_DECREF(m);
			return NULL;
		}
		r = PyRun_String(MODULE_PY, Py_file_input, d, d);
		if (r == NULL) {
			Py_DECREF(m);
			return NULL;
		}
		Py_DECREF(r);
		Py_INCREF(d);
		module_dict = d;
	}
	return m;
}

/*
 * Python helpers the server calls, kept out of the app's namespace.
 *
 * _release_logging_locks runs after a request was interrupted by a
 * timeout. An asynchronous exception that lands while logging acquires a
 * handler's lock leaves the lock held by this thread for ever (before
 * Python 3.13), and every other thread that logs then blocks on it.
 * Release whatever logging locks this thread still owns; it is not inside
 * logging any more, so none is legitimately held.
 *
 * _format_stack and _memory serve the SIGUSR1 and SIGUSR2 reports.
 */
static const char HELPERS[] =
	"def _release_logging_locks():\n"
	"    import sys\n"
	"    logging = sys.modules.get('logging')\n"
	"    if logging is None:\n"
	"        return 0\n"
	"    locks = [getattr(logging, '_lock', None)]\n"
	"    for ref in list(getattr(logging, '_handlerList', ())):\n"
	"        handler = ref()\n"
	"        if handler is not None:\n"
	"            locks.append(getattr(handler, 'lock', None))\n"
	"    released = 0\n"
	"    for lock in locks:\n"
	"        is_owned = getattr(lock, '_is_owned', None)\n"
	"        if is_owned is not None and is_owned():\n"
	"            lock._release_save()\n"
	"            released += 1\n"
	"    return released\n"
	"def _format_stack(ident):\n"
	"    import sys, traceback\n"
	"    frame = sys._current_frames().get(ident)\n"
	"    return ''.join(traceback.format_stack(frame)) if frame else ''\n"
	"def _memory():\n"
	"    import gc, sys\n"
	"    return 'python_blocks=%d gc_counts=%s' % (sys.getallocatedblocks(), gc.get_count())\n";

/* ---- errors ---- */

/*
 * Prints the pending exception and its traceback to sys.stderr and clears
 * it. Unlike PyErr_Print, a SystemExit raised by an app is reported rather
 * than obeyed, and sys.last_* are not set (they would keep the traceback's
 * frames alive). GIL held.
 */
static void print_error_locked(void)
{
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	if (type == NULL)
		return;
	PyErr_NormalizeException(&type, &value, &tb);
	if (tb != NULL && value != NULL)
		PyException_SetTraceback(value, tb);
	PyErr_Display(type, value, tb);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
}

/* ---- interpreter life cycle (GIL: see each function) ---- */

/*
 * wsgo_init starts the interpreter on the calling thread, which then holds
 * the GIL. program is the Python executable whose prefix (and pyvenv.cfg,
 * for a virtualenv) Python should use; sys.executable points at it, so an
 * app that starts sys.executable gets Python, not wsgo. Python installs no
 * signal handlers: the Go side owns signals. Returns 0 or -1.
 */
int wsgo_init(const char *program, const char *argv0, int multiprocess)
{
	PyConfig config;
	PyStatus status;
	char *argv[] = {(char *)argv0};
	size_t i;

	if (PyImport_AppendInittab("wsgo", wsgo_module_init) < 0)
		return -1;
	PyConfig_InitPythonConfig(&config);
	config.install_signal_handlers = 0;
	config.parse_argv = 0;
	status = PyConfig_SetBytesString(&config, &config.program_name, program);
	if (!PyStatus_Exception(status))
		status = PyConfig_SetBytesArgv(&config, 1, argv);
	if (!PyStatus_Exception(status))
		status = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(status)) {
		fprintf(stderr, "wsgo: could not start Python: %s%s%s\n",
			status.func ? status.func : "", status.func ? ": " : "",
			status.err_msg ? status.err_msg : "unknown error");
		return -1;
	}

	for (i = 0; i < WSGO_NFIELDS; i++) {
		static const char *const names[WSGO_NFIELDS] = {
			[WSGO_F_METHOD] = "REQUEST_METHOD",
			[WSGO_F_PATH] = "PATH_INFO",
			[WSGO_F_QUERY] = "QUERY_STRING",
			[WSGO_F_PROTOCOL] = "SERVER_PROTOCOL",
			[WSGO_F_SCHEME] = "wsgi.url_scheme",
			[WSGO_F_REMOTE_ADDR] = "REMOTE_ADDR",
			[WSGO_F_REMOTE_PORT] = "REMOTE_PORT",
			[WSGO_F_SERVER_NAME] = "SERVER_NAME",
			[WSGO_F_SERVER_PORT] = "SERVER_PORT",
			[WSGO_F_CONTENT_TYPE] = "CONTENT_TYPE",
			[WSGO_F_CONTENT_LENGTH] = "CONTENT_LENGTH",
			[WSGO_F_HTTPS] = "HTTPS",
		};
		field_keys[i] = PyUnicode_InternFromString(names[i]);
		if (field_keys[i] == NULL)
			goto fail;
	}
	for (i = 0; i < NCOMMON; i++) {
		common_lengths[i] = strlen(common_values[i]);
		common_objects[i] = PyUnicode_InternFromString(common_values[i]);
		if (common_objects[i] == NULL)
			goto fail;
	}
	key_wsgi_input = PyUnicode_InternFromString("wsgi.input");
	str_close = PyUnicode_InternFromString("close");
	if (key_wsgi_input == NULL || str_close == NULL)
		goto fail;

	{
		PyObject *sys_stderr = PySys_GetObject("stderr"); /* borrowed */
		base_environ = Py_BuildValue("{s:(ii),s:s,s:O,s:O,s:O,s:O,s:O,s:O,s:s}",
			"wsgi.version", 1, 0,
			"wsgi.url_scheme", "http",
			"wsgi.multithread", Py_True,
			"wsgi.multiprocess", multiprocess ? Py_True : Py_False,
			"wsgi.run_once", Py_False,
			"wsgi.input_terminated", Py_True,
			"wsgi.errors", sys_stderr ? sys_stderr : Py_None,
			"wsgi.file_wrapper", (PyObject *)&FileWrapperType,
			"SCRIPT_NAME", "");
		if (base_environ == NULL)
			goto fail;
	}
	/* Import the module now so that the types above are ready. */
	{
		PyObject *m = PyImport_ImportModule("wsgo");
		if (m == NULL)
			goto fail;
		Py_DECREF(m);
	}
	{
		PyObject *globals = PyDict_New(), *r;
		if (globals == NULL)
			goto fail;
		r = PyRun_String(HELPERS, Py_file_input, globals, globals);
		release_logging_locks = PyDict_GetItemString(globals, "_release_logging_locks");
		format_stack = PyDict_GetItemString(globals, "_format_stack");
		memory_report = PyDict_GetItemString(globals, "_memory");
		Py_XINCREF(release_logging_locks);
		Py_XINCREF(format_stack);
		Py_XINCREF(memory_report);
		Py_XDECREF(r);
		Py_DECREF(globals);
		if (release_logging_locks == NULL || format_stack == NULL || memory_report == NULL)
			goto fail;
	}
	return 0;
fail:
	print_error_locked();
	return -1;
}

/* Adds dir to sys.path, at the front or the end. Start-up thread, GIL held. */
int wsgo_add_sys_path(const char *dir, int front)
{
	PyObject *path = PySys_GetObject("path"); /* borrowed */
	PyObject *item = PyUnicode_DecodeFSDefault(dir);
	int rc;
	if (path == NULL || item == NULL) {
		Py_XDECREF(item);
		print_error_locked();
		return -1;
	}
	rc = front ? PyList_Insert(path, 0, item) : PyList_Append(path, item);
	Py_DECREF(item);
	if (rc < 0)
		print_error_locked();
	return rc;
}

/* Prints sys.path to stderr as a hint after a failed import. GIL held. */
static void print_sys_path_locked(const char *module)
{
	PyObject *path = PySys_GetObject("path"); /* borrowed */
	PyObject *repr = path ? PyObject_Repr(path) : NULL;
	fprintf(stderr, "wsgo: could not import module \"%s\" (sys.path: %s)\n", module,
		repr ? PyUnicode_AsUTF8(repr) : "?");
	Py_XDECREF(repr);
	PyErr_Clear();
}

/*
 * Imports module and looks up callable in it (a dotted attribute path; when
 * callable is empty: "application", then "app"). On failure prints why to
 * stderr and returns -1. Start-up thread, GIL held.
 */
int wsgo_load_app(const char *module, const char *callable)
{
	PyObject *m, *obj = NULL;
	const char *name = callable[0] ? callable : "application";
	m = PyImport_ImportModule(module);
	if (m == NULL) {
		print_error_locked();
		print_sys_path_locked(module);
		return -1;
	}
	obj = m;
	Py_INCREF(obj);
	{
		char *copy = strdup(name), *part, *save = NULL;
		for (part = strtok_r(copy, ".", &save); part && obj; part = strtok_r(NULL, ".", &save)) {
			PyObject *next = PyObject_GetAttrString(obj, part);
			Py_DECREF(obj);
			obj = next;
		}
		free(copy);
	}
	if (obj == NULL && !callable[0]) {
		PyErr_Clear();
		obj = PyObject_GetAttrString(m, "app");
	}
	Py_DECREF(m);
	if (obj == NULL) {
		PyErr_Clear();
		if (callable[0])
			fprintf(stderr, "wsgo: module \"%s\" has no attribute \"%s\"\n", module, callable);
		else
			fprintf(stderr, "wsgo: module \"%s\" defines neither \"application\" nor \"app\"; "
				"name the callable with --module %s:NAME\n", module, module);
		return -1;
	}
	if (!PyCallable_Check(obj)) {
		fprintf(stderr, "wsgo: %s:%s is a %s, not a WSGI callable\n", module, name,
			Py_TYPE(obj)->tp_name);
		Py_DECREF(obj);
		return -1;
	}
	app = obj;
	return 0;
}

/*
 * Takes the jobs that @wsgo.timer and @wsgo.cron registered while the app
 * imported (the module's _jobs list), and closes registration: a decorator
 * used later only warns. Returns how many there are, with *out set to a
 * malloc'd array (NULL when there are none) that the caller frees along
 * with each name; or -1 after printing why. The callables move to
 * job_funcs, which holds them for the interpreter's life; job i there is
 * (*out)[i]. Start-up thread, GIL held; called once.
 */
int wsgo_take_jobs(wsgo_job **out)
{
	PyObject *list;
	wsgo_job *jobs = NULL;
	Py_ssize_t i, n = 0;

	*out = NULL;
	list = PyDict_GetItemString(module_dict, "_jobs"); /* borrowed */
	if (list == NULL || !PyList_Check(list)) {
		fprintf(stderr, "wsgo: wsgo._jobs is no longer the list of registered jobs\n");
		return -1;
	}
	Py_INCREF(list);
	if (PyDict_SetItemString(module_dict, "_closed", Py_True) < 0)
		goto fail;
	n = PyList_GET_SIZE(list);
	job_funcs = PyList_New(n);
	if (job_funcs == NULL)
		goto fail;
	if (n > 0 && (jobs = calloc((size_t)n, sizeof(*jobs))) == NULL) {
		PyErr_NoMemory();
		goto fail;
	}
	for (i = 0; i < n; i++) {
		PyObject *item = PyList_GET_ITEM(list, i), *spec, *func; /* borrowed */
		const char *kind, *name;
		wsgo_job *j = &jobs[i];
		if (!PyArg_ParseTuple(item, "sOOs:wsgo._jobs", &kind, &spec, &func, &name))
			goto fail;
		if (strcmp(kind, "timer") == 0) {
			j->kind = WSGO_JOB_TIMER;
			j->period = PyFloat_AsDouble(spec);
			if (j->period == -1.0 && PyErr_Occurred())
				goto fail;
		} else if (strcmp(kind, "cron") == 0) {
			j->kind = WSGO_JOB_CRON;
			if (!PyArg_ParseTuple(spec, "iiiii:wsgo.cron", &j->cron[0], &j->cron[1],
				&j->cron[2], &j->cron[3], &j->cron[4]))
				goto fail;
		} else {
			PyErr_Format(PyExc_ValueError, "wsgo._jobs: unknown kind of job %R", item);
			goto fail;
		}
		if ((j->name = strdup(name)) == NULL) {
			PyErr_NoMemory();
			goto fail;
		}
		Py_INCREF(func);
		PyList_SET_ITEM(job_funcs, i, func); /* steals the new reference */
	}
	Py_DECREF(list);
	*out = jobs;
	return (int)n;
fail:
	print_error_locked();
	for (i = 0; jobs != NULL && i < n; i++)
		free(jobs[i].name);
	free(jobs);
	Py_CLEAR(job_funcs);
	Py_DECREF(list);
	return -1;
}

/* Releases the GIL held since wsgo_init so that workers can run. */
void wsgo_release_main(void)
{
	main_ts = PyEval_SaveThread();
}

/*
 * Retakes the GIL on the start-up thread and finalises Python, running the
 * app's atexit handlers. Every worker must have been freed first.
 */
void wsgo_finalize(void)
{
	PyEval_RestoreThread(main_ts);
	Py_FinalizeEx();
}

const char *wsgo_python_version(void)
{
	return Py_GetVersion();
}

/* ---- building the environ ---- */

static uint32_t read_u32(const char **p)
{
	uint32_t v;
	memcpy(&v, *p, 4);
	*p += 4;
	return v;
}

/* Returns a new reference: s decoded as latin-1, shared when it is common. */
static PyObject *latin1_value(const char *s, size_t n)
{
	size_t i;
	if (n <= 9) {
		for (i = 0; i < NCOMMON; i++) {
			if (common_lengths[i] == n && memcmp(common_values[i], s, n) == 0) {
				Py_INCREF(common_objects[i]);
				return common_objects[i];
			}
		}
	}
	return PyUnicode_DecodeLatin1(s, (Py_ssize_t)n, NULL);
}

/* Returns a new reference: the environ key for header name (e.g. "HTTP_ACCEPT"). */
static PyObject *header_key(const char *name, size_t n)
{
	char buf[5 + 64];
	size_t i, slot;
	uint32_t h = 2166136261u;
	PyObject *key;
	int cacheable = n <= 64;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)name[i]) * 16777619u;
	slot = h % HEADER_KEYS;
	if (cacheable) {
		for (i = 0; i < HEADER_KEYS; i++, slot = (slot + 1) % HEADER_KEYS) {
			if (header_keys[slot].key == NULL)
				break;
			if (header_keys[slot].len == n && memcmp(header_keys[slot].name, name, n) == 0) {
				Py_INCREF(header_keys[slot].key);
				return header_keys[slot].key;
			}
		}
		if (i == HEADER_KEYS)
			cacheable = 0;
	}
	if (!cacheable) {
		/* Long or uncached: build it for this request only. */
		PyObject *upper = PyUnicode_DecodeLatin1(name, (Py_ssize_t)n, NULL), *r;
		if (upper == NULL)
			return NULL;
		r = PyUnicode_FromFormat("HTTP_%U", upper);
		Py_DECREF(upper);
		if (r == NULL)
			return NULL;
		key = PyObject_CallMethod(r, "upper", NULL);
		Py_DECREF(r);
		if (key == NULL)
			return NULL;
		r = PyObject_CallMethod(key, "replace", "ss", "-", "_");
		Py_DECREF(key);
		return r;
	}
	memcpy(buf, "HTTP_", 5);
	for (i = 0; i < n; i++) {
		char c = name[i];
		buf[5 + i] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
	}
	key = PyUnicode_DecodeLatin1(buf, (Py_ssize_t)(5 + n), NULL);
	if (key == NULL)
		return NULL;
	PyUnicode_InternInPlace(&key);
	memcpy(header_keys[slot].name, name, n);
	header_keys[slot].len = n;
	header_keys[slot].key = key;
	Py_INCREF(key);
	return key;
}

/* Sets env[key] = value, stealing the value reference. */
static int set_stolen(PyObject *env, PyObject *key, PyObject *value)
{
	int rc;
	if (value == NULL)
		return -1;
	rc = PyDict_SetItem(env, key, value);
	Py_DECREF(value);
	return rc;
}

/*
 * Returns a new reference: the environ for the packed request (format:
 * WSGO_NFIELDS of [i32 length][bytes], length -1 when absent; then
 * [u32 count] headers of [u32][name][u32][value]). GIL held.
 */
static PyObject *build_environ_locked(const char *p)
{
	PyObject *env = PyDict_Copy(base_environ);
	uint32_t i, n;
	if (env == NULL)
		return NULL;
	for (i = 0; i < WSGO_NFIELDS; i++) {
		int32_t len = (int32_t)read_u32(&p);
		if (len < 0)
			continue;
		if (set_stolen(env, field_keys[i], latin1_value(p, (size_t)len)) < 0)
			goto fail;
		p += len;
	}
	n = read_u32(&p);
	for (i = 0; i < n; i++) {
		uint32_t klen = read_u32(&p);
		const char *name = p;
		uint32_t vlen;
		PyObject *key;
		int rc;
		p += klen;
		vlen = read_u32(&p);
		key = header_key(name, klen);
		if (key == NULL)
			goto fail;
		rc = set_stolen(env, key, PyUnicode_DecodeLatin1(p, vlen, NULL));
		Py_DECREF(key);
		if (rc < 0)
			goto fail;
		p += vlen;
	}
	return env;
fail:
	Py_DECREF(env);
	return NULL;
}

/* ---- workers ---- */

static void acquire(wsgo_worker *w)
{
	if (!w->holds_gil) {
		PyEval_RestoreThread(w->ts);
		w->holds_gil = 1;
	}
}


void wsgo_worker_release_gil(wsgo_worker *w)
{
	if (w->holds_gil) {
		w->holds_gil = 0;
		PyEval_SaveThread();
	}
}

/*
 * Creates the worker for the calling OS thread, with a thread state that
 * lives as long as the worker (so threading.local data persists between
 * requests). Needs no GIL and returns without it.
 */
wsgo_worker *wsgo_worker_new(int id)
{
	wsgo_worker *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->id = id;
	w->ident = PyThread_get_thread_ident();
	sem_init(&w->wake, 0, 0);
	w->ts = PyThreadState_New(main_ts->interp);
	return w;
}

/* The worker's result, updated in place by every call. No GIL needed. */
wsgo_result *wsgo_worker_result(wsgo_worker *w)
{
	return &w->res;
}

/*
 * After a request or job run that RequestTimeoutException was sent to:
 * clears the exception if it arrived too late to land (it must not hit the
 * thread's next request or run), and releases any logging lock the thread
 * was left holding. GIL held.
 */
static void after_interrupt_locked(wsgo_worker *w)
{
	PyObject *r;
	if (!w->interrupted)
		return;
	PyThreadState_SetAsyncExc(w->ident, NULL);
	w->interrupted = 0;
	r = PyObject_CallNoArgs(release_logging_locks);
	if (r == NULL)
		print_error_locked();
	else if (PyLong_AsLong(r) > 0)
		fprintf(stderr, "wsgo: worker %d released %ld logging lock(s) left held by the timeout\n",
			w->id, PyLong_AsLong(r));
	Py_XDECREF(r);
}

/*
 * Ends the current request, if any: calls the result's close() (once), and
 * drops every per-request reference. Returns 0, or -1 when close() raised
 * (the error is printed). GIL held.
 */
static int finish_locked(wsgo_worker *w)
{
	int rc = 0;
	if (!w->pending)
		return 0;
	w->pending = 0;
	if (w->result != NULL && !PyList_CheckExact(w->result) && !PyTuple_CheckExact(w->result)) {
		PyObject *close = PyObject_GetAttr(w->result, str_close);
		if (close != NULL) {
			PyObject *r = PyObject_CallNoArgs(close);
			Py_DECREF(close);
			if (r == NULL) {
				print_error_locked();
				rc = -1;
			}
			Py_XDECREF(r);
		} else {
			PyErr_Clear();
		}
	}
	after_interrupt_locked(w);
	if (w->sr != NULL)
		w->sr->worker = NULL;
	Py_CLEAR(w->chunk);
	Py_CLEAR(w->iter);
	Py_CLEAR(w->result);
	Py_CLEAR(w->sr);
	Py_CLEAR(w->environ);
	return rc;
}

int wsgo_worker_finish(wsgo_worker *w)
{
	acquire(w);
	return finish_locked(w);
}

/* Finishes the current request and releases the GIL, before the worker waits. */
static void idle(wsgo_worker *w)
{
	if (w->pending) {
		acquire(w);
		finish_locked(w);
	}
	wsgo_worker_release_gil(w);
}

/*
 * Finishes the current request, releases the GIL and sleeps until
 * wsgo_worker_unpark (an unpark that came first counts), then takes the GIL
 * again. Waiting here rather than in Go means a wake-up is one futex wake
 * of this thread, not a hand-over through Go's scheduler.
 */
void wsgo_worker_park(wsgo_worker *w)
{
	idle(w);
	while (sem_wait(&w->wake) != 0 && errno == EINTR)
		;
	acquire(w);
}

/* Wakes the worker from wsgo_worker_park. Any thread; no GIL needed. */
void wsgo_worker_unpark(wsgo_worker *w)
{
	sem_post(&w->wake);
}

/* Frees the worker and its thread state. Called on its own thread. */
void wsgo_worker_free(wsgo_worker *w)
{
	acquire(w);
	finish_locked(w);
	PyThreadState_Clear(w->ts);
	PyThreadState_DeleteCurrent(); /* also releases the GIL */
	sem_destroy(&w->wake);
	free(w->hdrbuf);
	free(w->chunks);
	free(w);
}

/* Prints the app's error, noting whether it was the request timeout. */
static void app_error_locked(wsgo_worker *w)
{
	if (PyErr_ExceptionMatches(timeout_exc))
		w->res.timed_out = 1;
	print_error_locked();
}

/* Marks the request failed: the caller answers 500 if nothing was sent. */
static wsgo_result *fail_locked(wsgo_worker *w)
{
	app_error_locked(w);
	w->res.kind = WSGO_ERROR;
	return &w->res;
}

/*
 * Returns (malloc'd, for the caller to free) the result of calling helper
 * with arg (NULL: no argument), as UTF-8 text, or NULL after printing an
 * error. Steals the reference to arg. Called on self's thread; takes the
 * GIL for the call and releases it after.
 */
static char *call_helper_text(wsgo_worker *self, PyObject *helper, PyObject *arg)
{
	PyObject *r;
	char *text = NULL;
	acquire(self);
	r = arg ? PyObject_CallOneArg(helper, arg) : PyObject_CallNoArgs(helper);
	if (r != NULL && PyUnicode_Check(r)) {
		const char *utf8 = PyUnicode_AsUTF8(r);
		if (utf8 != NULL)
			text = strdup(utf8);
	}
	if (text == NULL)
		print_error_locked();
	Py_XDECREF(r);
	Py_XDECREF(arg);
	wsgo_worker_release_gil(self);
	return text;
}

/* The Python stack of target's thread, for SIGUSR1; see call_helper_text. */
char *wsgo_worker_stack(wsgo_worker *self, wsgo_worker *target)
{
	PyObject *ident;
	acquire(self);
	ident = PyLong_FromUnsignedLong(target->ident);
	wsgo_worker_release_gil(self);
	return ident ? call_helper_text(self, format_stack, ident) : NULL;
}

/* Python's memory figures, for SIGUSR2; see call_helper_text. */
char *wsgo_memory_report(wsgo_worker *self)
{
	return call_helper_text(self, memory_report, NULL);
}

/*
 * Runs job index (see wsgo_take_jobs) on w's thread as run runid: calls it
 * with no arguments and drops what it returns. While it runs,
 * wsgo_worker_interrupt with runid raises RequestTimeoutException in it,
 * as in a request. Returns 0 when it returned, -1 when it raised (the
 * traceback is printed), or -2 when what it raised was
 * RequestTimeoutException. Takes the GIL and releases it before returning,
 * since a job thread waits long between runs. w runs no requests.
 */
int wsgo_worker_run_job(wsgo_worker *w, int index, uint64_t runid)
{
	PyObject *func, *r;
	int rc = 0;
	acquire(w);
	func = PyList_GET_ITEM(job_funcs, index); /* borrowed; hold it for the call */
	Py_INCREF(func);
	w->pending = 1;
	w->reqid = runid;
	r = PyObject_CallNoArgs(func);
	if (r == NULL) {
		rc = PyErr_ExceptionMatches(timeout_exc) ? -2 : -1;
		print_error_locked();
	}
	/* No interrupt can be sent from here on; one that came too late is dropped. */
	w->pending = 0;
	Py_XDECREF(r);
	Py_DECREF(func);
	after_interrupt_locked(w);
	wsgo_worker_release_gil(w);
	return rc;
}

/*
 * Raises RequestTimeoutException in target's thread if it is still running
 * request (or job run) reqid. Called on self's thread (a timeout monitor's:
 * the housekeeper's or the job scheduler's); takes the GIL for the call and
 * releases it after. Returns 1 if the exception was sent. The exception
 * lands when target next runs Python bytecode.
 */
int wsgo_worker_interrupt(wsgo_worker *self, wsgo_worker *target, uint64_t reqid)
{
	int sent = 0;
	acquire(self);
	if (target->pending && target->reqid == reqid && !target->interrupted) {
		target->interrupted = 1;
		sent = PyThreadState_SetAsyncExc(target->ident, timeout_exc) == 1;
	}
	wsgo_worker_release_gil(self);
	return sent;
}

/*
 * Collects a list or tuple of bytes into w->chunks. Returns 0, or -1 with
 * TypeError when an item is not bytes. GIL held.
 */
static int collect_chunks_locked(wsgo_worker *w, PyObject *seq)
{
	Py_ssize_t i, n = PySequence_Fast_GET_SIZE(seq);
	PyObject **items = PySequence_Fast_ITEMS(seq);
	if ((size_t)n > w->chunkcap) {
		w->chunks = realloc(w->chunks, n * sizeof(wsgo_chunk));
		if (w->chunks == NULL)
			abort();
		w->chunkcap = (size_t)n;
	}
	w->res.total = 0;
	for (i = 0; i < n; i++) {
		if (!PyBytes_Check(items[i])) {
			PyErr_Format(PyExc_TypeError, "response item %zd must be bytes, not %.100s", i,
				Py_TYPE(items[i])->tp_name);
			return -1;
		}
		w->chunks[i].data = PyBytes_AS_STRING(items[i]);
		w->chunks[i].len = (size_t)PyBytes_GET_SIZE(items[i]);
		w->res.total += w->chunks[i].len;
	}
	w->res.chunks = w->chunks;
	w->res.nchunks = (size_t)n;
	return 0;
}

/*
 * Runs one request: builds the environ from the packed request, calls the
 * app, and sorts out what it returned. The returned result (owned by the
 * worker) tells Go how to send the body. The previous request, if Go did
 * not finish it, is finished first. Returns holding the GIL.
 */
wsgo_result *wsgo_worker_run(wsgo_worker *w, uint64_t reqid, const char *req,
	int64_t body_buffered, int body_more)
{
	InputObject *input;
	PyObject *args[2];

	acquire(w);
	finish_locked(w);
	w->pending = 1;
	w->reqid = reqid;
	memset(&w->res, 0, sizeof(w->res));
	w->res.kind = WSGO_ERROR;
	w->res.fd = -1;

	w->environ = build_environ_locked(req);
	if (w->environ == NULL)
		return fail_locked(w);
	input = PyObject_New(InputObject, &InputType);
	if (input == NULL)
		return fail_locked(w);
	input->worker = w->id;
	input->reqid = reqid;
	input->buffered = body_buffered;
	input->more = body_more;
	input->eof = 0;
	input->ahead = NULL;
	input->ahead_pos = input->ahead_len = input->ahead_cap = 0;
	if (set_stolen(w->environ, key_wsgi_input, (PyObject *)input) < 0)
		return fail_locked(w);
	w->sr = PyObject_New(StartResponseObject, &StartResponseType);
	if (w->sr == NULL)
		return fail_locked(w);
	w->sr->worker = w;
	w->sr->status_code = 0;
	w->sr->headers = NULL;

	args[0] = w->environ;
	args[1] = (PyObject *)w->sr;
	w->result = PyObject_Vectorcall(app, args, 2, NULL);
	if (w->result == NULL)
		return fail_locked(w);

	if (PyList_CheckExact(w->result) || PyTuple_CheckExact(w->result)) {
		if (collect_chunks_locked(w, w->result) < 0)
			return fail_locked(w);
		if (w->sr->status_code == 0) {
			PyErr_SetString(PyExc_RuntimeError, "the app returned without calling start_response");
			return fail_locked(w);
		}
		w->res.kind = WSGO_CHUNKS;
	} else if (Py_TYPE(w->result) == &FileWrapperType && w->sr->status_code != 0 &&
		file_wrapper_fd_locked((FileWrapperObject *)w->result, &w->res)) {
		w->res.kind = WSGO_FILE;
	} else {
		if (PyBytes_Check(w->result) || PyUnicode_Check(w->result)) {
			PyErr_Format(PyExc_TypeError,
				"the app returned %.100s; a WSGI response is an iterable of bytes, such as [body]",
				Py_TYPE(w->result)->tp_name);
			return fail_locked(w);
		}
		w->iter = PyObject_GetIter(w->result);
		if (w->iter == NULL)
			return fail_locked(w);
		w->res.kind = WSGO_ITER;
		if ((Py_TYPE(w->iter) == &PyListIter_Type || Py_TYPE(w->iter) == &PyTupleIter_Type) &&
			w->sr->status_code != 0) {
			/*
			 * An object that iterates over a list (Django's HttpResponse does)
			 * has its whole body in memory already: send it like a list, with
			 * a Content-Length and no flush per chunk. Draining a list iterator
			 * runs no app code. The result is still closed in finish_locked.
			 */
			PyObject *items = PySequence_List(w->iter);
			if (items == NULL)
				return fail_locked(w);
			Py_SETREF(w->iter, items);
			if (collect_chunks_locked(w, items) < 0)
				return fail_locked(w);
			w->res.kind = WSGO_CHUNKS;
		}
	}
	pack_headers_locked(w);
	return &w->res;
}

/*
 * Pulls the next chunk of a WSGO_ITER response into out. Returns 1 with a
 * chunk (owned by the worker until the next call), 0 at the end, or -1 when
 * the app failed (printed). Headers, once start_response has been called,
 * are packed into the worker's result for Go. Returns holding the GIL,
 * except after a chunk when release is set: then Go is about to write it
 * to the client, which may block, and the release saves it a call.
 */
int wsgo_worker_next(wsgo_worker *w, wsgo_chunk *out, int release)
{
	PyObject *item;
	acquire(w);
	Py_CLEAR(w->chunk);
	item = PyIter_Next(w->iter);
	if (item == NULL) {
		if (PyErr_Occurred()) {
			app_error_locked(w);
			return -1;
		}
		if (w->sr->status_code == 0) {
			PyErr_SetString(PyExc_RuntimeError, "the app returned without calling start_response");
			print_error_locked();
			return -1;
		}
		pack_headers_locked(w);
		return 0;
	}
	if (!PyBytes_Check(item)) {
		PyErr_Format(PyExc_TypeError, "the app yielded %.100s; response chunks must be bytes",
			Py_TYPE(item)->tp_name);
		Py_DECREF(item);
		print_error_locked();
		return -1;
	}
	if (w->sr->status_code == 0) {
		Py_DECREF(item);
		PyErr_SetString(PyExc_RuntimeError, "the app yielded body data before calling start_response");
		print_error_locked();
		return -1;
	}
	w->chunk = item;
	out->data = PyBytes_AS_STRING(item);
	out->len = (size_t)PyBytes_GET_SIZE(item);
	pack_headers_locked(w);
	if (release)
		wsgo_worker_release_gil(w);
	return 1;
}
