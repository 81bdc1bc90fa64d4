/*
 * api.c -- the REST server behind pw serve: libmicrohttpd with a pool of
 * threads, a router, the JSON envelope, and handlers that call the rest
 * of libpw (no SQL here).
 *
 * Threads: the acceptor accepts each connection and gives it to one of
 * libmicrohttpd's THREAD_POOL_SIZE workers, each polling its own share
 * of the connections and calling on_request. A worker opens its
 * own struct pw_ctx on the state file at its first request and keeps it
 * (thread-specific data) until the worker ends, when the key's destructor
 * closes it; no context is ever shared. Writes stay short transactions in
 * lib, so other pw processes on the same file are not held up.
 *
 * Selections and outcomes go through the server's view of the pool
 * (view.c): in memory, no lock held across a request, outcomes written
 * in batches by the flusher (housekeep.c). Each request first lets the
 * view check (at most every PW_VIEW_CHECK_MS) whether another process
 * changed the file; a request that wrote to it makes the view reload
 * before its response goes, so the next request sees the change. A
 * worker reads its settings again when the view reloaded or SIGHUP came.
 *
 * Every request goes through the steps in `pipeline` (request id, Host,
 * CORS and Origin, body limit, route, API key, rate limit, JSON body,
 * handler).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delegate.h"
#include "httpd.h"
#include "net.h"
#include "ratelimit.h"

#define BODY_MAX_DEFAULT	((size_t)1 << 20)
/* The largest target response POST /api/v1/request holds. */
#define FETCH_BODY_MAX		((size_t)10 << 20)
#define PAGE_SIZE_MAX		500
#define PAGE_SIZE_DEFAULT	50
#define TIMEOUT_MAX		300
#define RID_MAX			128

/* What the server counts, for /api/v1/metrics and /metrics. */
#define RATE_WINDOW	60		/* seconds of requests per second */
#define IDLE_S		60		/* an idle connection is closed */
#define READ_MS_DEFAULT	(30 * 1000)	/* to send a whole request */
#define WATCH_TICK_MS	200		/* how often deadlines are checked */
struct metrics {
	int64_t	completed;
	int64_t	by_class[6];		/* 1xx .. 5xx; [0]: none sent */
	double	latency_sum_ms;
	int64_t	sec_stamp[RATE_WINDOW];
	int64_t	sec_count[RATE_WINDOW];
};

struct pw_server {
	struct MHD_Daemon	*d;
	int			 fd;
	char			*state;
	const struct pw_config	*cfg;		/* template for each thread */
	pthread_key_t		 key;
	size_t			 body_max;
	int			 log;
	unsigned int		 threads;
	char			 addr[128];
	char			 listen_host[256];	/* as --listen has it */
	int64_t			 started_ms;
	atomic_long		 inflight;
	atomic_long		 requests;
	struct pw_rl_server	*rl;		/* rate limiting */
	struct pw_view		*view;		/* the pool in memory */
	struct pw_housekeep	*hk;		/* flusher, pruning, health */
	atomic_uint		 hup;		/* SIGHUPs seen */
	/* The settings generation the rate limiter took up (use_ctx). */
	atomic_ullong		 rl_gen;
	pthread_mutex_t		 mu;		/* guards what follows */
	struct metrics		 m;
	/*
	 * Connections reading a request, and their deadlines: libmicrohttpd
	 * only closes a connection idle for IDLE_S, which a client sending
	 * a byte now and then never is.
	 */
	int64_t			 read_ms;
	pthread_t		 watcher;
	int			 watching;	/* the thread runs */
	pthread_t		 acceptor;
	int			 accepting;	/* the thread runs */
	atomic_int		 closing;	/* it is to end */
	pthread_mutex_t		 wmu;		/* guards what follows */
	pthread_cond_t		 wcv;
	int			 wstop;
	struct watch		*watched;
};

/* A connection of the server, as the watcher sees it. */
struct watch {
	struct watch	*prev, *next;
	int		 fd;
	int64_t		 deadline;	/* pw_mono_ms(); 0: none */
};

/* A worker's context, and the settings generation it has read. */
struct worker {
	struct pw_ctx	ctx;		/* first: ctx_free takes either */
	uint64_t	gen;
	/* Whether any API key exists, as of view generation keys_gen. */
	int		any_keys;
	uint64_t	keys_gen;
};

struct req;
typedef int handler_fn(struct req *);

struct route {
	const char	*method;
	const char	*path;		/* "{id}" matches one segment */
	handler_fn	*fn;
	int		 body;		/* takes a JSON object (BODY_*) */
	int		 open;		/* served without an API key */
	/*
	 * The members the body's object may have, space-separated, checked
	 * before the handler runs; NULL: the handler checks them itself.
	 */
	const char	*keys;
};
#define BODY_NONE	0
#define BODY_JSON	1		/* a JSON object is required */
#define BODY_OPT	2		/* a JSON object, or nothing */

struct req {
	struct pw_server	*srv;
	struct MHD_Connection	*c;
	char			*method;
	char			*path;
	char			 rid[RID_MAX + 1];
	struct pw_buf		 body;
	int			 too_big;
	int			 replied;
	int			 send_failed;	/* close the connection */
	unsigned int		 status;
	int64_t			 t0;
	const struct route	*route;
	char			 param[64];	/* the {id} segment */
	cJSON			*json;		/* the parsed body */
	struct pw_ctx		*ctx;
	/* The caller's key (key.id 0: none), for the rate limiter too. */
	struct pw_apikey	 key;
	const char		*cors;		/* Origin allowed, or NULL */
	const char		*xhdr[6][2];	/* more response headers */
	char			 allow[64];	/* a preflight's methods */
	int			 nxhdr;
	int			 limited;	/* rl says something */
	struct pw_rl_verdict	 rl;
	int64_t			 rl_changes;	/* its writes to the file */
};

/* Add a header to the response q will send; both strings outlive it. */
static void
add_header(struct req *q, const char *name, const char *value)
{
	if (q->nxhdr < (int)(sizeof q->xhdr / sizeof q->xhdr[0])) {
		q->xhdr[q->nxhdr][0] = name;
		q->xhdr[q->nxhdr][1] = value;
		q->nxhdr++;
	}
}

/* ------------------------------------------------------------- replies */

/* Rate limiting's, at the end. */
static int	h_rl_metrics(struct req *);
static int	h_rl_config_get(struct req *);
static int	h_rl_config_put(struct req *);
static int	h_rl_status(struct req *);
static void	rl_prometheus(struct pw_server *, struct pw_buf *);

static int	send_body(struct req *, unsigned int, const char *, size_t,
		    const char *, const char *, const char *);
static int	keys_needed(struct req *, int *);

