/*
 * The C half of wsgo's Python boundary.
 *
 * Everything that touches CPython lives in wsgo.c; Go reaches it only through
 * the functions declared here. Conventions, stated once and relied on by
 * every function below:
 *
 *  - A wsgo_worker belongs to one OS thread for its whole life (the Go side
 *    locks its goroutine to that thread). It owns one PyThreadState.
 *  - worker->holds_gil says whether that thread currently holds the GIL.
 *    Every wsgo_worker_* function acquires the GIL if it is not held and
 *    returns still holding it, except wsgo_worker_release_gil,
 *    wsgo_worker_free, wsgo_worker_run_job and the calls made from a monitor
 *    thread (interrupt, stack, memory report), which return without it. So a
 *    worker that finds more queued work keeps the GIL between requests
 *    instead of handing it to another thread.
 *  - Python objects named in wsgo_worker are strong references owned by the
 *    worker; nothing returned to Go is a Python object. Pointers returned to
 *    Go (header and body bytes) point into objects the worker still owns, and
 *    stay valid until the next wsgo_worker_* call on the same worker.
 */
#ifndef WSGO_H
#define WSGO_H

#include <stddef.h>
#include <stdint.h>

/* Request fields in the order Go packs them (see Go's packRequest). */
enum {
	WSGO_F_METHOD,
	WSGO_F_PATH,
	WSGO_F_QUERY,
	WSGO_F_PROTOCOL,
	WSGO_F_SCHEME,
	WSGO_F_REMOTE_ADDR,
	WSGO_F_REMOTE_PORT,
	WSGO_F_SERVER_NAME,
	WSGO_F_SERVER_PORT,
	WSGO_F_CONTENT_TYPE,
	WSGO_F_CONTENT_LENGTH,
	WSGO_F_HTTPS,
	WSGO_NFIELDS
};

/* What the application's response turned out to be. */
enum {
	WSGO_ERROR = -1,  /* the app failed before its headers went out: answer 500 */
	WSGO_CHUNKS = 0,  /* a list or tuple of bytes: result.chunks holds them all */
	WSGO_ITER = 1,    /* any other iterable: pull chunks with wsgo_worker_next */
	WSGO_FILE = 2,    /* a wsgi.file_wrapper over a regular file: send result.fd */
};

/* A body chunk: bytes owned by a Python object the worker holds. */
typedef struct {
	const char *data;
	size_t len;
} wsgo_chunk;

/*
 * The outcome of wsgo_worker_run, read by Go. Headers are packed as
 * repeated [u32 name length][name][u32 value length][value], in latin-1.
 */
typedef struct {
	int kind;
	int status;             /* numeric status, e.g. 200 */
	int headers_sent;       /* set by Go once the status line has gone out */
	int timed_out;          /* the app failed with RequestTimeoutException */
	const char *headers;
	size_t headers_len;
	const wsgo_chunk *chunks; /* WSGO_CHUNKS */
	size_t nchunks;
	size_t total;             /* WSGO_CHUNKS: sum of chunk lengths */
	int fd;                   /* WSGO_FILE: a descriptor the app's file still owns */
	int64_t offset;           /* WSGO_FILE: where the app's file stands */
	int64_t length;           /* WSGO_FILE: bytes from offset to the end */
} wsgo_result;

typedef struct wsgo_worker wsgo_worker;

/*
 * What a parked request's timeout or wsgo.notify_parked does with it; the
 * values of wsgo.DISCONNECT, wsgo.RETRY, wsgo.HTTP_204 and wsgo.HTTP_504
 * (numbered as in the original wsgo).
 */
enum {
	WSGO_PARK_DISCONNECT = 0,
	WSGO_PARK_RETRY = 1,
	WSGO_PARK_HTTP_204 = 2,
	WSGO_PARK_HTTP_504 = 3,
};

/* The kinds of background job the app can register. */
enum {
	WSGO_JOB_TIMER = 0, /* @wsgo.timer(period) */
	WSGO_JOB_CRON = 1,  /* @wsgo.cron(min, hour, day, mon, wday) */
};

/* A job registered while the app imported, as wsgo_take_jobs reports it. */
typedef struct {
	int kind;
	double period;  /* WSGO_JOB_TIMER: seconds, above 0 */
	int cron[5];    /* WSGO_JOB_CRON: min, hour, day, mon, wday; -1 matches any */
	char *name;     /* malloc'd UTF-8 "module.qualname", for logs */
} wsgo_job;

/* Interpreter life cycle: called on one dedicated OS thread. */
int wsgo_init(const char *program, const char *argv0, int multiprocess);
int wsgo_add_sys_path(const char *dir, int front);
int wsgo_load_app(const char *module, const char *callable);
int wsgo_take_jobs(wsgo_job **out);
void wsgo_release_main(void);
void wsgo_finalize(void);
const char *wsgo_python_version(void);

/* Worker threads. */
wsgo_worker *wsgo_worker_new(int id);
void wsgo_worker_free(wsgo_worker *w);
wsgo_result *wsgo_worker_result(wsgo_worker *w);
void wsgo_worker_release_gil(wsgo_worker *w);
void wsgo_worker_park(wsgo_worker *w);
void wsgo_worker_unpark(wsgo_worker *w);
wsgo_result *wsgo_worker_run(wsgo_worker *w, uint64_t reqid, const char *req,
	int64_t body_buffered, int body_more);
int wsgo_worker_next(wsgo_worker *w, wsgo_chunk *out, int release);
int wsgo_worker_finish(wsgo_worker *w);
int wsgo_worker_run_job(wsgo_worker *w, int index, uint64_t runid);
int wsgo_worker_interrupt(wsgo_worker *self, wsgo_worker *target, uint64_t reqid);
char *wsgo_worker_stack(wsgo_worker *self, wsgo_worker *target);
char *wsgo_memory_report(wsgo_worker *self);

#endif
