/*
 * api.c -- the REST server behind pw serve: libmicrohttpd with a pool of
 * threads, a router, the JSON envelope, and handlers that call the rest
 * of libpw (no SQL here).
 *
 * Threads: libmicrohttpd runs THREAD_POOL_SIZE workers, each polling its
 * own share of the connections and calling on_request. A worker opens its
 * own struct pw_ctx on the state file at its first request and keeps it
 * (thread-specific data) until the worker ends, when the key's destructor
 * closes it; no context is ever shared. Writes stay short transactions in
 * lib, so other pw processes on the same file are not held up.
 *
 * Selections and outcomes go through the server's view of the pool
 * (view.c): in memory, no lock held across a request, outcomes written
 * in batches by the flusher (housekeep.c). Each request first lets the
 * view check (at most every VIEW_CHECK_MS) whether another process
 * changed the file; a request that wrote to it makes the view reload
 * before its response goes, so the next request sees the change. A
 * worker reads its settings again when the view reloaded or SIGHUP came.
 *
 * Every request goes through the steps in `pipeline` (request id, body
 * limit, route, JSON body, handler); authentication and rate limiting
 * will be steps of their own, before the route's handler runs.
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

#include "httpd.h"
#include "net.h"

#define BODY_MAX_DEFAULT	((size_t)1 << 20)
/* The largest target response POST /api/v1/request holds. */
#define FETCH_BODY_MAX		((size_t)10 << 20)
#define PAGE_SIZE_MAX		500
#define PAGE_SIZE_DEFAULT	50
#define TIMEOUT_MAX		300
#define RID_MAX			128
/* How often at most the view asks the file what others changed. */
#define VIEW_CHECK_MS		5

/* What the server counts, for /api/v1/metrics and /metrics. */
#define RATE_WINDOW	60		/* seconds of requests per second */
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
	int64_t			 started_ms;
	atomic_long		 inflight;
	atomic_long		 requests;
	struct pw_view		*view;		/* the pool in memory */
	struct pw_housekeep	*hk;		/* flusher, pruning, health */
	atomic_uint		 hup;		/* SIGHUPs seen */
	pthread_mutex_t		 mu;		/* guards what follows */
	struct metrics		 m;
};

/* A worker's context, and the settings generation it has read. */
struct worker {
	struct pw_ctx	ctx;		/* first: ctx_free takes either */
	uint64_t	gen;
};

struct req;
typedef int handler_fn(struct req *);

struct route {
	const char	*method;
	const char	*path;		/* "{id}" matches one segment */
	handler_fn	*fn;
	int		 body;		/* takes a JSON object */
};

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
};

/* ------------------------------------------------------------- replies */

static int	send_body(struct req *, unsigned int, const char *, size_t,
		    const char *, const char *, const char *);

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

/*
 * Queue the response: the envelope around data and, when code is set,
 * the error code/message/details (data and details are taken). An error
 * may carry data too (an unhealthy health check). 204 has no body at
 * all, as HTTP wants.
 */
static int
reply_full(struct req *q, unsigned int status, cJSON *data, const char *code,
    const char *message, cJSON *details, const char *allow,
    const char *location)
{
	cJSON			*env, *meta, *err;
	char			*text = NULL, ts[40];
	size_t			 len = 0;
	int			 ok;

	q->replied = 1;
	q->status = status;
	if (status != 204) {
		env = cJSON_CreateObject();
		add_str(env, "status", code == NULL ? "success" : "error");
		cJSON_AddItemToObject(env, "data", data != NULL ? data :
		    cJSON_CreateNull());
		if (code != NULL) {
			err = cJSON_CreateObject();
			add_str(err, "code", code);
			add_str(err, "message", message);
			cJSON_AddItemToObject(err, "details", details != NULL ?
			    details : cJSON_CreateObject());
			cJSON_AddItemToObject(env, "error", err);
		} else {
			cJSON_AddItemToObject(env, "error", cJSON_CreateNull());
			if (details != NULL)
				cJSON_Delete(details);
		}
		meta = cJSON_CreateObject();
		iso_time_ms(pw_now_ms(), ts, sizeof ts);
		add_str(meta, "timestamp", ts);
		add_str(meta, "request_id", q->rid);
		add_str(meta, "version", PW_VERSION);
		cJSON_AddItemToObject(env, "meta", meta);
		text = cJSON_PrintUnformatted(env);
		cJSON_Delete(env);
		if (text == NULL) {
			q->send_failed = 1;
			return -1;
		}
		len = strlen(text);
	} else {
		cJSON_Delete(data);
		cJSON_Delete(details);
	}
	ok = send_body(q, status, text != NULL ? text : "", len, status !=
	    204 ? "application/json" : NULL, allow, location);
	cJSON_free(text);
	return ok;
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
	char	msg[600];
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
	char	msg[600];
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
		if (pw_open(&w->ctx, s->state, PW_OPEN_RW) != 0 ||
		    pw_store_no_mmap(w->ctx.store, &w->ctx.err) != 0) {
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
	pw_err_clear(&ctx->err);
	q->ctx = ctx;
	return 0;
}

/* ---------------------------------------------------------- JSON input */

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
	if (p->status != PW_UNHEALTHY && !cooling && !expired)
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
		    "healthy, degraded or unhealthy", v), -1;
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
	const char	*url, *country;
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