static void
iso_time(int64_t t, char *buf, size_t n)
{
	time_t		tt = (time_t)t;
	struct tm	tm;

	gmtime_r(&tt, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
iso_time_ms(int64_t ms, char *buf, size_t n)
{
	time_t		tt = (time_t)(ms / 1000);
	struct tm	tm;
	char		s[32];

	gmtime_r(&tt, &tm);
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, n, "%s.%03dZ", s, (int)(ms % 1000));
}

static void
add_str(cJSON *o, const char *k, const char *v)
{
	cJSON_AddItemToObject(o, k, v != NULL ? cJSON_CreateString(v) :
	    cJSON_CreateNull());
}

static void
add_num(cJSON *o, const char *k, double v)
{
	cJSON_AddItemToObject(o, k, cJSON_CreateNumber(v));
}

static void
add_bool(cJSON *o, const char *k, int v)
{
	cJSON_AddItemToObject(o, k, cJSON_CreateBool(v));
}

static void
add_time(cJSON *o, const char *k, int64_t t)
{
	char	buf[32];

	if (t == 0) {
		cJSON_AddItemToObject(o, k, cJSON_CreateNull());
		return;
	}
	iso_time(t, buf, sizeof buf);
	cJSON_AddItemToObject(o, k, cJSON_CreateString(buf));
}

/* s as a JSON string, or null. */
static void
json_strz(struct pw_buf *b, const char *s)
{
	if (s != NULL)
		pw_buf_json(b, s, strlen(s));
	else
		pw_buf_adds(b, "null");
}

/*
 * Queue the response: the envelope around data, JSON text (NULL: null)
 * and, when code is set, the error code/message/details (details JSON
 * text, NULL: {}). An error may carry data too (an unhealthy health
 * check). 204 has no body at all, as HTTP wants.
 */
static int
reply_text(struct req *q, unsigned int status, const char *data,
    const char *code, const char *message, const char *details,
    const char *allow, const char *location)
{
	struct pw_buf	b;
	char		ts[40];
	int		ok;

	if (status == 204)
		return send_body(q, status, "", 0, NULL, allow, location);
	pw_buf_init(&b);
	pw_buf_grow(&b, (data != NULL ? strlen(data) : 0) + (details != NULL ?
	    strlen(details) : 0) + 512);
	pw_buf_adds(&b, code == NULL ? "{\"status\":\"success\",\"data\":" :
	    "{\"status\":\"error\",\"data\":");
	pw_buf_adds(&b, data != NULL ? data : "null");
	if (code != NULL) {
		pw_buf_adds(&b, ",\"error\":{\"code\":");
		json_strz(&b, code);
		pw_buf_adds(&b, ",\"message\":");
		json_strz(&b, message);
		pw_buf_adds(&b, ",\"details\":");
		pw_buf_adds(&b, details != NULL ? details : "{}");
		pw_buf_adds(&b, "}");
	} else
		pw_buf_adds(&b, ",\"error\":null");
	iso_time_ms(pw_now_ms(), ts, sizeof ts);
	pw_buf_adds(&b, ",\"meta\":{\"timestamp\":");
	json_strz(&b, ts);
	pw_buf_adds(&b, ",\"request_id\":");
	json_strz(&b, q->rid);
	pw_buf_adds(&b, ",\"version\":\"" PW_VERSION "\"}}");
	ok = send_body(q, status, b.data, b.len, "application/json", allow,
	    location);
	pw_buf_release(&b);
	return ok;
}

/* reply_text with data and details as cJSON (both taken). */
static int
reply_full(struct req *q, unsigned int status, cJSON *data, const char *code,
    const char *message, cJSON *details, const char *allow,
    const char *location)
{
	char	*dt = NULL, *et = NULL;
	int	 ok = -1;

	if (status != 204 && ((data != NULL &&
	    (dt = cJSON_PrintUnformatted(data)) == NULL) || (code != NULL &&
	    details != NULL && (et = cJSON_PrintUnformatted(details)) ==
	    NULL))) {
		q->replied = 1;
		q->status = status;
		q->send_failed = 1;
	} else
		ok = reply_text(q, status, dt, code, message, et, allow,
		    location);
	cJSON_Delete(data);
	cJSON_Delete(details);
	cJSON_free(dt);
	cJSON_free(et);
	return ok;
}

/* X-RateLimit-*: the binding counter; Retry-After when refused. */
static void
rl_headers(struct req *q, struct MHD_Response *r)
{
	char	v[32];

	snprintf(v, sizeof v, "%lld", (long long)q->rl.limit);
	MHD_add_response_header(r, "X-RateLimit-Limit", v);
	snprintf(v, sizeof v, "%lld", (long long)q->rl.remaining);
	MHD_add_response_header(r, "X-RateLimit-Remaining", v);
	snprintf(v, sizeof v, "%lld", (long long)(q->rl.reset_ms + 999) / 1000);
	MHD_add_response_header(r, "X-RateLimit-Reset", v);
	if (!q->rl.allowed) {
		snprintf(v, sizeof v, "%lld", (long long)(q->rl.retry_ms +
		    999) / 1000);
		MHD_add_response_header(r, "Retry-After", v);
	}
}

/* Queue status with the body (copied) and the headers every one has. */
static int
send_body(struct req *q, unsigned int status, const char *body, size_t len,
    const char *ctype, const char *allow, const char *location)
{
	struct MHD_Response	*r;
	int			 ok;

	q->replied = 1;
	q->status = status;
	r = MHD_create_response_from_buffer(len, (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	if (r == NULL) {
		q->send_failed = 1;
		return -1;
	}
	if (ctype != NULL)
		MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "X-Request-ID", q->rid);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (allow != NULL)
		MHD_add_response_header(r, "Allow", allow);
	if (location != NULL)
		MHD_add_response_header(r, "Location", location);
	if (q->limited)
		rl_headers(q, r);
	if (q->cors != NULL) {
		MHD_add_response_header(r, "Access-Control-Allow-Origin",
		    q->cors);
		MHD_add_response_header(r, "Access-Control-Expose-Headers",
		    "X-Request-ID");
	}
	/* Whether CORS headers are sent depends on Origin: say so. */
	MHD_add_response_header(r, "Vary", "Origin");
	for (int i = 0; i < q->nxhdr; i++)
		MHD_add_response_header(r, q->xhdr[i][0], q->xhdr[i][1]);
	ok = MHD_queue_response(q->c, status, r) == MHD_YES;
	MHD_destroy_response(r);
	if (!ok)
		q->send_failed = 1;
	return ok ? 0 : -1;
}

static int
reply(struct req *q, unsigned int status, cJSON *data)
{
	return reply_full(q, status, data, NULL, NULL, NULL, NULL, NULL);
}

static int
fail(struct req *q, unsigned int status, const char *code, cJSON *details,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int
fail(struct req *q, unsigned int status, const char *code, cJSON *details,
    const char *fmt, ...)
{
	char	msg[sizeof ((struct pw_err *)0)->msg + 100];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return reply_full(q, status, NULL, code, msg, details, NULL, NULL);
}

/* 422 VALIDATION_ERROR naming the field. */
static int
invalid(struct req *q, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
invalid(struct req *q, const char *field, const char *fmt, ...)
{
	char	msg[sizeof ((struct pw_err *)0)->msg + 100];
	cJSON	*d = cJSON_CreateObject();
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	add_str(d, "field", field);
	return reply_full(q, 422, NULL, "VALIDATION_ERROR", msg, d, NULL,
	    NULL);
}

/* A library error as a response; what is the request's own fault. */
static int
fail_lib(struct req *q, int r)
{
	const char	*msg = q->ctx != NULL ? q->ctx->err.msg : "error";

	switch (r) {
	case PW_ENOTFOUND:
		return fail(q, 404, "NOT_FOUND", NULL, "%s", msg);
	case PW_EEXIST:
		return fail(q, 409, "CONFLICT", NULL, "%s", msg);
	case PW_EUSAGE:
		return fail(q, 422, "VALIDATION_ERROR", NULL, "%s", msg);
	case PW_ENOPROXY:
		return fail(q, 503, "PROXY_POOL_EMPTY", NULL, "%s", msg);
	case PW_EBUSY:
		return fail(q, 503, "STATE_BUSY", NULL, "%s", msg);
	case PW_ERATE:
		return fail(q, 429, "RATE_LIMIT_EXCEEDED", NULL, "%s", msg);
	default:
		return fail(q, 500, "INTERNAL_ERROR", NULL, "%s", msg);
	}
}

/* --------------------------------------------------------- the context */

static void
ctx_free(void *p)
{
	struct pw_ctx	*ctx = p;

	pw_close(ctx);
	free(ctx);
}

static uint64_t
settings_gen(struct pw_server *s)
{
	return pw_view_generation(s->view) +
	    ((uint64_t)atomic_load(&s->hup) << 32);
}

/* This thread's context, opened at its first request; NULL, logged. */
static struct pw_ctx *
worker_ctx(struct pw_server *s, struct pw_err *err)
{
	struct worker	*w = pthread_getspecific(s->key);

	if (w == NULL) {
		w = pw_xcalloc(1, sizeof *w);
		w->ctx.cfg = pw_config_dup(s->cfg);
		w->gen = settings_gen(s);
		w->keys_gen = UINT64_MAX;
		if (pw_open(&w->ctx, s->state, PW_OPEN_RW) != 0 ||
		    pw_store_long_lived(w->ctx.store, &w->ctx.err) != 0) {
			*err = w->ctx.err;
			ctx_free(w);
			return NULL;
		}
		w->ctx.view = s->view;
		pthread_setspecific(s->key, w);
	}
	return &w->ctx;
}

/* This thread's context, with the view and the settings up to date. */
static int
use_ctx(struct req *q)
{
	struct pw_server	*s = q->srv;
	struct pw_ctx		*ctx;
	struct worker		*w;
	struct pw_err		 err;
	uint64_t		 gen;

	/* Once a request: the key's or the rate limit's step may have. */
	if (q->ctx != NULL)
		return 0;
	if ((ctx = worker_ctx(s, &err)) == NULL) {
		fail(q, 503, "STATE_UNAVAILABLE", NULL, "%s", err.msg);
		return -1;
	}
	w = (struct worker *)ctx;
	if (pw_view_sync(s->view, 0, &err) != 0) {
		fail(q, 503, "STATE_UNAVAILABLE", NULL, "%s", err.msg);
		return -1;
	}
	/* What pw config (or PUT /api/v1/config) changed since. */
	if ((gen = settings_gen(s)) != w->gen) {
		if (pw_config_reload_state(ctx) != 0) {
			fail(q, 503, "STATE_UNAVAILABLE", NULL, "%s",
			    ctx->err.msg);
			return -1;
		}
		w->gen = gen;
	}
	/* Once for the server: a fresh worker's settings are new too. */
	if (atomic_load(&s->rl_gen) != gen) {
		pw_rl_server_settings(s->rl, ctx);
		atomic_store(&s->rl_gen, gen);
	}
	pw_err_clear(&ctx->err);
	q->ctx = ctx;
	return 0;
}

/* ---------------------------------------------------------- JSON input */

/*
 * The JSON text p[0..n) as one value, or NULL: when it is not JSON, and
 * when anything but white space follows the value (cJSON stops at its
 * end and would take "{} junk"). *at: where that begins, else SIZE_MAX.
 */
static cJSON *
json_parse(const char *p, size_t n, size_t *at)
{
	const char	*end = NULL;
	cJSON		*j;

	*at = SIZE_MAX;
	if ((j = cJSON_ParseWithLengthOpts(p, n, &end, 0)) == NULL)
		return NULL;
	for (; end < p + n; end++)
		if (*end != ' ' && *end != '\t' && *end != '\n' &&
		    *end != '\r') {
			*at = (size_t)(end - p);
			cJSON_Delete(j);
			return NULL;
		}
	return j;
}

static int
json_is(const cJSON *j, int type)
{
	return j != NULL && (j->type & 0xff) == type;
}

static const char *
type_name(const cJSON *j)
{
	switch (j->type & 0xff) {
	case cJSON_False:
	case cJSON_True:	return "a boolean";
	case cJSON_NULL:	return "null";
	case cJSON_Number:	return "a number";
	case cJSON_String:	return "a string";
	case cJSON_Array:	return "an array";
	case cJSON_Object:	return "an object";
	default:		return "invalid";
	}
}

/*
 * Optional string member k of the body: *out NULL when absent or null.
 * 0, or -1 with the 422 sent.
 */
static int
body_str(struct req *q, const char *k, const char **out)
{
	cJSON	*j = cJSON_GetObjectItemCaseSensitive(q->json, k);

	*out = NULL;
	if (j == NULL || json_is(j, cJSON_NULL))
		return 0;
	if (!json_is(j, cJSON_String)) {
		invalid(q, k, "%s: want a string, not %s", k, type_name(j));
		return -1;
	}
	*out = j->valuestring;
	return 0;
}

static int
body_num(struct req *q, const char *k, double min, double max, int *set,
    double *out)
{
	cJSON	*j = cJSON_GetObjectItemCaseSensitive(q->json, k);

	*set = 0;
	if (j == NULL || json_is(j, cJSON_NULL))
		return 0;
	if (!json_is(j, cJSON_Number)) {
		invalid(q, k, "%s: want a number, not %s", k, type_name(j));
		return -1;
	}
	if (!(j->valuedouble >= min && j->valuedouble <= max)) {
		invalid(q, k, "%s: %g: want a number from %g to %g", k,
		    j->valuedouble, min, max);
		return -1;
	}
	*set = 1;
	*out = j->valuedouble;
	return 0;
}

/* An integer query parameter in [min, max], or def when absent. */
static int
query_int(struct req *q, const char *k, int64_t min, int64_t max,
    int64_t def, int64_t *out)
{
	const char	*v = MHD_lookup_connection_value(q->c,
			    MHD_GET_ARGUMENT_KIND, k);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (pw_parse_int(v, min, max, out) != 0) {
		invalid(q, k, "%s: '%.40s': want an integer from %lld to %lld",
		    k, v, (long long)min, (long long)max);
		return -1;
	}
	return 0;
}

static const char *
query(struct req *q, const char *k)
{
	const char	*v = MHD_lookup_connection_value(q->c,
			    MHD_GET_ARGUMENT_KIND, k);

	return v != NULL && *v != '\0' ? v : NULL;
}

/* ----------------------------------------------------------- resources */

static cJSON *
proxy_json(const struct pw_proxy *p)
{
	cJSON		*o = cJSON_CreateObject(), *st;
	struct pw_addr	 a = p->addr;
	char		*url;

	/* Credentials are never shown: "***" says there are some. */
	if (p->has_creds) {
		a.user = "x";
		a.pass = "x";
	}
	url = pw_addr_format(&a, PW_CREDS_MASK);
	add_num(o, "id", (double)p->id);
	add_str(o, "url", url);
	free(url);
	add_str(o, "scheme", pw_scheme_name(p->addr.scheme));
	add_str(o, "host", p->addr.host);
	add_num(o, "port", p->addr.port);
	add_bool(o, "credentials", p->has_creds);
	add_str(o, "status", pw_status_name(p->status));
	add_str(o, "country", p->country);
	add_str(o, "region", p->region);
	add_str(o, "source", p->source);
	add_str(o, "anonymity", p->anonymity);
	if (p->weight >= 0)
		add_num(o, "weight", p->weight);
	else
		cJSON_AddItemToObject(o, "weight", cJSON_CreateNull());
	if (p->latency_ms >= 0)
		add_num(o, "latency_ms", p->latency_ms);
	else
		cJSON_AddItemToObject(o, "latency_ms", cJSON_CreateNull());
	st = cJSON_CreateObject();
	add_num(st, "started", (double)p->started);
	add_num(st, "completed", (double)p->completed);
	add_num(st, "succeeded", (double)p->succeeded);
	add_num(st, "failed", (double)p->failed);
	add_num(st, "consec_fail", (double)p->consec_fail);
	cJSON_AddItemToObject(o, "stats", st);
	add_time(o, "added_at", p->added_at);
	add_time(o, "updated_at", p->updated_at);
	add_time(o, "expires_at", p->expires_at);
	add_time(o, "last_checked", p->last_checked);
	add_time(o, "last_used", p->last_used);
	add_time(o, "cooldown_until", p->cooldown_until);
	return o;
}

/* Counts over the whole pool, for health and status. */
struct tally {
	int64_t	now;
	int64_t	total, usable, cooling, expired;
	int64_t	by_status[PW_STATUS_COUNT];
};

static int
tally_one(void *arg, const struct pw_proxy *p)
{
	struct tally	*t = arg;
	int		 cooling = p->cooldown_until > t->now;
	int		 expired = p->expires_at != 0 &&
			    p->expires_at <= t->now;

	t->total++;
	if (p->status >= 0 && p->status < PW_STATUS_COUNT)
		t->by_status[p->status]++;
	t->cooling += cooling;
	t->expired += expired;
	if (p->status != PW_UNHEALTHY && p->status != PW_PENDING &&
	    !cooling && !expired)
		t->usable++;
	return 0;
}

static int
tally(struct req *q, struct tally *t)
{
	struct pw_filter	f;
	struct pw_view_counts	c;

	memset(t, 0, sizeof *t);
	t->now = pw_now();
	/* The view has them without a query (and a 100,000-row scan). */
	if (q->srv->view != NULL) {
		pw_view_counts(q->srv->view, t->now, &c);
		t->total = c.total;
		t->usable = c.usable;
		t->cooling = c.cooling;
		t->expired = c.expired;
		memcpy(t->by_status, c.by_status, sizeof t->by_status);
		return 0;
	}
	pw_filter_init(&f);
	return pw_pool_each(q->ctx, &f, 0, tally_one, t);
}

/* ------------------------------------------------------------ handlers */

static int
h_health(struct req *q)
{
	struct tally	 t;
	cJSON		*d, *pool;
	const char	*state;
	int		 r;

	if (use_ctx(q) != 0)
		return 0;
	if ((r = tally(q, &t)) != 0)
		return fail_lib(q, r);
	/*
	 * Healthy: every proxy usable; degraded: some; unhealthy: none
	 * (an empty pool serves nothing either).
	 */
	state = t.usable == 0 ? "unhealthy" : t.usable < t.total ?
	    "degraded" : "healthy";
	d = cJSON_CreateObject();
	add_str(d, "status", state);
	add_num(d, "uptime_seconds", (double)(pw_mono_ms() -
	    q->srv->started_ms) / 1000.0);
	add_str(d, "version", PW_VERSION);
	pool = cJSON_CreateObject();
	add_num(pool, "total", (double)t.total);
	add_num(pool, "usable", (double)t.usable);
	cJSON_AddItemToObject(d, "pool", pool);
	if (t.usable == 0)
		return reply_full(q, 503, d, "UNHEALTHY", t.total == 0 ?
		    "the pool is empty" : "no proxy in the pool is usable",
		    NULL, NULL, NULL);
	return reply(q, 200, d);
}

static int
count_one(void *arg, const struct pw_proxy *p)
{
	(void)p;
	(*(int64_t *)arg)++;
	return 0;
}

static int
h_ready(struct req *q)
{
	struct pw_filter	 f;
	cJSON			*d, *checks;
	int64_t			 n = 0;
	int			 open_ok, pool_ok = 0;
	struct pw_err		 err;
	struct pw_ctx		*ctx;

	/* Open without replying: a failure is a check, not an error. */
	if ((ctx = worker_ctx(q->srv, &err)) == NULL)
		pw_log(PW_LOG_WARN, "serve: %s", err.msg);
	open_ok = ctx != NULL;
	if (open_ok) {
		q->ctx = ctx;
		pw_err_clear(&ctx->err);
		pw_filter_init(&f);
		pool_ok = pw_pool_each(ctx, &f, 0, count_one, &n) == 0;
	}
	d = cJSON_CreateObject();
	add_bool(d, "ready", open_ok && pool_ok);
	checks = cJSON_CreateObject();
	add_bool(checks, "state_file", open_ok);
	add_bool(checks, "pool_loaded", pool_ok);
	cJSON_AddItemToObject(d, "checks", checks);
	if (!open_ok || !pool_ok)
		return reply_full(q, 503, d, "NOT_READY", open_ok ?
		    "the pool cannot be read" : "the state file cannot be "
		    "opened", NULL, NULL, NULL);
	return reply(q, 200, d);
}

static int
h_status(struct req *q)
{
	struct tally	 t;
	cJSON		*d, *pool, *st, *srv;
	int		 r;

	if (use_ctx(q) != 0)
		return 0;
	if ((r = tally(q, &t)) != 0)
		return fail_lib(q, r);
	d = cJSON_CreateObject();
	pool = cJSON_CreateObject();
	add_num(pool, "total", (double)t.total);
	add_num(pool, "usable", (double)t.usable);
	for (int i = 0; i < PW_STATUS_COUNT; i++)
		add_num(pool, pw_status_name(i), (double)t.by_status[i]);
	add_num(pool, "cooling_down", (double)t.cooling);
	add_num(pool, "expired", (double)t.expired);
	add_num(pool, "healthy_percentage", t.total == 0 ? 0 :
	    100.0 * (double)t.by_status[PW_HEALTHY] / (double)t.total);
	cJSON_AddItemToObject(d, "pool", pool);
	add_str(d, "strategy", pw_config_get(q->ctx, "strategy", NULL));
	st = cJSON_CreateObject();
	add_str(st, "backend", "sqlite");
	add_str(st, "path", q->srv->state);
	cJSON_AddItemToObject(d, "storage", st);
	srv = cJSON_CreateObject();
	add_str(srv, "version", PW_VERSION);
	add_str(srv, "listen", q->srv->addr);
	add_num(srv, "threads", q->srv->threads);
	add_num(srv, "uptime_seconds", (double)(pw_mono_ms() -
	    q->srv->started_ms) / 1000.0);
	add_num(srv, "requests_total", (double)atomic_load(&q->srv->requests));
	add_num(srv, "requests_in_flight",
	    (double)atomic_load(&q->srv->inflight));
	cJSON_AddItemToObject(d, "server", srv);
	return reply(q, 200, d);
}

/* GET /api/v1/proxies: one page, in id order. */
struct page {
	int64_t	 skip, take, total;
	cJSON	*items;
};

static int
page_one(void *arg, const struct pw_proxy *p)
{
	struct page	*pg = arg;

	if (pg->total >= pg->skip && pg->total < pg->skip + pg->take)
		cJSON_AddItemToArray(pg->items, proxy_json(p));
	pg->total++;
	return 0;
}

/* The filters of a list: status, scheme, country. */
static int
list_filter(struct req *q, struct pw_filter *f, char ccode[3])
{
	const char	*v;
	enum pw_scheme	 sch;

	pw_filter_init(f);
	if ((v = query(q, "status")) != NULL &&
	    pw_status_parse(v, &f->status) != 0)
		return invalid(q, "status", "status: '%.40s': want unknown, "
		    "healthy, degraded, unhealthy or pending", v), -1;
	if ((v = query(q, "scheme")) != NULL) {
		if (pw_scheme_parse(v, &sch) != 0)
			return invalid(q, "scheme", "scheme: '%.40s': want "
			    "http, https, socks4, socks4a, socks5 or socks5h",
			    v), -1;
		f->scheme = sch;
	}
	if ((v = query(q, "country")) != NULL) {
		if (pw_country_check(v, ccode, &q->ctx->err) != 0)
			return invalid(q, "country", "country: %s",
			    q->ctx->err.msg), -1;
		f->country = ccode;
	}
	return 0;
}

static int
h_proxies_list(struct req *q)
{
	struct pw_filter	 f;
	struct page		 pg;
	int64_t			 page, size;
	char			 ccode[3];
	cJSON			*d;
	int			 r;

	if (use_ctx(q) != 0)
		return 0;
	if (query_int(q, "page", 1, INT32_MAX, 1, &page) != 0 ||
	    query_int(q, "page_size", 1, PAGE_SIZE_MAX, PAGE_SIZE_DEFAULT,
	    &size) != 0 || list_filter(q, &f, ccode) != 0)
		return 0;
	memset(&pg, 0, sizeof pg);
	pg.skip = (page - 1) * size;
	pg.take = size;
	pg.items = cJSON_CreateArray();
	if ((r = pw_pool_each(q->ctx, &f, 0, page_one, &pg)) != 0) {
		cJSON_Delete(pg.items);
		return fail_lib(q, r);
	}
	d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "items", pg.items);
	add_num(d, "total", (double)pg.total);
	add_num(d, "page", (double)page);
	add_num(d, "page_size", (double)size);
	add_bool(d, "has_next", pg.skip + size < pg.total);
	add_bool(d, "has_prev", page > 1);
	return reply(q, 200, d);
}

static int
h_proxies_add(struct req *q)
{
	struct pw_addr	 a;
	struct pw_meta	 m;
	struct pw_proxy	 p;
	const char	*url, *country, *why;
	char		 ccode[3], loc[64];
	int64_t		 id;
	int		 res, r, set;
	double		 w;

	memset(&m, 0, sizeof m);
	m.weight = -1;
	if (use_ctx(q) != 0)
		return 0;
	if (body_str(q, "url", &url) != 0 ||
	    body_str(q, "source", &m.source) != 0 ||
	    body_str(q, "region", &m.region) != 0 ||
	    body_str(q, "country", &country) != 0 ||
	    body_num(q, "weight", 0, 1e9, &set, &w) != 0)
		return 0;
	if (url == NULL)
		return invalid(q, "url", "url: required");
	if (set)
		m.weight = w;
	if (m.source != NULL && *m.source == '\0')
		return invalid(q, "source", "source: empty name");
	if (m.region != NULL && *m.region == '\0')
		return invalid(q, "region", "region: empty name");
	/* Printed one a line and in Prometheus labels, as the CLI's. */
	if (m.source != NULL && (why = pw_label_why(m.source)) != NULL)
		return invalid(q, "source", "source: %s", why);
	if (m.region != NULL && (why = pw_label_why(m.region)) != NULL)
		return invalid(q, "region", "region: %s", why);
	if (country != NULL) {
		if (pw_country_check(country, ccode, &q->ctx->err) != 0)
			return invalid(q, "country", "country: %s",
			    q->ctx->err.msg);
		m.country = ccode;
	}
	if (pw_addr_parse(url, &a, &q->ctx->err) != 0)
		return invalid(q, "url", "url: %s", q->ctx->err.msg);
	r = pw_pool_add(q->ctx, &a, 1, &m, &res, &id);
	pw_addr_release(&a);
	if (r != 0)
		return fail_lib(q, r);
	if (res == PW_DUPLICATE) {
		cJSON *d = cJSON_CreateObject();
		add_num(d, "id", (double)id);
		return fail(q, 409, "CONFLICT", d, "url: proxy %lld is "
		    "already in the pool", (long long)id);
	}
	if ((r = pw_pool_get(q->ctx, id, 0, &p)) != 0)
		return fail_lib(q, r);
	snprintf(loc, sizeof loc, "/api/v1/proxies/%lld", (long long)id);
	/* A new password for a proxy already there updates it. */
	r = reply_full(q, res == PW_ADDED ? 201 : 200, proxy_json(&p), NULL,
	    NULL, NULL, NULL, loc);
	pw_proxy_release(&p);
	return r;
}

/*
 * The {id} of the path, digits only as pw pool takes an id ("+1" is
 * not one); 404 sent when it is not one.
 */
static int
path_id(struct req *q, int64_t *id)
{
	if (q->param[strspn(q->param, "0123456789")] != '\0' ||
	    pw_parse_int(q->param, 1, INT64_MAX, id) != 0) {
		fail(q, 404, "NOT_FOUND", NULL, "'%s': no such proxy",
		    q->param);
		return -1;
	}
	return 0;
}

static int
h_proxy_get(struct req *q)
{
	struct pw_proxy	p;
	int64_t		id;
	int		r;

	if (use_ctx(q) != 0 || path_id(q, &id) != 0)
		return 0;
	if ((r = pw_pool_get(q->ctx, id, 0, &p)) != 0)
		return fail_lib(q, r);
	r = reply(q, 200, proxy_json(&p));
	pw_proxy_release(&p);
	return r;
}

static int
h_proxy_delete(struct req *q)
{
	int64_t	id;
	int	r;

	if (use_ctx(q) != 0 || path_id(q, &id) != 0)
		return 0;
	if ((r = pw_pool_remove(q->ctx, &id, 1)) != 0)
		return fail_lib(q, r);
	return reply(q, 204, NULL);
}

/* Strategy, session and filters of a selection, from the query. */
static int
pick_query(struct req *q, struct pw_pick *pk, char ccode[3])
{
	const char	*v;

	memset(pk, 0, sizeof *pk);
	pw_filter_init(&pk->filter);
	if ((v = query(q, "strategy")) != NULL) {
		if (pw_pool_strategy_check(q->ctx, v) != 0)
			return invalid(q, "strategy", "strategy: %s",
			    q->ctx->err.msg), -1;
		pk->strategy = v;
	}
	pk->session = query(q, "session");
	pk->filter.region = query(q, "region");
	if ((v = query(q, "country")) != NULL) {
		if (pw_country_check(v, ccode, &q->ctx->err) != 0)
			return invalid(q, "country", "country: %s",
			    q->ctx->err.msg), -1;
		pk->filter.country = ccode;
	}
	return 0;
}

static int
h_proxy_next(struct req *q)
{
	struct pw_pick	pk;
	struct pw_proxy	p;
	char		ccode[3];
	int		r;

	if (use_ctx(q) != 0 || pick_query(q, &pk, ccode) != 0)
		return 0;
	if ((r = pw_pool_next(q->ctx, &pk, &p)) != 0) {
		if (r == PW_EUSAGE)
			return invalid(q, "strategy", "%s", q->ctx->err.msg);
		return fail_lib(q, r);
	}
	r = reply(q, 200, proxy_json(&p));
	pw_proxy_release(&p);
	return r;
}

/* POST /api/v1/request: what the target answered, held in memory. */
struct sink {
	struct pw_buf	hdrs;
	struct pw_buf	body;
	int		too_big;
};

static int
sink_header(void *arg, const char *p, size_t n)
{
	struct sink	*s = arg;

	pw_buf_add(&s->hdrs, p, n);
	return 0;
}

static int
sink_body(void *arg, const void *p, size_t n)
{
	struct sink	*s = arg;

	if (s->body.len + n > FETCH_BODY_MAX) {
		s->too_big = 1;
		return -1;
	}
	pw_buf_add(&s->body, p, n);
	return 0;
}


static char *
base64(const unsigned char *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char	*out = pw_xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t	 i;

	for (i = 0; i + 2 < n; i += 3) {
		*o++ = tab[p[i] >> 2];
		*o++ = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*o++ = tab[p[i + 2] & 63];
	}
	if (i < n) {
		*o++ = tab[p[i] >> 2];
		if (i + 1 < n) {
			*o++ = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
			*o++ = tab[(p[i + 1] & 15) << 2];
		} else {
			*o++ = tab[(p[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

char *
pw_api_headers_text(const char *p, size_t n)
{
	struct pw_buf	b;

	pw_buf_init(&b);
	pw_headers_json(&b, p, n);
	return pw_buf_detach(&b);
}

static const char *const methods[] = {
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL
};

/* A header name is an RFC 9110 token; a value has no CR, LF or NUL. */
static int
header_ok(const char *name, const char *value)
{
	if (*name == '\0')
		return 0;
	for (const char *c = name; *c; c++)
		if (!(*c > 32 && *c < 127) || strchr("\"(),/:;<=>?@[\\]{}", *c))
			return 0;
	return strpbrk(value, "\r\n") == NULL;
}

/*
 * A header a client may not give for a proxied request: libcurl frames
 * the request itself (length, chunking, the connection and its
 * upgrade) and names its host and proxy; one given besides would
 * contradict it, so that the next hop reads the body as a second
 * request (Content-Length: 0) or waits for bytes that never come.
 */
static int
header_framing(const char *name)
{
	static const char *const names[] = { "content-length",
	    "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
	    "trailer", "host", NULL };

	if (strncasecmp(name, "proxy-", 6) == 0)
		return 1;
	for (int i = 0; names[i] != NULL; i++)
		if (strcasecmp(name, names[i]) == 0)
			return 1;
	return 0;
}

/* An optional boolean member k: *out 0 when absent or null. */
static int
body_bool(struct req *q, const char *k, int *out)
{
	cJSON	*j = cJSON_GetObjectItemCaseSensitive(q->json, k);

	*out = 0;
	if (j == NULL || json_is(j, cJSON_NULL))
		return 0;
	if (!json_is(j, cJSON_True) && !json_is(j, cJSON_False)) {
		invalid(q, k, "%s: want a boolean, not %s", k, type_name(j));
		return -1;
	}
	*out = json_is(j, cJSON_True);
	return 0;
}

/*
 * A redirect of the target to a URL that cannot be fetched: the target's
 * fault, not the client's (502 BAD_REDIRECT, the URL in details.url).
 */
static int
bad_redirect(struct req *q, const char *url)
{
	char	*shown = pw_redact_url(url);
	cJSON	*d = cJSON_CreateObject();

	add_str(d, "url", shown);
	free(shown);
	return fail(q, 502, "BAD_REDIRECT", d, "the target redirected to a "
	    "URL that cannot be fetched: %s", q->ctx->err.msg);
}

/*
 * Whether the target of url, the client's or (hops > 0) a redirect's, may
 * be fetched (see ssrf.c): 0, or -1 with 422 TARGET_FORBIDDEN (or 504
 * when its host does not resolve) sent; a URL libcurl would not take is
 * 422 naming url, or 502 BAD_REDIRECT from a redirect. Loopback and
 * private targets are allowed by serve.allow_private_targets (pw serve
 * --allow-private sets it).
 */
static int
target_check(struct req *q, const char *url, int hops)
{
	int	r, allow = pw_config_int(q->ctx, "serve.allow_private_targets");
	cJSON	*d;

	if ((r = pw_ssrf_check(url, allow, &q->ctx->err)) == 0)
		return 0;
	if (r == 1) {
		char *shown = pw_redact_url(url);

		d = cJSON_CreateObject();
		add_str(d, "url", shown);
		free(shown);
		fail(q, 422, "TARGET_FORBIDDEN", d, "%s", q->ctx->err.msg);
	} else if (r == PW_ETARGET)
		fail(q, 504, "TARGET_UNREACHABLE", NULL, "%s", q->ctx->err.msg);
	else if (hops > 0)
		bad_redirect(q, url);
	else
		invalid(q, "url", "url: %s", q->ctx->err.msg);
	return -1;
}

/* The length of "scheme://authority" of an http(s) URL. */
static size_t
url_origin_len(const char *u)
{
	const char	*a = strstr(u, "://");

	if (a == NULL)
		return 0;
	a += 3;
	return (size_t)(a - u) + strcspn(a, "/?#");
}

static int
url_is_http(const char *u)
{
	return strncasecmp(u, "http://", 7) == 0 ||
	    strncasecmp(u, "https://", 8) == 0;
}

/*
 * Where a redirect from base to loc goes (RFC 3986 reference resolution,
 * without removing dot segments: the server does that); caller frees.
 * NULL when it is not an http or https URL.
 */
static char *
url_join(const char *base, const char *loc)
{
	size_t	 ol = url_origin_len(base), pl;
	const char *path = base + ol, *sch = strstr(base, "://");

	if (strpbrk(loc, "\r\n") != NULL || sch == NULL)
		return NULL;
	if (strstr(loc, "://") != NULL && loc + strcspn(loc, ":/?#") ==
	    strstr(loc, "://"))
		return url_is_http(loc) ? pw_xstrdup(loc) : NULL;
	if (loc[0] == '/' && loc[1] == '/')
		return pw_xasprintf("%.*s:%s", (int)(sch - base), base, loc);
	if (loc[0] == '/')
		return pw_xasprintf("%.*s%s", (int)ol, base, loc);
	pl = strcspn(path, "?#");
	if (loc[0] == '?')
		return pw_xasprintf("%.*s%s", (int)(ol + pl), base, loc);
	if (loc[0] == '#' || loc[0] == '\0')
		return pw_xasprintf("%.*s", (int)(ol + pl), base);
	/* Relative to the directory of base's path. */
	while (pl > 0 && path[pl - 1] != '/')
		pl--;
	if (pl == 0)
		return pw_xasprintf("%.*s/%s", (int)ol, base, loc);
	return pw_xasprintf("%.*s%s", (int)(ol + pl), base, loc);
}

char *
pw_api_url_join(const char *base, const char *loc)
{
	return url_join(base, loc);
}

/* A header the client sent for one host that must not go to another. */
static int
header_private(const char *line)
{
	static const char *const names[] = { "authorization:", "cookie:",
	    NULL };

	for (int i = 0; names[i] != NULL; i++)
		if (strncasecmp(line, names[i], strlen(names[i])) == 0)
			return 1;
	return 0;
}

#define REDIRECTS_MAX	10

static int
h_request(struct req *q)
{
	struct pw_fetch_opts	 o;
	struct pw_fetch_result	 res;
	struct sink		 sk;
	const char		*url, *method, *body, *v;
	const char		**hv = NULL;
	char			**hdrs = NULL, ccode[3], *cur = NULL, *next;
	char			*loc = NULL;
	cJSON			*jh, *it;
	struct pw_buf		 list, d;
	size_t			 nh = 0, tries = 0;
	int64_t			 t0, total_ms, connect_ms;
	int			 r, set, follow, hops = 0;
	double			 timeout;

	if (use_ctx(q) != 0)
		return 0;
	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	memset(&sk, 0, sizeof sk);
	pw_buf_init(&sk.hdrs);
	pw_buf_init(&sk.body);
	pw_buf_init(&list);
	pw_buf_init(&d);
	pw_filter_init(&o.pick.filter);
	if (body_str(q, "url", &url) != 0 ||
	    body_str(q, "method", &method) != 0 ||
	    body_str(q, "body", &body) != 0 ||
	    body_num(q, "timeout", 0.001, TIMEOUT_MAX, &set, &timeout) != 0 ||
	    body_bool(q, "follow_redirects", &follow) != 0 ||
	    body_str(q, "strategy", &o.pick.strategy) != 0 ||
	    body_str(q, "session", &o.pick.session) != 0 ||
	    body_str(q, "country", &v) != 0)
		return 0;
	if (url == NULL)
		return invalid(q, "url", "url: required");
	if (!url_is_http(url)) {
		/* Found by fuzz_api: the URL came back with its password. */
		char *shown = pw_redact_url(url);
		r = invalid(q, "url", "url: '%.200s': want an http or https "
		    "URL", shown);
		free(shown);
		return r;
	}
	if (method == NULL)
		method = "GET";
	for (r = 0; methods[r] != NULL && strcmp(methods[r], method); r++)
		;
	if (methods[r] == NULL)
		return invalid(q, "method", "method: '%.20s': want GET, HEAD, "
		    "POST, PUT, PATCH, DELETE or OPTIONS", method);
	if (o.pick.strategy != NULL &&
	    pw_pool_strategy_check(q->ctx, o.pick.strategy) != 0)
		return invalid(q, "strategy", "strategy: %s",
		    q->ctx->err.msg);
	if (v != NULL) {
		if (pw_country_check(v, ccode, &q->ctx->err) != 0)
			return invalid(q, "country", "country: %s",
			    q->ctx->err.msg);
		o.pick.filter.country = ccode;
	}
	jh = cJSON_GetObjectItemCaseSensitive(q->json, "headers");
	if (jh != NULL && !json_is(jh, cJSON_NULL)) {
		if (!json_is(jh, cJSON_Object))
			return invalid(q, "headers", "headers: want an object "
			    "of strings, not %s", type_name(jh));
		for (it = jh->child; it != NULL; it = it->next) {
			char field[80];

			snprintf(field, sizeof field, "headers.%.60s",
			    it->string);
			if (!json_is(it, cJSON_String)) {
				r = invalid(q, field, "%s: want a string, not "
				    "%s", field, type_name(it));
				goto out;
			}
			if (!header_ok(it->string, it->valuestring)) {
				r = invalid(q, field, "%s: not a valid header",
				    field);
				goto out;
			}
			if (header_framing(it->string)) {
				r = invalid(q, field, "%s: set by the server "
				    "itself, never by a client", field);
				goto out;
			}
			hdrs = pw_xrealloc(hdrs, (nh + 1) * sizeof *hdrs);
			hdrs[nh++] = pw_xasprintf("%s: %s", it->string,
			    it->valuestring);
		}
	}
	o.head = strcmp(method, "HEAD") == 0;
	o.method = o.head ? NULL : method;
	hv = (const char **)hdrs;
	o.headers = hv;
	o.nheaders = nh;
	if (body != NULL) {
		o.body = body;
		o.body_len = strlen(body);
		o.has_body = 1;
	}
	total_ms = set ? (int64_t)(timeout * 1000) :
	    pw_config_int(q->ctx, "fetch.timeout") * 1000;
	connect_ms = pw_config_int(q->ctx, "fetch.connect_timeout") * 1000;
	o.on_header = sink_header;
	o.on_body = sink_body;
	o.arg = &sk;
	/* A server thread does not sleep for fetch.rate_*: it says so. */
	o.no_wait = 1;
	t0 = pw_mono_ms();
	/*
	 * Redirects are followed here, one hop at a time, not by libcurl:
	 * each new target is judged before anything is sent to it.
	 */
	cur = pw_xstrdup(url);
	for (;;) {
		if (target_check(q, cur, hops) != 0) {
			r = 0;
			goto out;
		}
		/* The timeout is the whole request's, redirects and all. */
		o.timeout_ms = total_ms - (pw_mono_ms() - t0);
		if (o.timeout_ms <= 0) {
			r = fail(q, 504, "REQUEST_TIMEOUT", NULL, "no answer "
			    "within %.3g s (after %d redirects)",
			    (double)total_ms / 1000, hops);
			goto out;
		}
		o.connect_timeout_ms = connect_ms < o.timeout_ms ? connect_ms :
		    o.timeout_ms;
		o.url = cur;
		pw_buf_reset(&sk.hdrs);
		pw_buf_reset(&sk.body);
		r = pw_fetch(q->ctx, &o, &res);
		/* Each attempt, for the details of a failure. */
		for (size_t i = 0; i < res.nattempts; i++) {
			const struct pw_attempt *a = &res.attempts[i];
			pw_buf_adds(&list, list.len ? ",{\"proxy\":" :
			    "[{\"proxy\":");
			json_strz(&list, a->proxy);
			pw_buf_adds(&list, ",\"error\":");
			json_strz(&list, a->error);
			pw_buf_addf(&list, ",\"ms\":%.15g}", a->ms);
		}
		tries += res.nattempts;
		if (r != 0 || !follow || !(res.status == 301 ||
		    res.status == 302 || res.status == 303 ||
		    res.status == 307 || res.status == 308))
			break;
		free(loc);
		loc = pw_header_get(sk.hdrs.data, sk.hdrs.len, "location");
		/* No Location, or not to http(s): that is the answer. */
		if (loc == NULL || (next = url_join(cur, loc)) == NULL)
			break;
		if (hops == REDIRECTS_MAX) {
			free(next);
			r = fail(q, 502, "TOO_MANY_REDIRECTS", NULL,
			    "more than %d redirects", REDIRECTS_MAX);
			goto out;
		}
		hops++;
		/* As browsers and curl do: 303, and 301/302 of a POST. */
		if (res.status == 303 || ((res.status == 301 ||
		    res.status == 302) && strcmp(method, "POST") == 0)) {
			if (!o.head)
				o.method = "GET";
			o.has_body = 0;
			o.body = NULL;
			o.body_len = 0;
		}
		/* Credentials given for one origin are not sent to another. */
		if (url_origin_len(cur) != url_origin_len(next) ||
		    strncasecmp(cur, next, url_origin_len(cur)) != 0) {
			size_t k = 0;
			for (size_t i = 0; i < nh; i++) {
				if (header_private(hdrs[i]))
					free(hdrs[i]);
				else
					hdrs[k++] = hdrs[i];
			}
			nh = k;
			o.nheaders = nh;
		}
		free(cur);
		cur = next;
		pw_fetch_result_release(&res);
		memset(&res, 0, sizeof res);
	}
	if (r == 0) {
		/* By hand, not through cJSON: pw serve's busiest answer. */
		pw_buf_grow(&d, sk.hdrs.len + sk.body.len + sk.body.len / 8 +
		    512);
		pw_buf_addf(&d, "{\"status_code\":%ld,\"headers\":",
		    res.status);
		pw_headers_json(&d, sk.hdrs.data, sk.hdrs.len);
		pw_buf_adds(&d, ",\"body\":");
		if (pw_utf8_text(sk.body.data, sk.body.len)) {
			pw_buf_json(&d, sk.body.data, sk.body.len);
			pw_buf_adds(&d, ",\"body_encoding\":\"utf-8\"");
		} else {
			char *b64 = base64((unsigned char *)sk.body.data,
			    sk.body.len);
			pw_buf_addc(&d, '"');
			pw_buf_adds(&d, b64);
			pw_buf_adds(&d, "\",\"body_encoding\":\"base64\"");
			free(b64);
		}
		next = pw_redact_url(cur);
		pw_buf_adds(&d, ",\"url\":");
		json_strz(&d, next);
		free(next);
		pw_buf_addf(&d, ",\"redirects\":%d,\"proxy_used\":", hops);
		json_strz(&d, res.proxy);
		pw_buf_addf(&d, ",\"proxy_id\":%lld,\"attempts\":%zu,"
		    "\"elapsed_ms\":%lld}", (long long)res.proxy_id, tries,
		    (long long)(pw_mono_ms() - t0));
		r = reply_text(q, 200, d.data, NULL, NULL, NULL, NULL, NULL);
	} else {
		cJSON *det = cJSON_CreateObject();
		const struct pw_attempt *last = res.nattempts > 0 ?
		    &res.attempts[res.nattempts - 1] : NULL;

		if (list.len == 0)
			pw_buf_addc(&list, '[');
		pw_buf_addc(&list, ']');
		cJSON_AddItemToObject(det, "attempts",
		    cJSON_CreateRaw(list.data));
		if (sk.too_big)
			r = fail(q, 502, "RESPONSE_TOO_LARGE", det, "the "
			    "target's response is over %zu bytes",
			    FETCH_BODY_MAX);
		else if (r == PW_ENOPROXY)
			r = fail(q, 503, "PROXY_POOL_EMPTY", det, "%s",
			    q->ctx->err.msg);
		else if (r == PW_EALLFAILED)
			r = fail(q, 502, "PROXY_FAILOVER_EXHAUSTED", det, "%s",
			    q->ctx->err.msg);
		else if (r == PW_ETARGET && last != NULL && last->timed_out)
			r = fail(q, 504, "REQUEST_TIMEOUT", det, "%s",
			    q->ctx->err.msg);
		else if (r == PW_ETARGET)
			r = fail(q, 504, "TARGET_UNREACHABLE", det, "%s",
			    q->ctx->err.msg);
		else if (r == PW_EUSAGE) {
			cJSON_Delete(det);
			r = hops > 0 ? bad_redirect(q, cur) : invalid(q, "url",
			    "url: %s", q->ctx->err.msg);
		} else {
			cJSON_Delete(det);
			r = fail_lib(q, r);
		}
	}
out:
	pw_fetch_result_release(&res);
	pw_buf_release(&sk.hdrs);
	pw_buf_release(&sk.body);
	pw_buf_release(&list);
	pw_buf_release(&d);
	free(loc);
	free(cur);
	for (size_t i = 0; i < nh; i++)
		free(hdrs[i]);
	free(hdrs);
	return r;
}

/* GET /api/v1/config: every key, its effective value and where from. */
static cJSON *
config_json(struct pw_ctx *ctx)
{
	const struct pw_config_key	*k = pw_config_keys();
	cJSON				*d = cJSON_CreateObject(), *o;
	int				 origin;

	for (; k->name != NULL; k++) {
		const char *v = pw_config_get(ctx, k->name, &origin);
		char *shown;
		o = cJSON_CreateObject();
		shown = pw_config_shown(k->name, v);
		add_str(o, "value", shown);
		free(shown);
		add_str(o, "origin", pw_origin_name(origin));
		add_str(o, "type", k->type);
		add_str(o, "default", k->def);
		add_str(o, "description", k->help);
		cJSON_AddItemToObject(d, k->name, o);
	}
	return d;
}

static int
h_config_get(struct req *q)
{
	if (use_ctx(q) != 0)
		return 0;
	return reply(q, 200, config_json(q->ctx));
}

/*
 * What only an administrator may do (change the settings, the rate
 * limits): once keys exist, a key of tier "admin"; else 403 sent and 0.
 * Without keys (nor serve.require_auth) the whole API is open, and on
 * loopback unless --insecure.
 */
static int
admin_only(struct req *q, const char *what)
{
	if (q->key.id == 0 || strcmp(q->key.tier, "admin") == 0)
		return 1;
	fail(q, 403, "FORBIDDEN", NULL, "%s is for keys of tier admin", what);
	return 0;
}

/*
 * PUT /api/v1/config: {"key": value, ...}; a string, number or boolean
 * sets (checked as pw config set checks it), null unsets. Every key is
 * checked before any is stored, then all are stored in one transaction.
 * Later requests, on every thread, see them. An administrator's: the
 * settings turn the SSRF guard, rate limiting and keys off.
 */
static int
h_config_put(struct req *q)
{
	const char	**names, **values;
	char		(*num)[64];
	cJSON		 *it;
	size_t		  n = 0, bad;
	int		  r;

	if (!admin_only(q, "changing the settings") || use_ctx(q) != 0)
		return 0;
	for (it = q->json->child; it != NULL; it = it->next)
		n++;
	if (n == 0)
		return invalid(q, "body", "body: no setting to change");
	names = pw_xcalloc(n, sizeof *names);
	values = pw_xcalloc(n, sizeof *values);
	num = pw_xcalloc(n, sizeof *num);
	n = 0;
	for (it = q->json->child; it != NULL; it = it->next, n++) {
		names[n] = it->string;
		if (json_is(it, cJSON_NULL))
			values[n] = NULL;
		else if (json_is(it, cJSON_String))
			values[n] = it->valuestring;
		else if (json_is(it, cJSON_Number)) {
			pw_fmt_double(num[n], it->valuedouble);
			values[n] = num[n];
		} else if (json_is(it, cJSON_True) || json_is(it, cJSON_False))
			values[n] = json_is(it, cJSON_True) ? "true" : "false";
		else {
			r = invalid(q, it->string, "%s: want a string, "
			    "number, boolean or null, not %s", it->string,
			    type_name(it));
			goto out;
		}
	}
	if ((r = pw_config_store_many(q->ctx, names, values, n, &bad)) != 0) {
		if (bad < n)
			r = invalid(q, names[bad], "%s", q->ctx->err.msg);
		else
			r = fail_lib(q, r);
		/* What this worker holds in memory, as the file has it. */
		(void)pw_config_reload_state(q->ctx);
		goto out;
	}
	r = reply(q, 200, config_json(q->ctx));
out:
	free(names);
	free(values);
	free(num);
	return r;
}

/* A copy of the counters, and requests per second over the window. */
static void
metrics_snapshot(struct pw_server *s, struct metrics *m, double *rps)
{
	int64_t	now = pw_mono_ms() / 1000, n = 0, span;

	pthread_mutex_lock(&s->mu);
	*m = s->m;
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < RATE_WINDOW; i++)
		if (m->sec_stamp[i] > now - RATE_WINDOW)
			n += m->sec_count[i];
	/* A server up for 5 s has had 5 s to count, not 60. */
	span = (pw_mono_ms() - s->started_ms) / 1000 + 1;
	if (span > RATE_WINDOW)
		span = RATE_WINDOW;
	*rps = (double)n / (double)span;
}

struct per_proxy {
	cJSON	*list;
	int64_t	 n;
};

#define METRICS_PROXIES_MAX	1000

static int
per_proxy_one(void *arg, const struct pw_proxy *p)
{
	struct per_proxy	*pp = arg;
	struct pw_addr		 a = p->addr;
	cJSON			*o;
	char			*url;

	if (pp->n++ >= METRICS_PROXIES_MAX)
		return 0;
	if (p->has_creds) {
		a.user = "x";
		a.pass = "x";
	}
	url = pw_addr_format(&a, PW_CREDS_MASK);
	o = cJSON_CreateObject();
	add_num(o, "id", (double)p->id);
	add_str(o, "url", url);
	free(url);
	add_str(o, "status", pw_status_name(p->status));
	add_num(o, "requests", (double)p->started);
	add_num(o, "succeeded", (double)p->succeeded);
	add_num(o, "failed", (double)p->failed);
	if (p->succeeded + p->failed > 0)
		add_num(o, "success_rate", (double)p->succeeded /
		    (double)(p->succeeded + p->failed));
	else
		cJSON_AddItemToObject(o, "success_rate", cJSON_CreateNull());
	if (p->latency_ms >= 0)
		add_num(o, "latency_ms", p->latency_ms);
	else
		cJSON_AddItemToObject(o, "latency_ms", cJSON_CreateNull());
	cJSON_AddItemToArray(pp->list, o);
	return 0;
}

static int
h_metrics(struct req *q)
{
	struct metrics		 m;
	struct per_proxy	 pp;
	struct pw_filter	 f;
	double			 rps;
	int64_t			 errs;
	cJSON			*d, *codes;
	char			 k[16];
	int			 r;

	if (use_ctx(q) != 0)
		return 0;
	metrics_snapshot(q->srv, &m, &rps);
	pp.list = cJSON_CreateArray();
	pp.n = 0;
	pw_filter_init(&f);
	if ((r = pw_pool_each(q->ctx, &f, 0, per_proxy_one, &pp)) != 0) {
		cJSON_Delete(pp.list);
		return fail_lib(q, r);
	}
	errs = m.by_class[4] + m.by_class[5];
	d = cJSON_CreateObject();
	add_num(d, "requests_total", (double)m.completed);
	add_num(d, "requests_in_flight",
	    (double)atomic_load(&q->srv->inflight));
	add_num(d, "requests_per_second", rps);
	add_num(d, "rate_window_seconds", RATE_WINDOW);
	add_num(d, "mean_latency_ms", m.completed ? m.latency_sum_ms /
	    (double)m.completed : 0);
	add_num(d, "error_rate", m.completed ? (double)errs /
	    (double)m.completed : 0);
	codes = cJSON_CreateObject();
	for (int i = 1; i <= 5; i++) {
		snprintf(k, sizeof k, "%dxx", i);
		add_num(codes, k, (double)m.by_class[i]);
	}
	cJSON_AddItemToObject(d, "responses", codes);
	add_num(d, "uptime_seconds", (double)(pw_mono_ms() -
	    q->srv->started_ms) / 1000.0);
	cJSON_AddItemToObject(d, "proxies", pp.list);
	add_bool(d, "proxies_truncated", pp.n > METRICS_PROXIES_MAX);
	return reply(q, 200, d);
}

/* GET /metrics: the Prometheus text exposition format, version 0.0.4. */
static int
h_prometheus(struct req *q)
{
	struct metrics	m;
	struct tally	t;
	struct pw_buf	b;
	double		rps;
	int		r;

	if (use_ctx(q) != 0)
		return 0;
	if ((r = tally(q, &t)) != 0)
		return fail_lib(q, r);
	metrics_snapshot(q->srv, &m, &rps);
	pw_buf_init(&b);
	pw_buf_adds(&b, "# HELP pw_http_requests_total HTTP requests "
	    "answered, by status class.\n"
	    "# TYPE pw_http_requests_total counter\n");
	for (int i = 1; i <= 5; i++)
		pw_buf_addf(&b, "pw_http_requests_total{code=\"%dxx\"} "
		    "%lld\n", i, (long long)m.by_class[i]);
	pw_buf_addf(&b, "# HELP pw_http_request_duration_seconds Time to "
	    "answer a request.\n"
	    "# TYPE pw_http_request_duration_seconds summary\n"
	    "pw_http_request_duration_seconds_sum %.6f\n"
	    "pw_http_request_duration_seconds_count %lld\n",
	    m.latency_sum_ms / 1000.0, (long long)m.completed);
	pw_buf_addf(&b, "# HELP pw_http_requests_in_flight Requests being "
	    "answered.\n# TYPE pw_http_requests_in_flight gauge\n"
	    "pw_http_requests_in_flight %ld\n",
	    atomic_load(&q->srv->inflight));
	pw_buf_addf(&b, "# HELP pw_uptime_seconds Time since pw serve "
	    "started.\n# TYPE pw_uptime_seconds gauge\n"
	    "pw_uptime_seconds %.3f\n", (double)(pw_mono_ms() -
	    q->srv->started_ms) / 1000.0);
	pw_buf_adds(&b, "# HELP pw_proxies Proxies in the pool, by status.\n"
	    "# TYPE pw_proxies gauge\n");
	for (int i = 0; i < PW_STATUS_COUNT; i++)
		pw_buf_addf(&b, "pw_proxies{status=\"%s\"} %lld\n",
		    pw_status_name(i), (long long)t.by_status[i]);
	pw_buf_addf(&b, "# HELP pw_proxies_usable Proxies not unhealthy, "
	    "cooling down or expired.\n# TYPE pw_proxies_usable gauge\n"
	    "pw_proxies_usable %lld\n", (long long)t.usable);
	rl_prometheus(q->srv, &b);
	pw_delegate_prometheus(q->ctx, &b);
	pw_gateway_metrics(&b);
	r = send_body(q, 200, b.data, b.len,
	    "text/plain; version=0.0.4; charset=utf-8", NULL, NULL);
	pw_buf_release(&b);
	return r;
}

/* Delegation (delegate.c): its answer, or its refusal, in the envelope. */
static int
h_delegate(struct req *q, unsigned int (*fn)(struct pw_ctx *,
    const cJSON *, cJSON **, struct pw_dlg_fail *))
{
	struct pw_dlg_fail	 f;
	cJSON			*data = NULL, *d = NULL;

	if (use_ctx(q) != 0)
		return 0;
	if (fn(q->ctx, q->json, &data, &f) == 200)
		return reply(q, 200, data);
	if (f.field[0] != '\0') {
		d = cJSON_CreateObject();
		add_str(d, "field", f.field);
	}
	return fail(q, f.status, f.code, d, "%s", f.msg);
}

static int
h_proxy_request(struct req *q)
{
	return h_delegate(q, pw_delegate_request);
}

static int
h_proxy_feedback(struct req *q)
{
	return h_delegate(q, pw_delegate_feedback);
}

/*
 * POST /api/v1/proxies/test: {"ids": [...], "timeout": S}, both
 * optional: a health check (pw health's) of those proxies, or of the
 * whole pool, with each proxy's result. At most TEST_IDS_MAX proxies a
 * request, each check at most TIMEOUT_MAX seconds.
 */
#define TEST_IDS_MAX	1000

static int
test_one(void *arg, const struct pw_health_result *hr)
{
	cJSON	*o = cJSON_CreateObject();

	add_num(o, "id", (double)hr->id);
	add_str(o, "proxy", hr->proxy);
	add_bool(o, "ok", hr->ok);
	add_str(o, "status", pw_status_name(hr->status));
	if (hr->latency_ms >= 0)
		add_num(o, "latency_ms", hr->latency_ms);
	else
		cJSON_AddItemToObject(o, "latency_ms", cJSON_CreateNull());
	if (hr->http_status != 0)
		add_num(o, "http_status", (double)hr->http_status);
	else
		cJSON_AddItemToObject(o, "http_status", cJSON_CreateNull());
	add_num(o, "consecutive_failures", (double)hr->consec_fail);
	add_str(o, "judge", hr->judge);
	add_str(o, "error", hr->error);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

static int
h_proxies_test(struct req *q)
{
	struct pw_health_opts	 o;
	struct pw_health_summary sum;
	struct pw_proxy		 p;
	cJSON			*ji = NULL, *it, *d, *results, *sm;
	int64_t			*ids = NULL;
	size_t			 n = 0, i;
	double			 timeout;
	int			 r, set = 0;

	if (use_ctx(q) != 0)
		return 0;
	if (q->json != NULL) {
		if (body_num(q, "timeout", 0.001, TIMEOUT_MAX, &set,
		    &timeout) != 0)
			return 0;
		ji = cJSON_GetObjectItemCaseSensitive(q->json, "ids");
		if (json_is(ji, cJSON_NULL))
			ji = NULL;
	}
	if (ji != NULL) {
		if (!json_is(ji, cJSON_Array))
			return invalid(q, "ids", "ids: want an array of proxy "
			    "ids, not %s", type_name(ji));
		for (it = ji->child; it != NULL; it = it->next)
			n++;
		if (n == 0)
			return invalid(q, "ids", "ids: empty (leave it out to "
			    "check the whole pool)");
		if (n > TEST_IDS_MAX)
			return invalid(q, "ids", "ids: %zu ids: want at most "
			    "%d", n, TEST_IDS_MAX);
		ids = pw_xcalloc(n, sizeof *ids);
		n = 0;
		for (it = ji->child, i = 0; it != NULL; it = it->next, i++) {
			char field[32];
			double x = it->valuedouble;
			size_t k;

			snprintf(field, sizeof field, "ids[%zu]", i);
			if (!json_is(it, cJSON_Number) || x < 1 || x > 9e15 ||
			    x != (double)(int64_t)x) {
				r = invalid(q, field, "%s: want a proxy id (an "
				    "integer from 1)", field);
				goto out;
			}
			ids[n] = (int64_t)it->valuedouble;
			/* Each proxy once, as pw health 4 4 checks it. */
			for (k = 0; k < n && ids[k] != ids[n]; k++)
				;
			if (k < n)
				continue;
			if ((r = pw_pool_get(q->ctx, ids[n], 0, &p)) != 0) {
				cJSON *det = cJSON_CreateObject();

				add_num(det, "id", (double)ids[n]);
				if (r == PW_ENOTFOUND)
					r = fail(q, 404, "NOT_FOUND", det,
					    "%s: %lld: no such proxy", field,
					    (long long)ids[n]);
				else {
					cJSON_Delete(det);
					r = fail_lib(q, r);
				}
				goto out;
			}
			pw_proxy_release(&p);
			n++;
		}
	} else {
		if ((r = pw_health_select(q->ctx, NULL, 0, &ids, &n)) != 0) {
			r = fail_lib(q, r);
			goto out;
		}
		if (n > TEST_IDS_MAX) {
			r = invalid(q, "ids", "ids: the pool has %zu proxies, "
			    "more than %d a request: give ids", n,
			    TEST_IDS_MAX);
			goto out;
		}
	}
	pw_health_opts_init(&o);
	if (set)
		o.timeout_ms = (int64_t)(timeout * 1000);
	o.lock = PW_HEALTH_LOCK_TRY;
	results = cJSON_CreateArray();
	o.on_result = test_one;
	o.arg = results;
	memset(&sum, 0, sizeof sum);
	r = n == 0 ? 0 : pw_health_run(q->ctx, &o, ids, n, &sum);
	if (r != 0) {
		cJSON_Delete(results);
		if (r == PW_EUSAGE)
			r = invalid(q, "health.url", "%s", q->ctx->err.msg);
		else if (r == PW_EBUSY)
			r = fail(q, 409, "CHECK_IN_PROGRESS", NULL, "%s",
			    q->ctx->err.msg);
		else
			r = fail_lib(q, r);
		goto out;
	}
	d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "results", results);
	sm = cJSON_CreateObject();
	add_num(sm, "total", (double)n);
	add_num(sm, "checked", (double)sum.checked);
	add_num(sm, "gone", (double)sum.gone);
	add_num(sm, "healthy", (double)sum.healthy);
	add_num(sm, "degraded", (double)sum.degraded);
	add_num(sm, "unhealthy", (double)sum.unhealthy);
	add_num(sm, "elapsed_seconds", sum.elapsed_s);
	cJSON_AddItemToObject(d, "summary", sm);
	r = reply(q, 200, d);
out:
	free(ids);
	return r;
}

/*
 * GET /openapi.json, /docs and /docs/app.js: the API's description and
 * a page that shows it, from share/ (built into lib/assets.c), never
 * anything from elsewhere: the page's Content-Security-Policy lets it
 * load only this server's script and JSON.
 */
static int
h_openapi(struct req *q)
{
	return send_body(q, 200, pw_asset_openapi, pw_asset_openapi_len,
	    "application/json", NULL, NULL);
}

static int
h_docs(struct req *q)
{
	add_header(q, "Content-Security-Policy", "default-src 'none'; "
	    "script-src 'self'; connect-src 'self'; style-src 'self'; "
	    "img-src 'self'; base-uri 'none'; form-action 'none'; "
	    "frame-ancestors 'none'");
	return send_body(q, 200, pw_asset_docs_html, pw_asset_docs_html_len,
	    "text/html; charset=utf-8", NULL, NULL);
}

static int
h_docs_js(struct req *q)
{
	return send_body(q, 200, pw_asset_docs_js, pw_asset_docs_js_len,
	    "text/javascript; charset=utf-8", NULL, NULL);
}

static int
h_docs_css(struct req *q)
{
	return send_body(q, 200, pw_asset_docs_css, pw_asset_docs_css_len,
	    "text/css; charset=utf-8", NULL, NULL);
}

/* -------------------------------------------------------------- router */

static const struct route routes[] = {
	{ "GET", "/api/v1/health", h_health, BODY_NONE, 1 },
	{ "GET", "/api/v1/ready", h_ready, BODY_NONE, 1 },
	{ "GET", "/api/v1/status", h_status, BODY_NONE, 0 },
	{ "GET", "/api/v1/proxies", h_proxies_list, BODY_NONE, 0 },
	{ "POST", "/api/v1/proxies", h_proxies_add, BODY_JSON, 0,
	    "url source region country weight" },
	{ "POST", "/api/v1/proxies/test", h_proxies_test, BODY_OPT, 0,
	    "ids timeout" },
	{ "GET", "/api/v1/proxies/next", h_proxy_next, BODY_NONE, 0 },
	{ "GET", "/api/v1/proxies/{id}", h_proxy_get, BODY_NONE, 0 },
	{ "DELETE", "/api/v1/proxies/{id}", h_proxy_delete, BODY_NONE, 0 },
	{ "POST", "/api/v1/request", h_request, BODY_JSON, 0,
	    "url method headers body timeout follow_redirects strategy "
	    "session country" },
	{ "GET", "/api/v1/config", h_config_get, BODY_NONE, 0 },
	{ "PUT", "/api/v1/config", h_config_put, BODY_JSON, 0 },
	{ "GET", "/api/v1/metrics", h_metrics, BODY_NONE, 0 },
	{ "GET", "/api/v1/rate-limit/metrics", h_rl_metrics, BODY_NONE, 0 },
	{ "GET", "/api/v1/rate-limit/config", h_rl_config_get, BODY_NONE, 0 },
	{ "PUT", "/api/v1/rate-limit/config", h_rl_config_put, BODY_JSON, 0 },
	{ "GET", "/api/v1/rate-limit/status/{id}", h_rl_status, BODY_NONE,
	  0 },
	{ "POST", "/api/v1/proxy/request", h_proxy_request, BODY_JSON, 0,
	    "client_id target connection_type region" },
	{ "POST", "/api/v1/proxy/feedback", h_proxy_feedback, BODY_JSON, 0 },
	/* Probes and documentation: see "Authentication" in pw-serve(1). */
	{ "GET", "/metrics", h_prometheus, BODY_NONE, 1 },
	{ "GET", "/openapi.json", h_openapi, BODY_NONE, 1 },
	{ "GET", "/docs", h_docs, BODY_NONE, 1 },
	{ "GET", "/docs/app.js", h_docs_js, BODY_NONE, 1 },
	{ "GET", "/docs/app.css", h_docs_css, BODY_NONE, 1 },
};
#define NROUTES (sizeof routes / sizeof routes[0])

const char *
pw_serve_route(size_t i, const char **method, int *open)
{
	if (i >= NROUTES)
		return NULL;
	*method = routes[i].method;
	*open = routes[i].open;
	return routes[i].path;
}

/*
 * Whether path matches pattern: 2 exactly, 1 with the {id} segment (then
 * copied to param), 0 not at all.
 */
static int
path_match(const char *pattern, const char *path, char *param, size_t n)
{
	const char	*brace = strchr(pattern, '{'), *slash;
	size_t		 pre;

	if (brace == NULL)
		return strcmp(pattern, path) == 0 ? 2 : 0;
	pre = brace - pattern;
	if (strncmp(pattern, path, pre) != 0)
		return 0;
	path += pre;
	slash = strchr(path, '/');
	if (slash != NULL || *path == '\0' || strlen(path) >= n)
		return 0;
	snprintf(param, n, "%s", path);
	return 1;
}

/* A request id the client gave is kept when it is sane. */
static int
rid_ok(const char *s)
{
	size_t	n = strlen(s);

	if (n == 0 || n > RID_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("-_.:", *s)))
			return 0;
	return 1;
}

static int
step_request_id(struct req *q)
{
	const char	*v = MHD_lookup_connection_value(q->c,
			    MHD_HEADER_KIND, "X-Request-ID");
	static _Thread_local struct pw_rng	rng;
	static _Thread_local int		seeded;
	static const char			hex[] = "0123456789abcdef";

	if (v != NULL && rid_ok(v)) {
		snprintf(q->rid, sizeof q->rid, "%s", v);
		return 0;
	}
	/* 128 random bits, drawn without a system call per request. */
	if (!seeded) {
		pw_rng_seed(&rng, 0);
		seeded = 1;
	}
	for (int w = 0; w < 2; w++) {
		uint64_t x = pw_rng_next(&rng);
		for (int i = 0; i < 16; i++, x >>= 4)
			q->rid[w * 16 + i] = hex[x & 15];
	}
	q->rid[32] = '\0';
	return 0;
}

static int
step_body_limit(struct req *q)
{
	if (!q->too_big)
		return 0;
	fail(q, 413, "PAYLOAD_TOO_LARGE", NULL, "request body over %zu bytes",
	    q->srv->body_max);
	return 1;
}

static int
step_route(struct req *q)
{
	struct pw_buf	allow;
	char		param[sizeof q->param];
	int		best = 0, m;

	for (size_t i = 0; i < NROUTES; i++)
		if ((m = path_match(routes[i].path, q->path, param,
		    sizeof param)) > best)
			best = m;
	if (best == 0) {
		fail(q, 404, "NOT_FOUND", NULL, "%.200s: no such endpoint",
		    q->path);
		return 1;
	}
	pw_buf_init(&allow);
	for (size_t i = 0; i < NROUTES; i++) {
		if (path_match(routes[i].path, q->path, param,
		    sizeof param) != best)
			continue;
		/*
		 * HEAD wherever GET (RFC 9110): the same answer, whose body
		 * libmicrohttpd leaves out, Content-Length kept.
		 */
		if (strcmp(routes[i].method, q->method) == 0 ||
		    (strcmp(routes[i].method, "GET") == 0 &&
		    strcmp(q->method, "HEAD") == 0)) {
			q->route = &routes[i];
			memcpy(q->param, param, sizeof param);
			pw_buf_release(&allow);
			return 0;
		}
		pw_buf_addf(&allow, "%s%s", allow.len ? ", " : "",
		    routes[i].method);
		if (strcmp(routes[i].method, "GET") == 0)
			pw_buf_adds(&allow, ", HEAD");
	}
	reply_full(q, 405, NULL, "METHOD_NOT_ALLOWED", "method not allowed",
	    NULL, allow.data, NULL);
	pw_buf_release(&allow);
	return 1;
}

/* The methods of the routes of path, as "GET, POST", into b. */
static void
path_methods(const char *path, char *b, size_t n)
{
	char	param[64];
	size_t	len = 0;
	int	best = 0, m;

	b[0] = '\0';
	for (size_t i = 0; i < NROUTES; i++)
		if ((m = path_match(routes[i].path, path, param,
		    sizeof param)) > best)
			best = m;
	for (size_t i = 0; best > 0 && i < NROUTES; i++)
		if (path_match(routes[i].path, path, param, sizeof param) ==
		    best && len < n)
			len += snprintf(b + len, n - len, "%s%s", len ? ", " :
			    "", routes[i].method);
}

/* Is origin one of the space- or comma-separated list ("*": any)? */
static int
origin_listed(const char *list, const char *origin, int *any)
{
	size_t	n, ol = strlen(origin);

	*any = 0;
	for (list += strspn(list, " \t,"); *list != '\0';
	    list += strspn(list, " \t,")) {
		n = strcspn(list, " \t,");
		if (n == 1 && *list == '*') {
			*any = 1;
			return 1;
		}
		if (n == ol && strncasecmp(list, origin, n) == 0)
			return 1;
		list += n;
	}
	return 0;
}

/*
 * Whether Host names this server in a way no other site can: an IP
 * address, localhost or a name under .localhost (RFC 6761), or the host
 * --listen named; a port may follow. A page of another site that made
 * its own name resolve to this server (DNS rebinding) sends that name.
 */
static int
host_ours(const char *host, const char *listen_host)
{
	char		 name[256];
	const char	*e, *port = NULL;
	size_t		 n;
	unsigned char	 a[16];
	int		 v6 = *host == '[';

	if (v6) {
		if ((e = strchr(host, ']')) == NULL)
			return 0;
		n = (size_t)(e - host - 1);
		host++;
		if (e[1] == ':')
			port = e + 2;
		else if (e[1] != '\0')
			return 0;
	} else {
		e = strchr(host, ':');
		n = e != NULL ? (size_t)(e - host) : strlen(host);
		if (e != NULL)
			port = e + 1;
	}
	if (n == 0 || n >= sizeof name || (port != NULL && (*port == '\0' ||
	    strspn(port, "0123456789") != strlen(port))))
		return 0;
	memcpy(name, host, n);
	name[n] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, name, a) == 1)
		return 1;
	if (v6)
		return 0;
	return strcasecmp(name, "localhost") == 0 || (n > 10 &&
	    strcasecmp(name + n - 10, ".localhost") == 0) ||
	    (*listen_host != '\0' && strcasecmp(name, listen_host) == 0);
}

/*
 * Host. While the API asks for no key (the default), any page a browser
 * shows could make its own name resolve to this server and read the
 * answers as its own: a Host that is not ours is 421, before anything
 * else. With keys such a page has none to send.
 */
static int
step_host(struct req *q)
{
	const char	*host = MHD_lookup_connection_value(q->c,
			    MHD_HEADER_KIND, "Host");
	int		 needed;

	/* The common case first: no look-up of keys. */
	if (host == NULL || host_ours(host, q->srv->listen_host))
		return 0;
	if (keys_needed(q, &needed) != 0)
		return 1;
	if (needed)
		return 0;
	fail(q, 421, "MISDIRECTED_REQUEST", NULL, "Host '%.100s' is not "
	    "this server's: without an API key, an address, localhost or "
	    "the name of --listen only", host);
	return 1;
}

/* Whether method changes something, for the Origin check. */
static int
method_writes(const char *m)
{
	return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
	    strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0;
}

/* Whether Origin is this server as Host names it (scheme aside). */
static int
origin_same(struct req *q, const char *origin)
{
	const char	*host = MHD_lookup_connection_value(q->c,
			    MHD_HEADER_KIND, "Host");
	const char	*a = strstr(origin, "://");

	return host != NULL && a != NULL && strcasecmp(a + 3, host) == 0;
}

/*
 * CORS. With no serve.cors_origins (the default) nothing is added, and
 * browsers keep pages of other origins from reading any response. A
 * request from a listed Origin gets Access-Control-Allow-Origin; its
 * preflight (OPTIONS with Access-Control-Request-Method) is answered
 * here, 204 with the methods of the path, before any API key is asked:
 * browsers send none with a preflight. A request that changes something
 * (POST, PUT, PATCH, DELETE) from a page of an origin not listed, nor
 * this server's own, is refused: a form or a no-cors fetch of another
 * site is sent by the browser without a preflight, and without a key
 * the API would do what it asks.
 */
static int
step_cors(struct req *q)
{
	const char	*origin = MHD_lookup_connection_value(q->c,
			    MHD_HEADER_KIND, "Origin");
	int		 any;

	if (origin == NULL)
		return 0;
	if (use_ctx(q) != 0)
		return 1;
	if (!origin_listed(pw_config_get(q->ctx, "serve.cors_origins", NULL),
	    origin, &any)) {
		if (!method_writes(q->method) || origin_same(q, origin))
			return 0;
		fail(q, 403, "FORBIDDEN", NULL, "Origin '%.100s' is not in "
		    "serve.cors_origins: a page of another site may not "
		    "change anything here", origin);
		return 1;
	}
	q->cors = any ? "*" : origin;
	if (strcmp(q->method, "OPTIONS") != 0 ||
	    MHD_lookup_connection_value(q->c, MHD_HEADER_KIND,
	    "Access-Control-Request-Method") == NULL)
		return 0;
	path_methods(q->path, q->allow, sizeof q->allow);
	if (q->allow[0] == '\0')
		return 0;	/* no such path: 404 */
	add_header(q, "Access-Control-Allow-Methods", q->allow);
	add_header(q, "Access-Control-Allow-Headers", "Authorization, "
	    "Content-Type, X-API-Key, X-Request-ID");
	add_header(q, "Access-Control-Max-Age", "600");
	reply(q, 204, NULL);
	return 1;
}

/* The key a request carries: X-API-Key, else Authorization: Bearer. */
static const char *
request_key(struct req *q, size_t *len)
{
	const char	*v = MHD_lookup_connection_value(q->c,
			    MHD_HEADER_KIND, "X-API-Key");

	if (v == NULL) {
		v = MHD_lookup_connection_value(q->c, MHD_HEADER_KIND,
		    "Authorization");
		if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
			return NULL;
		for (v += 7; *v == ' '; v++)
			;
	}
	*len = strcspn(v, " \t");
	return v;
}

static void
unauthorized(struct req *q, const char *why)
{
	add_header(q, "WWW-Authenticate", "Bearer realm=\"pw\"");
	fail(q, 401, "UNAUTHORIZED", NULL, "%s", why);
}

/*
 * Whether the API asks for a key (one exists, or serve.require_auth) into
 * *needed: 0, or -1 with the response sent.
 */
static int
keys_needed(struct req *q, int *needed)
{
	struct worker	*w;
	uint64_t	 gen;
	int		 any = 0, r;

	if (use_ctx(q) != 0)
		return -1;
	if (pw_config_int(q->ctx, "serve.require_auth")) {
		*needed = 1;
		return 0;
	}
	/* Keys added or removed reload the view. */
	w = (struct worker *)q->ctx;
	gen = settings_gen(q->srv);
	if (w->keys_gen != gen) {
		if ((r = pw_apikey_any(q->ctx, &any)) != 0) {
			fail_lib(q, r);
			return -1;
		}
		w->any_keys = any;
		w->keys_gen = gen;
	}
	*needed = w->any_keys;
	return 0;
}

/*
 * API keys. Once any key exists (pw serve keys add), or when
 * serve.require_auth is set, every route but the open ones (probes and
 * documentation) needs one; a key that is given must be valid, whatever
 * the route. The key is looked up on every request (an indexed read of
 * the worker's own connection), so a revoked key stops at once. The
 * key's id, name and tier stay in q->key for what follows.
 */
static int
step_auth(struct req *q)
{
	const char	*k;
	size_t		 len = 0;
	int		 needed, r;

	if (q->route->open)
		return 0;
	k = request_key(q, &len);
	if (use_ctx(q) != 0)
		return 1;
	if (k == NULL) {
		if (keys_needed(q, &needed) != 0)
			return 1;
		if (!needed)
			return 0;
		unauthorized(q, "an API key is needed (X-API-Key or "
		    "Authorization: Bearer)");
		return 1;
	}
	if ((r = pw_apikey_check(q->ctx, k, len, &q->key)) != 0) {
		if (r == PW_ENOTFOUND)
			unauthorized(q, "the API key is not valid");
		else
			fail_lib(q, r);
		return 1;
	}
	return 0;
}

/*
 * The client, by API key or else by address (X-Forwarded-For only from a
 * trusted proxy), against its tier and the route's own limit.
 */
static int
step_ratelimit(struct req *q)
{
	const union MHD_ConnectionInfo	*ci;
	const struct pw_rl_config	*c;
	struct pw_rl_who		 who;
	char				 client[INET6_ADDRSTRLEN];

	/* First: a change of settings may have turned limiting on or off. */
	if (use_ctx(q) != 0)
		return 1;
	if (!pw_rl_server_enabled(q->srv->rl))
		return 0;
	ci = MHD_get_connection_info(q->c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	c = pw_rl_server_config_get(q->srv->rl);
	if (ci != NULL && ci->client_addr != NULL)
		pw_rl_client(c, ci->client_addr, MHD_lookup_connection_value(
		    q->c, MHD_HEADER_KIND, "X-Forwarded-For"),
		    MHD_lookup_connection_value(q->c, MHD_HEADER_KIND,
		    "X-Real-IP"), client, sizeof client);
	else
		snprintf(client, sizeof client, "unknown");
	pw_rl_server_config_put(q->srv->rl);
	who.key = q->key.id != 0 ? q->key.name : NULL;
	who.tier = q->key.id != 0 && q->key.tier[0] != '\0' ? q->key.tier :
	    NULL;
	who.client = client;
	q->rl_changes = pw_store_total_changes(q->ctx->store);
	pw_rl_server_check(q->srv->rl, q->ctx->store, &who, q->route->path,
	    &q->rl, &q->limited);
	q->rl_changes = pw_store_total_changes(q->ctx->store) - q->rl_changes;
	if (!q->limited || q->rl.allowed)
		return 0;
	if (q->rl.failed)
		fail(q, 503, "RATE_LIMIT_UNAVAILABLE", NULL, "the rate limiter "
		    "cannot be reached (ratelimit.fail_mode is closed)");
	else {
		cJSON *d = cJSON_CreateObject();
		add_num(d, "limit", (double)q->rl.limit);
		add_num(d, "retry_after", (double)((q->rl.retry_ms + 999) /
		    1000));
		fail(q, 429, "RATE_LIMIT_EXCEEDED", d, "rate limit of %lld "
		    "requests exceeded; retry in %lld s",
		    (long long)q->rl.limit,
		    (long long)(q->rl.retry_ms + 999) / 1000);
	}
	return 1;
}

/*
 * Where the JSON text p[0..n) has a \u0000 escape, or NULL: cJSON keeps
 * no length with a string, so a NUL ends it there, silently. The text
 * parsed, so every backslash is in a string, and one that starts an
 * escape follows an even run of them.
 */
static char *
json_nul_escape(char *p, size_t n)
{
	char	*e = p + n, *s = p, *f, *b;

	while ((f = memmem(s, (size_t)(e - s), "\\u0000", 6)) != NULL) {
		for (b = f; b > p && b[-1] == '\\'; b--)
			;
		if ((f - b) % 2 == 0)
			return f;
		s = f + 1;
	}
	return NULL;
}

/*
 * The name of member j, the i-th of its parent, appended to
 * field[0..len) as the 422s name fields ("headers.X-Name", "ids[2]");
 * the new length.
 */
static size_t
member_name(const cJSON *j, size_t i, char *field, size_t n, size_t len)
{
	int	w;

	if (j->string != NULL)
		w = snprintf(field + len, n - len, "%s%.60s", len ? "." : "",
		    j->string);
	else
		w = snprintf(field + len, n - len, "[%zu]", i);
	return w < 0 ? len : len + (size_t)w < n ? len + (size_t)w : n - 1;
}

/*
 * The first member where a and b, parsed from texts that differ only in
 * the contents of strings, differ: its name (as the 422s name fields,
 * "headers.X-Name", "ids[2]") appended to field[0..len). 1 when found.
 */
static int
json_diff(const cJSON *a, const cJSON *b, char *field, size_t n, size_t len)
{
	size_t	i = 0, l;

	for (a = a->child, b = b->child; a != NULL && b != NULL;
	    a = a->next, b = b->next, i++) {
		l = member_name(a, i, field, n, len);
		if ((a->string != NULL && b->string != NULL &&
		    strcmp(a->string, b->string) != 0) ||
		    (json_is(a, cJSON_String) && json_is(b, cJSON_String) &&
		    strcmp(a->valuestring, b->valuestring) != 0) ||
		    json_diff(a, b, field, n, l))
			return 1;
	}
	field[len] = '\0';
	return 0;
}

/*
 * A string of the body that holds a NUL (\u0000): 422 naming its field.
 * The field is found by parsing the body again with each \u0000 made
 * \u0001 and comparing: rare, so the common case pays only a memmem.
 */
static void
refuse_nul(struct req *q, char *at)
{
	struct pw_buf	 b;
	cJSON		*j;
	char		 field[128] = "";
	size_t		 end;

	pw_buf_init(&b);
	pw_buf_add(&b, q->body.data, q->body.len);
	for (; at != NULL; at = json_nul_escape(at + 6, (size_t)(q->body.data +
	    q->body.len - at - 6)))
		b.data[at - q->body.data + 5] = '1';
	if ((j = json_parse(b.data, b.len, &end)) == NULL ||
	    !json_diff(q->json, j, field, sizeof field, 0))
		snprintf(field, sizeof field, "body");
	cJSON_Delete(j);
	pw_buf_release(&b);
	invalid(q, field, "%s: a NUL character (\\u0000) is not allowed in "
	    "a string", field);
}

struct member {
	const char	*name;
	size_t		 i;
};

static int
member_cmp(const void *a, const void *b)
{
	const struct member	*x = a, *y = b;
	int			 c = strcmp(x->name, y->name);

	return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

/*
 * A member name given twice in one object of j, its own first, then in
 * its values in order: its name (as the 422s name fields) appended to
 * field[0..len). 1 when found. Sorted, not compared pair by pair: a
 * body of a MiB may hold an object of many members.
 */
static int
json_dup(const cJSON *j, char *field, size_t n, size_t len)
{
	const cJSON	*it;
	struct member	*m;
	size_t		 k = 0, i = 0, l, dup = SIZE_MAX;

	if (!json_is(j, cJSON_Object) && !json_is(j, cJSON_Array))
		return 0;
	for (it = j->child; it != NULL; it = it->next)
		k++;
	if (json_is(j, cJSON_Object) && k > 1) {
		m = pw_xcalloc(k, sizeof *m);
		for (it = j->child; it != NULL; it = it->next, i++) {
			m[i].name = it->string;
			m[i].i = i;
		}
		qsort(m, k, sizeof *m, member_cmp);
		/* The one whose second coming is the first in the text. */
		for (i = 1; i < k; i++)
			if (strcmp(m[i - 1].name, m[i].name) == 0 &&
			    (dup == SIZE_MAX || m[i].i < m[dup].i))
				dup = i;
		if (dup != SIZE_MAX)
			snprintf(field + len, n - len, "%s%.60s", len ? "." :
			    "", m[dup].name);
		free(m);
		if (dup != SIZE_MAX)
			return 1;
	}
	for (it = j->child, i = 0; it != NULL; it = it->next, i++) {
		l = member_name(it, i, field, n, len);
		if (json_dup(it, field, n, l))
			return 1;
	}
	field[len] = '\0';
	return 0;
}

/* Is k one of the space-separated keys? */
static int
key_listed(const char *keys, const char *k)
{
	size_t	kl = strlen(k), n;

	for (; *keys != '\0'; keys += n + strspn(keys + n, " ")) {
		n = strcspn(keys, " ");
		if (n == kl && memcmp(keys, k, n) == 0)
			return 1;
	}
	return 0;
}

/*
 * The first member of the body's object that the route does not take:
 * 422 naming it, and the members it takes. 1 when refused.
 */
static int
refuse_unknown(struct req *q)
{
	const char	*keys = q->route->keys, *k;
	struct pw_buf	 b;
	size_t		 n;
	char		 field[64];

	for (const cJSON *it = q->json->child; it != NULL; it = it->next) {
		if (key_listed(keys, it->string))
			continue;
		pw_buf_init(&b);
		for (k = keys; *k != '\0'; k += n + strspn(k + n, " ")) {
			n = strcspn(k, " ");
			pw_buf_addf(&b, "%s%.*s", b.len ? ", " : "", (int)n, k);
		}
		snprintf(field, sizeof field, "%.60s", it->string);
		invalid(q, field, "%s: unknown field (want %s)", field,
		    b.data);
		pw_buf_release(&b);
		return 1;
	}
	return 0;
}

/* Content-Type is application/json, with parameters or not. */
static int
content_json(struct req *q)
{
	const char	*v = MHD_lookup_connection_value(q->c,
			    MHD_HEADER_KIND, "Content-Type");

	if (v == NULL)
		return 0;
	v += strspn(v, " \t");
	return strncasecmp(v, "application/json", 16) == 0 &&
	    (v[16] == '\0' || v[16] == ';' || v[16] == ' ' || v[16] == '\t');
}

static int
step_json(struct req *q)
{
	size_t	 at;
	char	*nul, field[128];

	if (q->route->body == BODY_NONE)
		return 0;
	if (q->body.len == 0 && q->route->body == BODY_OPT)
		return 0;
	if (q->body.len == 0) {
		invalid(q, "body", "body: a JSON object is required");
		return 1;
	}
	/*
	 * A body of any other type is what a form of another site can
	 * send without a preflight: it is not taken for JSON.
	 */
	if (!content_json(q)) {
		fail(q, 415, "UNSUPPORTED_MEDIA_TYPE", NULL, "the body is "
		    "JSON: want Content-Type: application/json");
		return 1;
	}
	/* Not in JSON text, and a string of cJSON's would end at it. */
	if (memchr(q->body.data, '\0', q->body.len) != NULL) {
		fail(q, 400, "INVALID_JSON", NULL, "the request body is not "
		    "valid JSON: a NUL byte");
		return 1;
	}
	if ((q->json = json_parse(q->body.data, q->body.len, &at)) == NULL) {
		if (at != SIZE_MAX)
			fail(q, 400, "INVALID_JSON", NULL, "the request body "
			    "is not valid JSON: more after its value (at byte "
			    "%zu)", at);
		else
			fail(q, 400, "INVALID_JSON", NULL, "the request body "
			    "is not valid JSON");
		return 1;
	}
	if (!json_is(q->json, cJSON_Object)) {
		invalid(q, "body", "body: want a JSON object, not %s",
		    type_name(q->json));
		return 1;
	}
	if ((nul = json_nul_escape(q->body.data, q->body.len)) != NULL) {
		refuse_nul(q, nul);
		return 1;
	}
	/* Which of two values would count is nobody's guess: neither. */
	if (json_dup(q->json, field, sizeof field, 0)) {
		invalid(q, field, "%s: duplicate key", field);
		return 1;
	}
	if (q->route->keys != NULL && refuse_unknown(q))
		return 1;
	return 0;
}

static int
step_handler(struct req *q)
{
	q->route->fn(q);
	return 1;
}

/* Each step returns 0 to go on, 1 when it has replied. */
static int (*const pipeline[])(struct req *) = {
	step_request_id,
	step_host,
	step_cors,
	step_body_limit,
	step_route,
	step_auth,
	step_ratelimit,
	step_json,
	step_handler,
};

/*
 * A request that wrote to the state file (pool, config) has the view
 * reload before it answers: the next request, on any thread, sees it.
 */
static void
after_write(struct req *q, int64_t changes)
{
	struct pw_err	err;

	if (q->ctx == NULL ||
	    pw_store_total_changes(q->ctx->store) == changes)
		return;
	if (pw_view_sync(q->srv->view, 1, &err) != 0)
		pw_log(PW_LOG_WARN, "serve: %s", err.msg);
}

/* ------------------------------------------------------------ watcher */

/* The watch of connection c, when it has one. */
static struct watch *
watch_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo	*i;

	i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return i != NULL ? i->socket_context : NULL;
}

/* Connection c must have sent a whole request by deadline (0: need not). */
static void
watch_set(struct pw_server *s, struct MHD_Connection *c, int64_t deadline)
{
	struct watch	*w = watch_of(c);

	if (w == NULL)
		return;
	pthread_mutex_lock(&s->wmu);
	w->deadline = deadline;
	pthread_mutex_unlock(&s->wmu);
}

/*
 * A connection opens: it has read_ms to send its first request. It
 * closes: libmicrohttpd closes its descriptor only after this returns,
 * so the watcher never shuts down a descriptor reused meanwhile.
 */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct pw_server		*s = cls;
	struct watch			*w;
	const union MHD_ConnectionInfo	*i;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		i = MHD_get_connection_info(c,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		if (i == NULL)
			return;
		w = pw_xcalloc(1, sizeof *w);
		w->fd = i->connect_fd;
		w->deadline = pw_mono_ms() + s->read_ms;
		pthread_mutex_lock(&s->wmu);
		w->next = s->watched;
		if (s->watched != NULL)
			s->watched->prev = w;
		s->watched = w;
		pthread_mutex_unlock(&s->wmu);
		*socket_context = w;
		return;
	}
	if ((w = *socket_context) == NULL)
		return;
	pthread_mutex_lock(&s->wmu);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		s->watched = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&s->wmu);
	free(w);
	*socket_context = NULL;
}

/*
 * Every WATCH_TICK_MS: a connection past its deadline is shut down (its
 * worker sees the end of the stream and closes it). A slow client holds
 * a connection read_ms at most, however it spaces its bytes.
 */
static void *
watcher(void *arg)
{
	struct pw_server	*s = arg;
	struct watch		*w;
	struct timespec		 ts;
	int64_t			 now;

	pthread_mutex_lock(&s->wmu);
	while (!s->wstop) {
		now = pw_mono_ms();
		for (w = s->watched; w != NULL; w = w->next) {
			if (w->deadline == 0 || now < w->deadline)
				continue;
			w->deadline = 0;
			shutdown(w->fd, SHUT_RDWR);
			if (s->log)
				pw_log(PW_LOG_INFO, "serve: a client sent no "
				    "whole request in %llds: closed",
				    (long long)(s->read_ms / 1000));
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += WATCH_TICK_MS * 1000L * 1000L;
		if (ts.tv_nsec >= 1000L * 1000L * 1000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000L * 1000L * 1000L;
		}
		pthread_cond_timedwait(&s->wcv, &s->wmu, &ts);
	}
	pthread_mutex_unlock(&s->wmu);
	return NULL;
}

/* End the watcher, if it runs, and what it used. */
static void
watcher_stop(struct pw_server *s)
{
	if (s->watching) {
		pthread_mutex_lock(&s->wmu);
		s->wstop = 1;
		pthread_cond_signal(&s->wcv);
		pthread_mutex_unlock(&s->wmu);
		pthread_join(s->watcher, NULL);
		s->watching = 0;
	}
	pthread_cond_destroy(&s->wcv);
	pthread_mutex_destroy(&s->wmu);
}

/*
 * The acceptor: the one thread that accepts, handing each connection to
 * a worker of libmicrohttpd (the one its descriptor names). Left to
 * libmicrohttpd, every worker polls the listening socket, so each new
 * connection woke all of them (32 a core) and all but one found nothing
 * to accept: 58 context switches a request for a client that does not
 * keep its connection, 5.5 times the processor time.
 */
static void *
acceptor(void *arg)
{
	struct pw_server	*s = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	int			 fd;

	for (;;) {
		sl = sizeof ss;
		fd = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (atomic_load(&s->closing)) {
			if (fd >= 0)
				close(fd);
			break;
		}
		if (fd >= 0) {
			/* It closes fd when it cannot take it. */
			(void)MHD_add_connection(s->d, fd,
			    (struct sockaddr *)&ss, sl);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		/* Out of descriptors or memory: a moment for some to close. */
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* Stop accepting: the listening socket is closed. */
static void
acceptor_stop(struct pw_server *s)
{
	if (s->accepting) {
		atomic_store(&s->closing, 1);
		/* A blocked accept(2) returns. */
		shutdown(s->fd, SHUT_RDWR);
		pthread_join(s->acceptor, NULL);
		s->accepting = 0;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void
run(struct req *q)
{
	struct pw_ctx	*ctx = pthread_getspecific(q->srv->key);
	int64_t		 changes = ctx != NULL ?
			    pw_store_total_changes(ctx->store) : 0;
	char		 name[sizeof q->rid + 8];

	for (size_t i = 0; i < sizeof pipeline / sizeof pipeline[0]; i++) {
		if (pipeline[i](q) != 0 || q->replied)
			break;
		/* What lib logs for this request names it. */
		if (pipeline[i] == step_request_id) {
			snprintf(name, sizeof name, "serve: %s", q->rid);
			pw_log_context(name);
		}
	}
	if (!q->replied)
		fail(q, 500, "INTERNAL_ERROR", NULL, "no response");
	pw_log_context(NULL);
	/* The rate limiter's writes (sqlite backend) are not the pool's. */
	after_write(q, ctx == q->ctx ? changes + q->rl_changes : 0);
}

/* ---------------------------------------------------------- the daemon */

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct pw_server	*s = cls;
	struct req		*q = *con_cls;
	const char		*len;

	(void)version;
	if (q == NULL) {
		q = pw_xcalloc(1, sizeof *q);
		q->srv = s;
		q->c = c;
		/* Copies: the log line outlives MHD's buffers. */
		q->method = pw_xstrdup(method);
		q->path = pw_xstrdup(url);
		q->t0 = pw_mono_ms();
		pw_buf_init(&q->body);
		*con_cls = q;
		atomic_fetch_add(&s->inflight, 1);
		atomic_fetch_add(&s->requests, 1);
		len = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    "Content-Length");
		if (len != NULL && strtoull(len, NULL, 10) > s->body_max) {
			/* Refused before it is read; the connection closes. */
			q->too_big = 1;
			watch_set(s, c, 0);
			run(q);
		}
		return q->send_failed ? MHD_NO : MHD_YES;
	}
	if (q->replied) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (q->body.len + *upload_size > s->body_max)
			q->too_big = 1;
		else
			pw_buf_add(&q->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	/* The request is in: what it does may take its time. */
	watch_set(s, c, 0);
	run(q);
	/* No response could be queued: MHD closes the connection. */
	return q->send_failed ? MHD_NO : MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct pw_server	*s = cls;
	struct req		*q = *con_cls;
	int64_t			 ms, sec;
	int			 slot;

	/* A keep-alive connection: its next request, in the same time. */
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		watch_set(s, c, pw_mono_ms() + (s->read_ms > IDLE_S * 1000 ?
		    s->read_ms : IDLE_S * 1000));
	if (q == NULL)
		return;
	ms = pw_mono_ms() - q->t0;
	sec = pw_mono_ms() / 1000;
	slot = (int)(sec % RATE_WINDOW);
	pthread_mutex_lock(&s->mu);
	s->m.completed++;
	s->m.by_class[q->status >= 100 && q->status < 600 ? q->status / 100 :
	    0]++;
	s->m.latency_sum_ms += (double)ms;
	if (s->m.sec_stamp[slot] != sec) {
		s->m.sec_stamp[slot] = sec;
		s->m.sec_count[slot] = 0;
	}
	s->m.sec_count[slot]++;
	pthread_mutex_unlock(&s->mu);
	/* The key's name, never the key. */
	if (s->log)
		pw_log(PW_LOG_INFO, "serve: %s %s %.200s %u %lldms%s%s%s",
		    q->rid[0] ? q->rid : "-", q->method, q->path, q->status,
		    (long long)ms, q->key.id != 0 ? " key=" : "",
		    q->key.id != 0 ? q->key.name : "",
		    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" :
		    " (connection closed)");
	cJSON_Delete(q->json);
	pw_buf_release(&q->body);
	free(q->method);
	free(q->path);
	free(q);
	*con_cls = NULL;
	atomic_fetch_sub(&s->inflight, 1);
}

/*
 * The path and the query, "%HH" decoded as libmicrohttpd does, but for
 * "%00", which is left as it came: every string of a request is a C
 * string, and a decoded NUL would end it early (/api/v1/proxies/1%00x
 * would name proxy 1). Left alone it is what it is, junk.
 */
static size_t
on_unescape(void *cls, struct MHD_Connection *c, char *str)
{
	char	*r = str, *w = str;
	int	 hi, lo;

	(void)cls;
	(void)c;
	while (*r != '\0') {
		if (r[0] == '%' &&
		    (hi = pw_hex_digit((unsigned char)r[1])) >= 0 &&
		    (lo = pw_hex_digit((unsigned char)r[2])) >= 0 &&
		    (hi | lo) != 0) {
			*w++ = (char)(hi << 4 | lo);
			r += 3;
		} else
			*w++ = *r++;
	}
	*w = '\0';
	return (size_t)(w - str);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char	msg[400];
	size_t	n;

	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	pw_log(PW_LOG_WARN, "serve: %s", msg);
}


int
pw_serve_start(struct pw_ctx *ctx, const char *state,
    const struct pw_serve_opts *o, struct pw_server **out)
{
	struct pw_server	*s;
	struct pw_store		*st;
	struct sockaddr_storage	 ss;
	socklen_t		 sl = 0;
	const char		*spec = o->listen;
	char			 host[INET6_ADDRSTRLEN];
	int			 one = 1, r;
	long			 cores;
	pthread_condattr_t	 ca;

	if (spec == NULL)
		spec = pw_config_get(ctx, "serve.listen", NULL);
	if ((r = pw_listen_parse(spec, &ss, &sl, &ctx->err)) != 0)
		return pw_err_prefix(&ctx->err, "--listen");
	if (!o->insecure && !pw_addr_is_loopback(&ss)) {
		int any = 0;

		if ((r = pw_apikey_any(ctx, &any)) != 0)
			return r;
		if (!any)
			return pw_failf(&ctx->err, PW_EUSAGE, "--listen: '%s' "
			    "is not a loopback address, and no API key exists "
			    "(make one with pw serve keys add, or add "
			    "--insecure to serve it anyway)", spec);
	}
	/*
	 * libcurl too, now: its global set-up is not thread-safe. So are
	 * the lazy tables of lib: fill them before there are threads.
	 */
	(void)pw_now_ms();
	(void)pw_config_keys();
	if ((r = pw_httpd_init(&ctx->err)) != 0 ||
	    (r = pw_net_init(&ctx->err)) != 0)
		return r;
	s = pw_xcalloc(1, sizeof *s);
	s->fd = -1;
	if ((r = pw_rl_server_new(ctx, &s->rl)) != 0) {
		free(s);
		return r;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->wmu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wcv, &ca);
	pthread_condattr_destroy(&ca);
	s->read_ms = o->read_ms > 0 ? o->read_ms : READ_MS_DEFAULT;
	if ((s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof one) != 0 || bind(s->fd, (struct sockaddr *)&ss, sl) != 0) {
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot listen on %s: %s",
		    spec, strerror(errno));
		goto fail;
	}
	/*
	 * Make the state file now, between bind and listen: after bind, so
	 * that a taken port leaves none behind; before listen, so that no
	 * client sees it half made. And made once here: a worker that
	 * opened it while it was missing would read an empty stand-in,
	 * never the file another worker then creates.
	 */
	if ((r = pw_store_open(state, PW_OPEN_RW, &st, &ctx->err)) != 0)
		goto fail;
	pw_store_close(st);
	if (listen(s->fd, 128) != 0) {
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot listen on %s: %s",
		    spec, strerror(errno));
		goto fail;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		snprintf(s->addr, sizeof s->addr, "[%s]:%d", inet_ntop(AF_INET6,
		    &a6->sin6_addr, host, sizeof host), ntohs(a6->sin6_port));
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		snprintf(s->addr, sizeof s->addr, "%s:%d", inet_ntop(AF_INET,
		    &a4->sin_addr, host, sizeof host), ntohs(a4->sin_port));
	}
	/* Its host as given, for Host: a name is taken as it is. */
	if (*spec == '[')
		snprintf(s->listen_host, sizeof s->listen_host, "%.*s",
		    (int)strcspn(spec + 1, "]"), spec + 1);
	else
		snprintf(s->listen_host, sizeof s->listen_host, "%.*s",
		    (int)(strrchr(spec, ':') - spec), spec);
	s->state = pw_xstrdup(state);
	s->cfg = ctx->cfg;
	s->body_max = o->body_max ? o->body_max : BODY_MAX_DEFAULT;
	s->log = o->log_requests;
	cores = sysconf(_SC_NPROCESSORS_ONLN);
	/*
	 * A proxied request holds its worker until the target answered:
	 * many more workers than cores, or a few slow targets stall all.
	 */
	if (cores < 1)
		cores = 1;
	s->threads = o->threads ? o->threads : cores * 32 > 256 ? 256 :
	    cores * 32 < 32 ? 32 : (unsigned int)cores * 32;
	s->started_ms = pw_mono_ms();
	/* The pool in memory, before any request can ask for it. */
	if ((r = pw_view_open(state, s->cfg, PW_VIEW_CHECK_MS, &s->view,
	    &ctx->err)) != 0)
		goto fail;
	if (pthread_key_create(&s->key, ctx_free) != 0) {
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot create a thread key");
		goto fail;
	}
	if (pthread_create(&s->watcher, NULL, watcher, s) != 0) {
		pthread_key_delete(s->key);
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot start a thread");
		goto fail;
	}
	s->watching = 1;
	/* epoll, and reads and writes tried before readiness is polled. */
	s->d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD |
	    MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_TURBO |
	    MHD_USE_NO_LISTEN_SOCKET |
	    (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL,
	    on_request, s,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
	    MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, s,
	    MHD_OPTION_THREAD_POOL_SIZE, s->threads,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)IDLE_S,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)1000,
	    MHD_OPTION_END);
	if (s->d == NULL) {
		pthread_key_delete(s->key);
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot start the HTTP "
		    "server on %s", spec);
		goto fail;
	}
	if ((r = pw_housekeep_start(state, s->cfg, s->view, &s->hk,
	    &ctx->err)) != 0) {
		MHD_stop_daemon(s->d);
		pthread_key_delete(s->key);
		goto fail;
	}
	if (pthread_create(&s->acceptor, NULL, acceptor, s) != 0) {
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot start a thread");
		pw_housekeep_stop(s->hk);
		MHD_stop_daemon(s->d);
		pthread_key_delete(s->key);
		goto fail;
	}
	s->accepting = 1;
	*out = s;
	return 0;
fail:
	acceptor_stop(s);
	watcher_stop(s);
	pw_view_close(s->view);
	pthread_mutex_destroy(&s->mu);
	pw_rl_server_free(s->rl);
	free(s->state);
	free(s);
	return r;
}

struct pw_view *
pw_serve_view(struct pw_server *s)
{
	return s->view;
}

const char *
pw_serve_address(const struct pw_server *s)
{
	return s->addr;
}

void
pw_serve_stop(struct pw_server *s, int64_t grace_ms)
{
	int64_t	end;

	if (s == NULL)
		return;
	/* No new connections; the ones open finish what they started. */
	acceptor_stop(s);
	end = pw_mono_ms() + grace_ms;
	while (atomic_load(&s->inflight) > 0 && pw_mono_ms() < end) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	/* Joins the workers; each closes its context as it ends. */
	MHD_stop_daemon(s->d);
	pthread_key_delete(s->key);
	/* Then what the requests left in memory goes to the file. */
	pw_housekeep_stop(s->hk);
	watcher_stop(s);
	pw_view_close(s->view);
	pthread_mutex_destroy(&s->mu);
	pw_rl_server_free(s->rl);
	free(s->state);
	free(s);
}

/* ------------------------------------------------- rate-limit config */

/* A name from the input, fit for a one-line message. */
static const char *
shown(const char *s, char *buf, size_t n)
{
	size_t	i;

	for (i = 0; s[i] != '\0' && i + 1 < n; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' :
		    s[i];
	buf[i] = '\0';
	return buf;
}

#define RL_LIMIT_MAX	1000000000
#define RL_WINDOW_MAX	86400

/*
 * limit and window (seconds) of j: a number, or {"limit", "window"} (and
 * "name", for a tier).
 */
static int
rl_limit(const cJSON *j, const char *where, int tier, struct pw_rl_limit *l,
    struct pw_err *err)
{
	const cJSON	*lim = j, *win = NULL;
	char		 name[64];

	l->window_ms = 60000;
	if (json_is(j, cJSON_Object)) {
		for (const cJSON *m = j->child; m != NULL; m = m->next)
			if (strcmp(m->string, "limit") != 0 &&
			    strcmp(m->string, "window") != 0 &&
			    (!tier || strcmp(m->string, "name") != 0))
				return pw_failf(err, PW_EUSAGE, "%s.%s: "
				    "unknown field (want %slimit, window)",
				    where, shown(m->string, name, sizeof name),
				    tier ? "name, " : "");
		lim = cJSON_GetObjectItemCaseSensitive(j, "limit");
		win = cJSON_GetObjectItemCaseSensitive(j, "window");
	}
	/* null: unlimited */
	if (lim == NULL || json_is(lim, cJSON_NULL))
		l->limit = 0;
	else if (!json_is(lim, cJSON_Number) || lim->valuedouble < 0 ||
	    lim->valuedouble > RL_LIMIT_MAX ||
	    lim->valuedouble != (double)(int64_t)lim->valuedouble)
		return pw_failf(err, PW_EUSAGE, "%s%s: want an integer from "
		    "0 (unlimited) to %d", where, lim == j ? "" : ".limit",
		    RL_LIMIT_MAX);
	else
		l->limit = (int64_t)lim->valuedouble;
	if (win != NULL && !json_is(win, cJSON_NULL)) {
		if (!json_is(win, cJSON_Number) || win->valuedouble < 1 ||
		    win->valuedouble > RL_WINDOW_MAX ||
		    win->valuedouble != (double)(int64_t)win->valuedouble)
			return pw_failf(err, PW_EUSAGE, "%s.window: want "
			    "seconds from 1 to %d", where, RL_WINDOW_MAX);
		l->window_ms = (int64_t)win->valuedouble * 1000;
	}
	return 0;
}

/* An array of strings into *out (replacing it); each checked by ok. */
static int
rl_strings(const cJSON *j, const char *where, char ***out, size_t *n,
    int (*ok)(const char *), const char *want, struct pw_err *err)
{
	size_t	i = 0;

	if (!json_is(j, cJSON_Array))
		return pw_failf(err, PW_EUSAGE, "%s: want an array of "
		    "strings, not %s", where, type_name(j));
	for (size_t k = 0; k < *n; k++)
		free((*out)[k]);
	free(*out);
	*out = NULL;
	*n = 0;
	for (const cJSON *m = j->child; m != NULL; m = m->next, i++) {
		if (!json_is(m, cJSON_String) || !ok(m->valuestring))
			return pw_failf(err, PW_EUSAGE, "%s[%zu]: want %s",
			    where, i, want);
		*out = pw_xrealloc(*out, (*n + 1) * sizeof **out);
		(*out)[(*n)++] = pw_xstrdup(m->valuestring);
	}
	return 0;
}

static int
rl_whitelist_ok(const char *s)
{
	struct pw_rl_net	n;

	return (strncmp(s, "key:", 4) == 0 && s[4] != '\0') ||
	    pw_rl_net_parse(s, &n) == 0;
}

static int
rl_net_ok(const char *s)
{
	struct pw_rl_net	n;

	return pw_rl_net_parse(s, &n) == 0;
}

static int
rl_tier_name_ok(const char *s)
{
	return *s != '\0' && strlen(s) <= 64 && strspn(s,
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	    "-_.") == strlen(s);
}

static int
rl_parse(const cJSON *root, struct pw_rl_config *c, struct pw_err *err)
{
	const cJSON	*j;
	char		 where[300], nbuf[200], **nets = NULL;
	size_t		 nnets = 0;
	int		 r;

	if (!json_is(root, cJSON_Object))
		return pw_failf(err, PW_EUSAGE, "want a JSON object, not %s",
		    type_name(root));
	for (j = root->child; j != NULL; j = j->next)
		if (strcmp(j->string, "default_tier") != 0 &&
		    strcmp(j->string, "tiers") != 0 &&
		    strcmp(j->string, "endpoints") != 0 &&
		    strcmp(j->string, "whitelist") != 0 &&
		    strcmp(j->string, "trusted_proxies") != 0)
			return pw_failf(err, PW_EUSAGE, "%s: unknown field "
			    "(want default_tier, tiers, endpoints, whitelist, "
			    "trusted_proxies)", shown(j->string, where,
			    64));
	if ((j = cJSON_GetObjectItemCaseSensitive(root, "tiers")) != NULL) {
		size_t i = 0;

		if (!json_is(j, cJSON_Array) || j->child == NULL)
			return pw_failf(err, PW_EUSAGE, "tiers: want a "
			    "non-empty array of {name, limit, window}");
		for (size_t k = 0; k < c->ntiers; k++)
			free(c->tiers[k].name);
		free(c->tiers);
		c->tiers = NULL;
		c->ntiers = 0;
		for (const cJSON *t = j->child; t != NULL; t = t->next, i++) {
			const cJSON *name;
			struct pw_rl_limit l;

			snprintf(where, sizeof where, "tiers[%zu]", i);
			if (!json_is(t, cJSON_Object))
				return pw_failf(err, PW_EUSAGE, "%s: want an "
				    "object {name, limit, window}", where);
			name = cJSON_GetObjectItemCaseSensitive(t, "name");
			if (!json_is(name, cJSON_String) ||
			    !rl_tier_name_ok(name->valuestring))
				return pw_failf(err, PW_EUSAGE, "%s.name: want "
				    "a name of letters, digits, - _ .", where);
			if (cJSON_GetObjectItemCaseSensitive(t, "limit") ==
			    NULL)
				return pw_failf(err, PW_EUSAGE, "%s.limit: "
				    "missing (0 or null: unlimited)", where);
			if ((r = rl_limit(t, where, 1, &l, err)) != 0)
				return r;
			c->tiers = pw_xrealloc(c->tiers, (c->ntiers + 1) *
			    sizeof *c->tiers);
			c->tiers[c->ntiers].name =
			    pw_xstrdup(name->valuestring);
			c->tiers[c->ntiers++].lim = l;
		}
		free(c->default_tier);
		c->default_tier = pw_xstrdup(c->tiers[0].name);
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(root, "default_tier")) !=
	    NULL) {
		if (!json_is(j, cJSON_String))
			return pw_failf(err, PW_EUSAGE, "default_tier: want "
			    "a tier's name, not %s", type_name(j));
		free(c->default_tier);
		c->default_tier = pw_xstrdup(shown(j->valuestring, nbuf,
		    sizeof nbuf));
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(root, "endpoints")) !=
	    NULL) {
		if (!json_is(j, cJSON_Object))
			return pw_failf(err, PW_EUSAGE, "endpoints: want an "
			    "object of path: limit");
		/* Over the built-in ones: a path given replaces its own. */
		for (const cJSON *e = j->child; e != NULL; e = e->next) {
			struct pw_rl_endpoint *ep = NULL;
			struct pw_rl_limit l;

			snprintf(where, sizeof where, "endpoints.%s",
			    shown(e->string, nbuf, sizeof nbuf));
			if (e->string[0] != '/')
				return pw_failf(err, PW_EUSAGE, "%s: a path "
				    "starts with /", where);
			if ((r = rl_limit(e, where, 0, &l, err)) != 0)
				return r;
			for (size_t k = 0; k < c->nendpoints; k++)
				if (strcmp(c->endpoints[k].path, e->string) ==
				    0)
					ep = &c->endpoints[k];
			if (ep == NULL) {
				c->endpoints = pw_xrealloc(c->endpoints,
				    (c->nendpoints + 1) * sizeof *c->endpoints);
				ep = &c->endpoints[c->nendpoints++];
				ep->path = pw_xstrdup(e->string);
			}
			ep->lim = l;
		}
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(root, "whitelist")) != NULL &&
	    (r = rl_strings(j, "whitelist", &c->whitelist, &c->nwhitelist,
	    rl_whitelist_ok, "an address, a network or key:NAME", err)) != 0)
		return r;
	if ((j = cJSON_GetObjectItemCaseSensitive(root, "trusted_proxies")) !=
	    NULL) {
		if ((r = rl_strings(j, "trusted_proxies", &nets, &nnets,
		    rl_net_ok, "an address or a network", err)) == 0)
			for (size_t k = 0; k < nnets; k++) {
				c->trusted = pw_xrealloc(c->trusted,
				    (c->ntrusted + 1) * sizeof *c->trusted);
				pw_rl_net_parse(nets[k],
				    &c->trusted[c->ntrusted++]);
			}
		for (size_t k = 0; k < nnets; k++)
			free(nets[k]);
		free(nets);
		if (r != 0)
			return r;
	}
	return pw_rl_config_check(c, err);
}

/*
 * Parse a rate-limit configuration (the file of ratelimit.config, or the
 * body of PUT /api/v1/rate-limit/config) over the built-in one into *c.
 * Errors name the field. Here because JSON is read only in api.c.
 */
int
pw_rl_config_parse(const char *json, size_t len, struct pw_rl_config *c,
    struct pw_err *err)
{
	cJSON	*root;
	size_t	 at;
	int	 r;

	pw_rl_config_default(c);
	if ((r = pw_cjson_init(err)) != 0)
		return r;
	if ((root = json_parse(json, len, &at)) == NULL) {
		pw_rl_config_release(c);
		return pw_failf(err, PW_EUSAGE, "not valid JSON");
	}
	if ((r = rl_parse(root, c, err)) != 0)
		pw_rl_config_release(c);
	cJSON_Delete(root);
	return r;
}

/* ------------------------------------------ rate-limit endpoints */

static cJSON *
rl_limit_json(const struct pw_rl_limit *l)
{
	cJSON	*o = cJSON_CreateObject();

	cJSON_AddItemToObject(o, "limit", l->limit ?
	    cJSON_CreateNumber((double)l->limit) : cJSON_CreateNull());
	add_num(o, "window", (double)(l->window_ms / 1000));
	return o;
}

static void
net_text(const struct pw_rl_net *n, char *buf, size_t len)
{
	char	a[INET6_ADDRSTRLEN] = "";

	if (n->addr.ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&n->addr)->
		    sin_addr, a, sizeof a);
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&n->addr)->
		    sin6_addr, a, sizeof a);
	snprintf(buf, len, "%s/%d", a, n->bits);
}

static cJSON *
rl_config_json(struct pw_server *s)
{
	const struct pw_rl_config	*c = pw_rl_server_config_get(s->rl);
	cJSON				*o = cJSON_CreateObject(), *a, *e;
	char				 net[INET6_ADDRSTRLEN + 8];

	add_bool(o, "enabled", pw_rl_server_enabled(s->rl));
	add_str(o, "backend", pw_rl_server_backend(s->rl));
	add_str(o, "default_tier", c->default_tier);
	a = cJSON_CreateArray();
	for (size_t i = 0; i < c->ntiers; i++) {
		e = rl_limit_json(&c->tiers[i].lim);
		add_str(e, "name", c->tiers[i].name);
		cJSON_AddItemToArray(a, e);
	}
	cJSON_AddItemToObject(o, "tiers", a);
	e = cJSON_CreateObject();
	for (size_t i = 0; i < c->nendpoints; i++)
		cJSON_AddItemToObject(e, c->endpoints[i].path,
		    rl_limit_json(&c->endpoints[i].lim));
	cJSON_AddItemToObject(o, "endpoints", e);
	a = cJSON_CreateArray();
	for (size_t i = 0; i < c->nwhitelist; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(c->whitelist[i]));
	cJSON_AddItemToObject(o, "whitelist", a);
	a = cJSON_CreateArray();
	for (size_t i = 0; i < c->ntrusted; i++) {
		net_text(&c->trusted[i], net, sizeof net);
		cJSON_AddItemToArray(a, cJSON_CreateString(net));
	}
	cJSON_AddItemToObject(o, "trusted_proxies", a);
	pw_rl_server_config_put(s->rl);
	return o;
}