/* The {id} of the path; 404 sent when it is not one. */
static int
path_id(struct req *q, int64_t *id)
{
	if (pw_parse_int(q->param, 1, INT64_MAX, id) != 0) {
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

/*
 * The header fields of the last response in a block (redirects and 100
 * Continue come first), as an object; a repeated name is joined by ", ".
 */
static cJSON *
headers_json(const char *p, size_t n)
{
	cJSON		*o = cJSON_CreateObject();
	const char	*last = p, *e = p + n;
	struct pw_buf	 name, val;

	for (const char *s = p; s < e; s++)
		if ((s == p || s[-1] == '\n') && e - s > 5 &&
		    memcmp(s, "HTTP/", 5) == 0)
			last = s;
	pw_buf_init(&name);
	pw_buf_init(&val);
	for (const char *s = last; s < e;) {
		const char *eol = memchr(s, '\n', e - s), *colon, *v, *ve;
		cJSON *old;

		if (eol == NULL)
			eol = e;
		colon = memchr(s, ':', eol - s);
		if (colon != NULL && !(eol - s >= 5 &&
		    memcmp(s, "HTTP/", 5) == 0)) {
			v = colon + 1;
			ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			pw_buf_reset(&name);
			for (const char *c = s; c < colon; c++)
				pw_buf_addc(&name, (*c >= 'A' && *c <= 'Z') ?
				    *c + 32 : *c);
			old = cJSON_GetObjectItemCaseSensitive(o, name.data);
			/* JSON strings are UTF-8: other bytes become '?'. */
			if (!pw_utf8_text(v, ve - v)) {
				char *fix = pw_xstrndup(v, ve - v);
				for (char *c = fix; *c; c++)
					if ((unsigned char)*c >= 0x80)
						*c = '?';
				pw_buf_reset(&val);
				pw_buf_adds(&val, fix);
				free(fix);
				v = val.data;
				ve = v + val.len;
			}
			if (old != NULL && json_is(old, cJSON_String)) {
				char *j = pw_xasprintf("%s, %.*s",
				    old->valuestring, (int)(ve - v), v);
				/* cJSON frees with its own allocator. */
				cJSON_Delete(cJSON_DetachItemViaPointer(o,
				    old));
				cJSON_AddItemToObject(o, name.data,
				    cJSON_CreateString(j));
				free(j);
			} else {
				char *one = pw_xstrndup(v, ve - v);
				cJSON_AddItemToObject(o, name.data,
				    cJSON_CreateString(one));
				free(one);
			}
		}
		s = eol + 1;
	}
	pw_buf_release(&name);
	pw_buf_release(&val);
	return o;
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

static int
h_request(struct req *q)
{
	struct pw_fetch_opts	 o;
	struct pw_fetch_result	 res;
	struct sink		 sk;
	const char		*url, *method, *body, *v;
	const char		**hv = NULL;
	char			**hdrs = NULL, ccode[3];
	cJSON			*jh, *d, *it;
	size_t			 nh = 0;
	int64_t			 t0;
	int			 r, set;
	double			 timeout;

	if (use_ctx(q) != 0)
		return 0;
	memset(&o, 0, sizeof o);
	pw_filter_init(&o.pick.filter);
	if (body_str(q, "url", &url) != 0 ||
	    body_str(q, "method", &method) != 0 ||
	    body_str(q, "body", &body) != 0 ||
	    body_num(q, "timeout", 0.001, TIMEOUT_MAX, &set, &timeout) != 0 ||
	    body_str(q, "strategy", &o.pick.strategy) != 0 ||
	    body_str(q, "session", &o.pick.session) != 0 ||
	    body_str(q, "country", &v) != 0)
		return 0;
	if (url == NULL)
		return invalid(q, "url", "url: required");
	if (strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0)
		return invalid(q, "url", "url: '%.200s': want an http or https "
		    "URL", url);
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
			hdrs = pw_xrealloc(hdrs, (nh + 1) * sizeof *hdrs);
			hdrs[nh++] = pw_xasprintf("%s: %s", it->string,
			    it->valuestring);
		}
	}
	o.url = url;
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
	o.timeout_ms = set ? (int64_t)(timeout * 1000) :
	    pw_config_int(q->ctx, "fetch.timeout") * 1000;
	o.connect_timeout_ms = pw_config_int(q->ctx, "fetch.connect_timeout") *
	    1000;
	if (o.connect_timeout_ms > o.timeout_ms)
		o.connect_timeout_ms = o.timeout_ms;
	memset(&sk, 0, sizeof sk);
	pw_buf_init(&sk.hdrs);
	pw_buf_init(&sk.body);
	o.on_header = sink_header;
	o.on_body = sink_body;
	o.arg = &sk;
	t0 = pw_mono_ms();
	r = pw_fetch(q->ctx, &o, &res);
	if (r == 0) {
		d = cJSON_CreateObject();
		add_num(d, "status_code", res.status);
		cJSON_AddItemToObject(d, "headers", headers_json(sk.hdrs.data,
		    sk.hdrs.len));
		if (pw_utf8_text(sk.body.data, sk.body.len)) {
			add_str(d, "body", sk.body.data);
			add_str(d, "body_encoding", "utf-8");
		} else {
			char *b64 = base64((unsigned char *)sk.body.data,
			    sk.body.len);
			add_str(d, "body", b64);
			add_str(d, "body_encoding", "base64");
			free(b64);
		}
		add_str(d, "proxy_used", res.proxy);
		add_num(d, "proxy_id", (double)res.proxy_id);
		add_num(d, "attempts", (double)res.nattempts);
		add_num(d, "elapsed_ms", (double)(pw_mono_ms() - t0));
		r = reply(q, 200, d);
	} else {
		cJSON *det = cJSON_CreateObject(), *list = cJSON_CreateArray();
		const struct pw_attempt *last = res.nattempts > 0 ?
		    &res.attempts[res.nattempts - 1] : NULL;

		for (size_t i = 0; i < res.nattempts; i++) {
			cJSON *a = cJSON_CreateObject();
			add_str(a, "proxy", res.attempts[i].proxy);
			add_str(a, "error", res.attempts[i].error);
			add_num(a, "ms", res.attempts[i].ms);
			cJSON_AddItemToArray(list, a);
		}
		cJSON_AddItemToObject(det, "attempts", list);
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
			r = invalid(q, "url", "url: %s", q->ctx->err.msg);
		} else {
			cJSON_Delete(det);
			r = fail_lib(q, r);
		}
	}
	pw_fetch_result_release(&res);
	pw_buf_release(&sk.hdrs);
	pw_buf_release(&sk.body);
out:
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
		o = cJSON_CreateObject();
		add_str(o, "value", pw_config_get(ctx, k->name, &origin));
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
 * PUT /api/v1/config: {"key": value, ...}; a string, number or boolean
 * sets (checked as pw config set checks it), null unsets. Every key is
 * checked before any is stored. Later requests, on every thread, see it.
 */
static int
h_config_put(struct req *q)
{
	cJSON	*it;
	char	*canon, val[64];
	int	 r, n = 0;

	if (use_ctx(q) != 0)
		return 0;
	for (it = q->json->child; it != NULL; it = it->next, n++) {
		const char *v = val;

		if (json_is(it, cJSON_NULL))
			v = "";
		else if (json_is(it, cJSON_String))
			v = it->valuestring;
		else if (json_is(it, cJSON_Number))
			snprintf(val, sizeof val, "%.17g", it->valuedouble);
		else if (json_is(it, cJSON_True) || json_is(it, cJSON_False))
			snprintf(val, sizeof val, "%s", json_is(it,
			    cJSON_True) ? "true" : "false");
		else
			return invalid(q, it->string, "%s: want a string, "
			    "number, boolean or null, not %s", it->string,
			    type_name(it));
		canon = NULL;
		if (json_is(it, cJSON_NULL))
			r = pw_config_get(q->ctx, it->string, NULL) != NULL ?
			    0 : pw_config_check(it->string, "", &canon,
			    &q->ctx->err);
		else {
			r = pw_config_check(it->string, v, &canon,
			    &q->ctx->err);
			if (r == 0 && strcmp(it->string, "strategy") == 0)
				r = pw_pool_strategy_check(q->ctx, canon);
		}
		free(canon);
		if (r != 0)
			return invalid(q, it->string, "%s", q->ctx->err.msg);
	}
	if (n == 0)
		return invalid(q, "body", "body: no setting to change");
	for (it = q->json->child; it != NULL; it = it->next) {
		const char *v = val;

		if (json_is(it, cJSON_NULL)) {
			if ((r = pw_config_unstore(q->ctx, it->string)) != 0)
				return fail_lib(q, r);
			continue;
		}
		if (json_is(it, cJSON_String))
			v = it->valuestring;
		else if (json_is(it, cJSON_Number))
			snprintf(val, sizeof val, "%.17g", it->valuedouble);
		else
			snprintf(val, sizeof val, "%s", json_is(it,
			    cJSON_True) ? "true" : "false");
		if ((r = pw_config_store(q->ctx, it->string, v)) != 0)
			return fail_lib(q, r);
	}
	return reply(q, 200, config_json(q->ctx));
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
	r = send_body(q, 200, b.data, b.len,
	    "text/plain; version=0.0.4; charset=utf-8", NULL, NULL);
	pw_buf_release(&b);
	return r;
}

/* -------------------------------------------------------------- router */

static const struct route routes[] = {
	{ "GET", "/api/v1/health", h_health, 0 },
	{ "GET", "/api/v1/ready", h_ready, 0 },
	{ "GET", "/api/v1/status", h_status, 0 },
	{ "GET", "/api/v1/proxies", h_proxies_list, 0 },
	{ "POST", "/api/v1/proxies", h_proxies_add, 1 },
	{ "GET", "/api/v1/proxies/next", h_proxy_next, 0 },
	{ "GET", "/api/v1/proxies/{id}", h_proxy_get, 0 },
	{ "DELETE", "/api/v1/proxies/{id}", h_proxy_delete, 0 },
	{ "POST", "/api/v1/request", h_request, 1 },
	{ "GET", "/api/v1/config", h_config_get, 0 },
	{ "PUT", "/api/v1/config", h_config_put, 1 },
	{ "GET", "/api/v1/metrics", h_metrics, 0 },
	{ "GET", "/metrics", h_prometheus, 0 },
};
#define NROUTES (sizeof routes / sizeof routes[0])

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
		if (strcmp(routes[i].method, q->method) == 0) {
			q->route = &routes[i];
			memcpy(q->param, param, sizeof param);
			pw_buf_release(&allow);
			return 0;
		}
		pw_buf_addf(&allow, "%s%s", allow.len ? ", " : "",
		    routes[i].method);
	}
	reply_full(q, 405, NULL, "METHOD_NOT_ALLOWED", "method not allowed",
	    NULL, allow.data, NULL);
	pw_buf_release(&allow);
	return 1;
}