/* The rate-limit configuration is an administrator's (admin_only). */
static int
rl_admin(struct req *q)
{
	return admin_only(q, "the rate-limit configuration");
}

/* GET /api/v1/rate-limit/config */
static int
h_rl_config_get(struct req *q)
{
	if (!rl_admin(q))
		return 0;
	return reply(q, 200, rl_config_json(q->srv));
}

/*
 * PUT /api/v1/rate-limit/config: a whole configuration (over the built-in
 * one), in force for the next request; counts are kept. Not written to
 * the file: it lasts until the file changes or pw serve reloads it.
 */
static int
h_rl_config_put(struct req *q)
{
	struct pw_rl_config	 c;
	struct pw_err		 err = { 0, "" };
	char			 field[128];
	size_t			 n;

	if (!rl_admin(q))
		return 0;
	pw_rl_config_default(&c);
	if (rl_parse(q->json, &c, &err) != 0) {
		pw_rl_config_release(&c);
		n = strcspn(err.msg, ":");
		snprintf(field, sizeof field, "%.*s", (int)(err.msg[n] ? n :
		    4), err.msg[n] ? err.msg : "body");
		return invalid(q, field, "%s", err.msg);
	}
	pw_rl_server_set(q->srv->rl, &c);
	return reply(q, 200, rl_config_json(q->srv));
}

static cJSON *
rl_counts_json(const struct pw_rl_count *c, size_t n, const char *key)
{
	cJSON	*a = cJSON_CreateArray(), *o;

	for (size_t i = 0; i < n; i++) {
		o = cJSON_CreateObject();
		add_str(o, key, c[i].name);
		add_num(o, "checks", (double)c[i].checks);
		add_num(o, "throttled", (double)c[i].throttled);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

/* GET /api/v1/rate-limit/metrics */
static int
h_rl_metrics(struct req *q)
{
	struct pw_rl_stats	 st;
	cJSON			*d = cJSON_CreateObject(), *a, *o;

	pw_rl_server_stats(q->srv->rl, &st);
	add_bool(d, "enabled", pw_rl_server_enabled(q->srv->rl));
	add_str(d, "backend", pw_rl_server_backend(q->srv->rl));
	add_num(d, "checks", (double)st.checks);
	add_num(d, "throttled", (double)st.throttled);
	add_num(d, "exempt", (double)st.exempt);
	add_num(d, "backend_failures", (double)st.failures);
	add_num(d, "backend_checks", (double)st.backend_checks);
	add_num(d, "mean_check_us", st.checks ? st.seconds * 1e6 /
	    (double)st.checks : 0);
	cJSON_AddItemToObject(d, "by_tier", rl_counts_json(st.tiers,
	    st.ntiers, "tier"));
	cJSON_AddItemToObject(d, "by_endpoint", rl_counts_json(st.endpoints,
	    st.nendpoints, "endpoint"));
	a = cJSON_CreateArray();
	for (size_t i = 0; i < st.ntop; i++) {
		o = cJSON_CreateObject();
		add_str(o, "identifier", st.top[i].name);
		add_num(o, "throttled", (double)st.top[i].throttled);
		cJSON_AddItemToArray(a, o);
	}
	cJSON_AddItemToObject(d, "top_throttled", a);
	pw_rl_stats_release(&st);
	return reply(q, 200, d);
}

/*
 * GET /api/v1/rate-limit/status/{identifier}: "key:NAME" or an address;
 * ?tier= for a key's tier (default: the default tier). Counts nothing.
 */
static int
h_rl_status(struct req *q)
{
	struct pw_rl_verdict	*v;
	char			**names;
	size_t			  n;
	const char		 *tier = query(q, "tier");
	cJSON			 *d = NULL, *a, *o;
	int			  r, down = 0;

	if (use_ctx(q) != 0)
		return 0;
	r = pw_rl_server_status(q->srv->rl, q->ctx->store, q->param, tier,
	    &names, &v, &n, &q->ctx->err);
	for (size_t i = 0; r == 0 && i < n; i++)
		down |= v[i].failed;
	if (r == 0 && !down) {
		d = cJSON_CreateObject();
		add_str(d, "identifier", q->param);
		a = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++) {
			o = cJSON_CreateObject();
			add_str(o, "scope", names[i]);
			if (v[i].limit == 0)
				cJSON_AddItemToObject(o, "limit",
				    cJSON_CreateNull());
			else {
				add_num(o, "limit", (double)v[i].limit);
				add_num(o, "remaining",
				    (double)v[i].remaining);
				add_num(o, "reset", (double)((v[i].reset_ms +
				    999) / 1000));
			}
			add_bool(o, "allowed", v[i].allowed);
			cJSON_AddItemToArray(a, o);
		}
		cJSON_AddItemToObject(d, "counters", a);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(v);
	if (r != 0)
		return fail_lib(q, r);
	/*
	 * A backend that cannot be reached has no counters to show: what
	 * fail_mode makes of a request is nobody's count.
	 */
	if (down)
		return fail(q, 503, "RATE_LIMIT_UNAVAILABLE", NULL, "the rate "
		    "limiter's backend (%s) cannot be reached: its counters "
		    "are unknown", pw_rl_server_backend(q->srv->rl));
	return reply(q, 200, d);
}

/* The limiter's lines of GET /metrics. */
static void
rl_prometheus(struct pw_server *s, struct pw_buf *b)
{
	struct pw_rl_stats	st;
	int64_t			cum = 0;

	pw_rl_server_stats(s->rl, &st);
	pw_buf_adds(b, "# HELP pw_ratelimit_requests_total Requests the rate "
	    "limiter checked, by tier.\n"
	    "# TYPE pw_ratelimit_requests_total counter\n");
	for (size_t i = 0; i < st.ntiers; i++)
		pw_buf_addf(b, "pw_ratelimit_requests_total{tier=\"%s\"} "
		    "%lld\n", st.tiers[i].name, (long long)st.tiers[i].checks);
	pw_buf_adds(b, "# HELP pw_ratelimit_throttled_total Requests refused "
	    "with 429, by tier.\n"
	    "# TYPE pw_ratelimit_throttled_total counter\n");
	for (size_t i = 0; i < st.ntiers; i++)
		pw_buf_addf(b, "pw_ratelimit_throttled_total{tier=\"%s\"} "
		    "%lld\n", st.tiers[i].name,
		    (long long)st.tiers[i].throttled);
	pw_buf_addf(b, "# HELP pw_ratelimit_backend_checks_total Checks that "
	    "went to the state file or Redis (not counted in a batch).\n"
	    "# TYPE pw_ratelimit_backend_checks_total counter\n"
	    "pw_ratelimit_backend_checks_total %lld\n",
	    (long long)st.backend_checks);
	pw_buf_adds(b, "# HELP pw_ratelimit_check_duration_seconds Time of "
	    "one rate-limit check.\n"
	    "# TYPE pw_ratelimit_check_duration_seconds histogram\n");
	for (int i = 0; i < PW_RL_HIST; i++) {
		cum += st.hist[i];
		pw_buf_addf(b, "pw_ratelimit_check_duration_seconds_bucket"
		    "{le=\"%g\"} %lld\n", pw_rl_hist_le[i], (long long)cum);
	}
	pw_buf_addf(b, "pw_ratelimit_check_duration_seconds_bucket"
	    "{le=\"+Inf\"} %lld\n"
	    "pw_ratelimit_check_duration_seconds_sum %.9f\n"
	    "pw_ratelimit_check_duration_seconds_count %lld\n",
	    (long long)st.checks, st.seconds, (long long)st.checks);
	pw_rl_stats_release(&st);
}

void
pw_serve_reload(struct pw_server *s)
{
	struct pw_err	err = { 0, "" };

	atomic_fetch_add(&s->hup, 1);
	if (pw_view_sync(s->view, 1, &err) != 0)
		pw_log(PW_LOG_WARN, "serve: %s", err.msg);
	pw_housekeep_reload(s->hk);
	/* The rate-limit file too; a bad one keeps what is in force. */
	if (pw_rl_server_reload(s->rl, &err) != 0)
		pw_log(PW_LOG_ERROR, "%s (the configuration in force is "
		    "kept)", err.msg);
}