/* Authentication and rate limiting go here, before the handler. */

static int
step_json(struct req *q)
{
	if (!q->route->body)
		return 0;
	if (q->body.len == 0) {
		invalid(q, "body", "body: a JSON object is required");
		return 1;
	}
	q->json = cJSON_ParseWithLength(q->body.data, q->body.len);
	if (q->json == NULL) {
		fail(q, 400, "INVALID_JSON", NULL, "the request body is not "
		    "valid JSON");
		return 1;
	}
	if (!json_is(q->json, cJSON_Object)) {
		invalid(q, "body", "body: want a JSON object, not %s",
		    type_name(q->json));
		return 1;
	}
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
	step_body_limit,
	step_route,
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

static void
run(struct req *q)
{
	struct pw_ctx	*ctx = pthread_getspecific(q->srv->key);
	int64_t		 changes = ctx != NULL ?
			    pw_store_total_changes(ctx->store) : 0;

	for (size_t i = 0; i < sizeof pipeline / sizeof pipeline[0]; i++)
		if (pipeline[i](q) != 0 || q->replied)
			break;
	if (!q->replied)
		fail(q, 500, "INTERNAL_ERROR", NULL, "no response");
	after_write(q, ctx == q->ctx ? changes : 0);
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

	(void)c;
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
	if (s->log)
		pw_log(PW_LOG_INFO, "serve: %s %s %.200s %u %lldms%s",
		    q->rid[0] ? q->rid : "-", q->method, q->path, q->status,
		    (long long)ms,
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

/*
 * Parse "HOST:PORT" ("[::1]:8000" for IPv6) into an address; a host name
 * is looked up. PW_EUSAGE with the reason.
 */
static int
parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sl,
    struct pw_err *err)
{
	struct addrinfo	 hints, *ai = NULL;
	char		 host[256];
	const char	*colon, *h = spec;
	size_t		 hl;
	int64_t		 port;
	int		 e;

	if (*spec == '[') {
		const char *rb = strchr(spec, ']');
		if (rb == NULL || rb[1] != ':')
			goto bad;
		h = spec + 1;
		hl = rb - h;
		colon = rb + 1;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			goto bad;
		hl = colon - spec;
	}
	if (hl == 0 || hl >= sizeof host)
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (pw_parse_int(colon + 1, 1, 65535, &port) != 0)
		return pw_failf(err, PW_EUSAGE, "'%s': want a port from 1 to "
		    "65535", spec);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((e = getaddrinfo(host, colon + 1, &hints, &ai)) != 0)
		return pw_failf(err, PW_EUSAGE, "'%s': %s", spec,
		    gai_strerror(e));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sl = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
bad:
	return pw_failf(err, PW_EUSAGE, "'%s': want HOST:PORT (IPv6 as "
	    "[ADDR]:PORT)", spec);
}

static int
is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr)
		    >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			return a->s6_addr[12] == 127;
		return IN6_IS_ADDR_LOOPBACK(a);
	}
	return 0;
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

	if (spec == NULL)
		spec = pw_config_get(ctx, "serve.listen", NULL);
	if ((r = parse_listen(spec, &ss, &sl, &ctx->err)) != 0)
		return pw_err_prefix(&ctx->err, "--listen");
	if (!o->insecure && !is_loopback(&ss))
		return pw_failf(&ctx->err, PW_EUSAGE, "--listen: '%s' is not "
		    "a loopback address, and the API has no authentication "
		    "yet (add --insecure to serve it anyway)", spec);
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
	pthread_mutex_init(&s->mu, NULL);
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
	if ((r = pw_view_open(state, s->cfg, VIEW_CHECK_MS, &s->view,
	    &ctx->err)) != 0)
		goto fail;
	if (pthread_key_create(&s->key, ctx_free) != 0) {
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot create a thread key");
		goto fail;
	}
	/* epoll, and reads and writes tried before readiness is polled. */
	s->d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD |
	    MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_TURBO |
	    (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL,
	    on_request, s,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->fd,
	    MHD_OPTION_THREAD_POOL_SIZE, s->threads,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
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
		s->fd = -1;	/* closed by MHD */
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->fd >= 0)
		close(s->fd);
	pw_view_close(s->view);
	pthread_mutex_destroy(&s->mu);
	free(s->state);
	free(s);
	return r;
}

const char *
pw_serve_address(const struct pw_server *s)
{
	return s->addr;
}

void
pw_serve_stop(struct pw_server *s, int64_t grace_ms)
{
	MHD_socket	fd;
	int64_t		end;

	if (s == NULL)
		return;
	/* No new connections; the ones open finish what they started. */
	fd = MHD_quiesce_daemon(s->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
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
	pw_view_close(s->view);
	pthread_mutex_destroy(&s->mu);
	free(s->state);
	free(s);
}

void
pw_serve_reload(struct pw_server *s)
{
	struct pw_err	err;

	atomic_fetch_add(&s->hup, 1);
	if (pw_view_sync(s->view, 1, &err) != 0)
		pw_log(PW_LOG_WARN, "serve: %s", err.msg);
	pw_housekeep_reload(s->hk);
}
