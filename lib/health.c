/*
 * health.c -- concurrent health checks of the pool with libcurl's multi
 * interface, driven by epoll(7) through curl_multi_socket_action, so a
 * thousand checks in flight cost only the sockets that are ready.
 *
 * Each proxy is asked for a judge URL (or, in connect mode, only to open
 * the tunnel or SOCKS session). Results are queued and written in
 * batches: one short BEGIN IMMEDIATE ... COMMIT per BATCH_MAX results or
 * per FLUSH_MS, never one per proxy and never one for the whole run, so
 * other pw processes sharing the state file wait milliseconds at most.
 *
 * The judge's echo (--anonymity) is the one JSON document read here: the
 * grading needs the request headers the judge saw, apart from the other
 * fields of the echo (such as the address the request came from, which
 * is the proxy's and no leak).
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <unistd.h>


#include "httpd.h"
#include "net.h"

/* Results queued before they are written, and how long at most. */
#define BATCH_MAX	512
#define FLUSH_MS	100
/* The most of a judge's answer kept for --expect-body and grading. */
#define BODY_MAX	(64 * 1024)
/* Judges tried for one proxy when the judge, not the proxy, failed. */
#define JUDGE_TRIES	3

/* One check in flight. */
struct slot {
	CURL		*h;
	struct run	*run;
	struct pw_proxy	 p;
	char		*shown;		/* URL, credentials masked */
	size_t		 judge;
	int		 tries;
	int		 tunnel;
	int		 busy;
	struct pw_buf	 body;
	char		 errbuf[CURL_ERROR_SIZE];
};

/* One result waiting to be written. */
struct done {
	int64_t		 id;
	int		 ok;
	double		 ms;
	long		 http;
	size_t		 judge;
	char		*shown;
	char		*error;
	const char	*anon;
};

struct run {
	struct pw_ctx			*ctx;
	const struct pw_health_opts	*o;
	char				**judges;
	char				**shown;	/* judges, redacted */
	size_t				 njudges;
	regex_t				 re;
	int				 has_re;
	int				 capture;
	int64_t				 timeout_ms;
	double				 alpha;
	int64_t				 threshold;

	CURLM				*m;
	int				 ep;
	int64_t				 timer_at;	/* mono ms; -1 none */
	struct slot			*slots;
	size_t				 nslots;
	size_t				*free;
	size_t				 nfree;
	size_t				 seq;		/* checks started */

	struct done			*pend;
	size_t				 npend;
	double				*lat;
	size_t				 nlat, caplat;
	size_t				 done_n, ok_n;
	int64_t				 t0, last_flush, last_progress;
	int				 ungraded_warned;
	struct pw_health_summary	 sum;
};

void
pw_health_opts_init(struct pw_health_opts *o)
{
	memset(o, 0, sizeof *o);
}

/* --------------------------------------------------------------- select */

struct select_arg {
	int64_t	*ids;
	size_t	 n, cap;
	int64_t	 before;	/* checked before this, or never; 0: any */
};

static int
select_one(void *arg, const struct pw_proxy *p)
{
	struct select_arg	*sa = arg;

	if (sa->before > 0 && p->last_checked > 0 &&
	    p->last_checked > sa->before)
		return 0;
	if (sa->n == sa->cap) {
		sa->cap = sa->cap ? sa->cap * 2 : 256;
		sa->ids = pw_xrealloc(sa->ids, sa->cap * sizeof *sa->ids);
	}
	sa->ids[sa->n++] = p->id;
	return 0;
}

int
pw_health_select(struct pw_ctx *ctx, const struct pw_filter *f,
    int64_t older_than, int64_t **ids, size_t *n)
{
	struct select_arg	sa;
	struct pw_filter	all;
	int			r;

	memset(&sa, 0, sizeof sa);
	if (older_than > 0)
		sa.before = pw_now() - older_than;
	if (f == NULL) {
		pw_filter_init(&all);
		f = &all;
	}
	if ((r = pw_pool_each(ctx, f, 0, select_one, &sa)) != 0) {
		free(sa.ids);
		return r;
	}
	*ids = sa.ids;
	*n = sa.n;
	return 0;
}

/* ----------------------------------------------------------------- lock */

/*
 * Take the run lock: an flock on a file beside the state file. The
 * kernel drops it when the holder exits, even by SIGKILL, so there is no
 * stale lock to expire. The holder's pid is written in it for the
 * message of the next one.
 */
static int
lock_take(struct pw_ctx *ctx, int how, int *fdp)
{
	char	*path, pid[32];
	int	 fd, n;

	*fdp = -1;
	if (how == PW_HEALTH_LOCK_NONE)
		return 0;
	path = pw_xasprintf("%s.health.lock", pw_store_path(ctx->store));
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		pw_failf(&ctx->err, PW_ESTATE, "%s: cannot open: %s", path,
		    strerror(errno));
		free(path);
		return PW_ESTATE;
	}
	while (flock(fd, how == PW_HEALTH_LOCK_WAIT ? LOCK_EX :
	    LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK) {
			n = pread(fd, pid, sizeof pid - 1, 0);
			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			pw_failf(&ctx->err, PW_EBUSY, "another health check "
			    "is running on %s%s%s%s", pw_store_path(ctx->store),
			    pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		} else
			pw_failf(&ctx->err, PW_ESTATE, "%s: cannot lock: %s",
			    path, strerror(errno));
		close(fd);
		free(path);
		return ctx->err.code;
	}
	free(path);
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, n, 0) != n)
		pw_log(PW_LOG_DEBUG, "health: cannot write the lock's pid");
	*fdp = fd;
	return 0;
}

struct pw_health_lock {
	int	fd;
};

int
pw_health_lock(struct pw_ctx *ctx, int how, struct pw_health_lock **out)
{
	int	fd, r;

	if ((r = lock_take(ctx, how, &fd)) != 0)
		return r;
	*out = pw_xmalloc(sizeof **out);
	(*out)->fd = fd;
	return 0;
}

void
pw_health_unlock(struct pw_health_lock *l)
{
	if (l == NULL)
		return;
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

/* --------------------------------------------------------------- judges */

static int
judge_ok(struct pw_ctx *ctx, const char *u)
{
	char	*shown;

	if (strncasecmp(u, "http://", 7) == 0 && u[7] != '\0')
		return 0;
	if (strncasecmp(u, "https://", 8) == 0 && u[8] != '\0')
		return 0;
	shown = pw_redact_url(u);
	pw_failf(&ctx->err, PW_EUSAGE, "judge '%s': want an http:// or "
	    "https:// URL", shown);
	free(shown);
	return PW_EUSAGE;
}

static void
judges_free(struct run *run)
{
	for (size_t i = 0; i < run->njudges; i++) {
		free(run->judges[i]);
		free(run->shown[i]);
	}
	free(run->judges);
	free(run->shown);
	run->judges = NULL;
	run->shown = NULL;
	run->njudges = 0;
}

static void
judge_add(struct run *run, const char *u, size_t len)
{
	run->judges = pw_xrealloc(run->judges, (run->njudges + 1) *
	    sizeof *run->judges);
	run->shown = pw_xrealloc(run->shown, (run->njudges + 1) *
	    sizeof *run->shown);
	run->judges[run->njudges] = pw_xstrndup(u, len);
	/* A judge may need credentials: they are never shown. */
	run->shown[run->njudges] = pw_redact_url(run->judges[run->njudges]);
	run->njudges++;
}

/* The judges: the options', else health.urls, else health.url. */
static int
judges_load(struct run *run)
{
	const struct pw_health_opts	*o = run->o;
	const char			*v, *p;
	size_t				 len;

	if (o->nurls > 0) {
		for (size_t i = 0; i < o->nurls; i++)
			judge_add(run, o->urls[i], strlen(o->urls[i]));
	} else {
		v = pw_config_get(run->ctx, "health.urls", NULL);
		if (v == NULL || *v == '\0')
			v = pw_config_get(run->ctx, "health.url", NULL);
		for (p = v; p != NULL && *p != '\0'; p += len) {
			p += strspn(p, " \t,");
			if ((len = strcspn(p, " \t,")) > 0)
				judge_add(run, p, len);
		}
	}
	if (run->njudges == 0)
		return pw_failf(&run->ctx->err, PW_EUSAGE, "no judge URL (set "
		    "health.url or health.urls, or give --url)");
	for (size_t i = 0; i < run->njudges; i++)
		if (judge_ok(run->ctx, run->shown[i]) != 0)
			return PW_EUSAGE;
	return 0;
}

/* ------------------------------------------------------------ anonymity */

/* Headers whose purpose is to carry the client's address. */
static const char *const leak_headers[] = {
	"x-forwarded-for", "x-real-ip", "client-ip", "x-client-ip",
	"x-originating-ip", "forwarded-for", "true-client-ip",
	"x-cluster-client-ip", NULL
};

static int
is_leak_header(const char *name)
{
	for (int i = 0; leak_headers[i] != NULL; i++)
		if (strcasecmp(name, leak_headers[i]) == 0)
			return 1;
	return 0;
}

/* Headers a proxy adds to say a proxy was there. */
static int
is_proxy_header(const char *name)
{
	return strcasecmp(name, "via") == 0 ||
	    strcasecmp(name, "forwarded") == 0 ||
	    strncasecmp(name, "x-forwarded-", 12) == 0 ||
	    strncasecmp(name, "proxy-", 6) == 0 ||
	    strncasecmp(name, "x-proxy-", 8) == 0;
}

/* Does s contain addr as a whole token (not part of a longer address)? */
static int
has_addr(const char *s, const char *addr)
{
	size_t		 n = strlen(addr);
	const char	*p;

	if (n == 0)
		return 0;
	for (p = s; (p = strstr(p, addr)) != NULL; p++) {
		char before = p > s ? p[-1] : ' ', after = p[n];
		if (!strchr("0123456789abcdefABCDEF.:", before) &&
		    !strchr("0123456789abcdefABCDEF.:", after ? after : ' '))
			return 1;
	}
	return 0;
}

/*
 * Grade a proxy from the judge's echo of the request it received
 * ({"headers": {...}}): transparent when our address (the one the proxy
 * saw us connect from) or an address-carrying header reached the judge;
 * anonymous when a header announces a proxy; elite otherwise. NULL when
 * the answer is not such an echo.
 */
const char *
pw_health_grade(const char *body, size_t len, const char *local_ip)
{
	cJSON		*doc, *h, *e;
	int		 leak = 0, proxy = 0;
	const char	*g = NULL;

	if ((doc = cJSON_ParseWithLength(body, len)) == NULL)
		return NULL;
	h = cJSON_GetObjectItemCaseSensitive(doc, "headers");
	if (h != NULL && (h->type & 0xff) == cJSON_Object) {
		cJSON_ArrayForEach(e, h) {
			const char *v = (e->type & 0xff) == cJSON_String ?
			    e->valuestring : "";
			if (e->string == NULL ||
			    strcasecmp(e->string, "host") == 0)
				continue;
			if (is_leak_header(e->string))
				leak = 1;
			else if (is_proxy_header(e->string))
				proxy = 1;
			if (local_ip != NULL && has_addr(v, local_ip))
				leak = 1;
		}
		g = leak ? "transparent" : proxy ? "anonymous" : "elite";
	}
	cJSON_Delete(doc);
	return g;
}

/* ----------------------------------------------------------------- curl */

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct slot	*s = arg;

	(void)size;
	if (s->run->capture && s->body.len + n <= BODY_MAX)
		pw_buf_add(&s->body, p, n);
	return n;
}

static int
on_socket(CURL *h, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct run		*run = arg;
	struct epoll_event	 ev;

	(void)h;
	(void)sockp;
	if (what == CURL_POLL_REMOVE) {
		/* The socket may be closed already: nothing to undo then. */
		epoll_ctl(run->ep, EPOLL_CTL_DEL, fd, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof ev);
	ev.data.fd = fd;
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) |
	    (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (epoll_ctl(run->ep, EPOLL_CTL_MOD, fd, &ev) != 0 &&
	    errno == ENOENT)
		epoll_ctl(run->ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static int
on_timer(CURLM *m, long ms, void *arg)
{
	struct run	*run = arg;

	(void)m;
	run->timer_at = ms < 0 ? -1 : pw_mono_ms() + ms;
	return 0;
}

/* Set s->h up for one attempt at s's proxy with its current judge. */
static void
attempt_setup(struct slot *s)
{
	struct run			*run = s->run;
	const struct pw_health_opts	*o = run->o;
	const char			*judge = run->judges[s->judge];
	CURL				*h = s->h;
	int				 http_proxy;

	curl_easy_reset(h);
	pw_buf_reset(&s->body);
	s->errbuf[0] = '\0';
	http_proxy = s->p.addr.scheme == PW_HTTP ||
	    s->p.addr.scheme == PW_HTTPS;
	curl_easy_setopt(h, CURLOPT_URL, judge);
	curl_easy_setopt(h, CURLOPT_PRIVATE, s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	pw_curl_use_proxy(h, &s->p.addr);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)run->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)run->timeout_ms);
	/* Every check is its own connection, closed when it ends. */
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "pw/" PW_VERSION);
	curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	if (o->mode == PW_HEALTH_CONNECT) {
		curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
		if (http_proxy)
			curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
	}
	if (o->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(h, CURLOPT_PROXY_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_PROXY_SSL_VERIFYHOST, 0L);
	}
	if (o->cacert != NULL) {
		curl_easy_setopt(h, CURLOPT_CAINFO, o->cacert);
		curl_easy_setopt(h, CURLOPT_PROXY_CAINFO, o->cacert);
	}
	s->tunnel = !http_proxy || o->mode == PW_HEALTH_CONNECT ||
	    strncasecmp(judge, "https:", 6) == 0;
}

static void
slot_release(struct slot *s)
{
	pw_proxy_release(&s->p);
	free(s->shown);
	s->shown = NULL;
	pw_buf_reset(&s->body);
	s->busy = 0;
}

/* Start the check of id in a free slot; 1 when the proxy is gone. */
static int
start(struct run *run, int64_t id)
{
	struct slot	*s = &run->slots[run->free[run->nfree - 1]];
	int		 r;

	memset(&s->p, 0, sizeof s->p);
	if ((r = pw_pool_get(run->ctx, id, 1, &s->p)) == PW_ENOTFOUND) {
		pw_err_clear(&run->ctx->err);
		return 1;
	}
	if (r != 0)
		return r;
	run->nfree--;
	s->busy = 1;
	s->shown = pw_addr_format(&s->p.addr, PW_CREDS_MASK);
	s->judge = run->seq++ % run->njudges;
	s->tries = 1;
	attempt_setup(s);
	if (curl_multi_add_handle(run->m, s->h) != CURLM_OK) {
		slot_release(s);
		run->free[run->nfree++] = s - run->slots;
		return pw_failf(&run->ctx->err, PW_EFAIL, "cannot start a "
		    "check");
	}
	return 0;
}

/*
 * Did the judge fail rather than the proxy? Then another judge may
 * still vouch for the proxy. Timeouts and refused connections are the
 * proxy's: retrying those would only double the time of a dead pool.
 */
static int
judge_fault(CURL *h, CURLcode rc)
{
	long	cc = 0, pxerr = 0;

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		return 1;
	case CURLE_PROXY:
		curl_easy_getinfo(h, CURLINFO_PROXY_ERROR, &pxerr);
		return pxerr == CURLPX_REPLY_HOST_UNREACHABLE ||
		    pxerr == CURLPX_REPLY_NETWORK_UNREACHABLE ||
		    pxerr == CURLPX_REPLY_CONNECTION_REFUSED ||
		    pxerr == CURLPX_REPLY_TTL_EXPIRED ||
		    pxerr == CURLPX_RESOLVE_HOST;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &cc);
		return cc != 0 && cc != 200 && cc != 407;
	default:
		return 0;
	}
}

static void
queue(struct run *run, struct slot *s, int ok, double ms, long http,
    const char *why, const char *anon)
{
	struct done	*d = &run->pend[run->npend++];

	d->id = s->p.id;
	d->ok = ok;
	d->ms = ms;
	d->http = http;
	d->judge = s->judge;
	d->shown = s->shown;
	s->shown = NULL;
	/* libcurl's messages may quote a URL; never with a password. */
	d->error = why != NULL ? pw_redact_url(why) : NULL;
	d->anon = anon;
	run->done_n++;
	run->ok_n += ok != 0;
}

/* A transfer ended: judge it, then retry with another judge or queue. */
static void
finish(struct run *run, struct slot *s, CURLcode rc)
{
	const struct pw_health_opts	*o = run->o;
	char				 why[CURL_ERROR_SIZE + 64];
	const char			*anon = NULL;
	char				*ip = NULL;
	long				 http = 0;
	curl_off_t			 us = 0;
	int				 ok = 0, retry = 0;

	why[0] = '\0';
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &http);
	curl_easy_getinfo(s->h, CURLINFO_TOTAL_TIME_T, &us);
	if (rc != CURLE_OK) {
		snprintf(why, sizeof why, "%s", s->errbuf[0] ? s->errbuf :
		    pw_curl_strerror(rc, http));
		retry = judge_fault(s->h, rc);
	} else if (o->mode == PW_HEALTH_CONNECT)
		ok = 1;
	else if (http == 407 && !s->tunnel)
		snprintf(why, sizeof why, "proxy authentication failed "
		    "(HTTP 407)");
	else if (o->expect_status ? http != o->expect_status :
	    http / 100 != 2) {
		if (o->expect_status)
			snprintf(why, sizeof why, "HTTP %ld, want %ld", http,
			    o->expect_status);
		else
			snprintf(why, sizeof why, "HTTP %ld, want 2xx", http);
		retry = 1;
	} else if (run->has_re && regexec(&run->re, s->body.data, 0, NULL,
	    0) != 0) {
		snprintf(why, sizeof why, "body does not match the expected "
		    "pattern");
		retry = 1;
	} else
		ok = 1;
	curl_multi_remove_handle(run->m, s->h);

	if (!ok && retry && (size_t)s->tries < run->njudges &&
	    s->tries < JUDGE_TRIES) {
		pw_log(PW_LOG_DEBUG, "health: %s: %s: %s; trying another "
		    "judge", s->shown, run->shown[s->judge], why);
		s->tries++;
		s->judge = (s->judge + 1) % run->njudges;
		attempt_setup(s);
		if (curl_multi_add_handle(run->m, s->h) == CURLM_OK)
			return;
		snprintf(why, sizeof why, "cannot start a check");
	}
	if (ok && o->anonymity) {
		curl_easy_getinfo(s->h, CURLINFO_LOCAL_IP, &ip);
		anon = pw_health_grade(s->body.data, s->body.len, ip);
		if (anon == NULL && !run->ungraded_warned) {
			pw_log(PW_LOG_WARN, "health: %s does not echo the "
			    "request headers as JSON: anonymity not graded",
			    run->shown[s->judge]);
			run->ungraded_warned = 1;
		}
	}
	queue(run, s, ok, ok ? us / 1000.0 : -1, http, ok ? NULL : why, anon);
	slot_release(s);
	run->free[run->nfree++] = s - run->slots;
}

/* -------------------------------------------------------------- results */

static void
latency_add(struct run *run, double ms)
{
	if (run->nlat == run->caplat) {
		run->caplat = run->caplat ? run->caplat * 2 : 256;
		run->lat = pw_xrealloc(run->lat, run->caplat *
		    sizeof *run->lat);
	}
	run->lat[run->nlat++] = ms;
}

static void
pend_clear(struct run *run)
{
	for (size_t i = 0; i < run->npend; i++) {
		free(run->pend[i].shown);
		free(run->pend[i].error);
	}
	run->npend = 0;
}

/*
 * Write the queued results in one transaction (and, at the end, the time
 * of the run), then hand them to on_result.
 */
static int
flush(struct run *run)
{
	struct pw_ctx	*ctx = run->ctx;
	int		 status[BATCH_MAX], evicted[BATCH_MAX], r;
	int64_t		 consec[BATCH_MAX], now = pw_now(), nevict = 0;

	run->last_flush = pw_mono_ms();
	if (run->npend == 0)
		return 0;
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	for (size_t i = 0; i < run->npend; i++) {
		struct done *d = &run->pend[i];

		evicted[i] = 0;
		r = pw_store_health_record(ctx->store, d->id, d->ok, d->ms,
		    run->alpha, run->threshold, d->anon, now, &status[i],
		    &consec[i], &ctx->err);
		if (r == PW_ENOTFOUND) {
			status[i] = -1;
			continue;
		}
		if (r != 0)
			goto fail;
		if (run->o->evict && status[i] == PW_UNHEALTHY) {
			if ((r = pw_store_proxy_delete(ctx->store, d->id,
			    &ctx->err)) != 0)
				goto fail;
			evicted[i] = 1;
			nevict++;
		}
	}
	if (nevict > 0 && (r = pw_store_stat_add(ctx->store,
	    pw_evict_stat(PW_EVICT_HEALTH), nevict, &ctx->err)) != 0)
		goto fail;
	if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0)
		goto out;

	for (size_t i = 0; i < run->npend; i++) {
		struct done		*d = &run->pend[i];
		struct pw_health_result	 res;

		if (status[i] < 0) {
			run->sum.gone++;
			continue;
		}
		run->sum.checked++;
		run->sum.healthy += status[i] == PW_HEALTHY;
		run->sum.degraded += status[i] == PW_DEGRADED;
		run->sum.unhealthy += status[i] == PW_UNHEALTHY;
		run->sum.evicted += evicted[i];
		if (d->ok)
			latency_add(run, d->ms);
		if (run->o->on_result == NULL)
			continue;
		memset(&res, 0, sizeof res);
		res.id = d->id;
		res.proxy = d->shown;
		res.ok = d->ok;
		res.status = status[i];
		res.consec_fail = consec[i];
		res.latency_ms = d->ms;
		res.http_status = d->http;
		res.judge = run->shown[d->judge];
		res.anonymity = d->anon;
		res.error = d->error;
		res.evicted = evicted[i];
		if (run->o->on_result(run->o->arg, &res) != 0) {
			r = pw_failf(&ctx->err, PW_EFAIL, "cannot write "
			    "output");
			goto out;
		}
	}
	goto out;
fail:
	pw_store_rollback(ctx->store);
out:
	pend_clear(run);
	return r;
}

/* When the last run ended and what it found, for pw cache stats. */
static int
record_run(struct run *run)
{
	struct pw_ctx	*ctx = run->ctx;
	int		 r;

	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	if ((r = pw_store_meta_put(ctx->store, "last_health", pw_now(),
	    &ctx->err)) != 0 || (r = pw_store_meta_put(ctx->store,
	    "health.last_checked", (int64_t)run->sum.checked,
	    &ctx->err)) != 0 || (r = pw_store_meta_put(ctx->store,
	    "health.last_healthy", (int64_t)run->sum.healthy,
	    &ctx->err)) != 0) {
		pw_store_rollback(ctx->store);
		return r;
	}
	return pw_store_commit(ctx->store, &ctx->err);
}

static void
progress(struct run *run, int force)
{
	struct pw_health_progress	p;
	int64_t				now = pw_mono_ms();

	if (run->o->on_progress == NULL ||
	    (!force && now - run->last_progress < FLUSH_MS))
		return;
	run->last_progress = now;
	p.done = run->done_n + run->sum.gone;
	p.total = run->sum.total;
	p.healthy = run->ok_n;
	p.elapsed_s = (now - run->t0) / 1000.0;
	run->o->on_progress(run->o->arg, &p);
}

static int
cmp_double(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The p-th percentile by nearest rank; -1 when there is no data. */
static double
percentile(const double *v, size_t n, double p)
{
	size_t	k;

	if (n == 0)
		return -1;
	k = (size_t)(p / 100 * n + 0.999999);
	return v[k == 0 ? 0 : k > n ? n - 1 : k - 1];
}

/* ------------------------------------------------------------------ run */

/* Take what libcurl finished. */
static void
reap(struct run *run)
{
	CURLMsg	*msg;
	int	 left;

	while ((msg = curl_multi_info_read(run->m, &left)) != NULL) {
		struct slot *s = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &s);
		finish(run, s, msg->data.result);
		if (run->npend == BATCH_MAX)
			return;
	}
}

static int
loop(struct run *run, const int64_t *ids, size_t n)
{
	struct epoll_event	 evs[256];
	size_t			 next = 0, active;
	int64_t			 now, wait;
	int			 running, nev, r;

	for (;;) {
		while (run->nfree > 0 && next < n) {
			if ((r = start(run, ids[next++])) == 1)
				run->sum.gone++;
			else if (r != 0)
				return r;
		}
		active = run->nslots - run->nfree;
		if (active == 0 && next >= n)
			break;
		now = pw_mono_ms();
		wait = FLUSH_MS;
		if (run->timer_at >= 0 && run->timer_at - now < wait)
			wait = run->timer_at > now ? run->timer_at - now : 0;
		nev = active > 0 ? epoll_wait(run->ep, evs, 256, (int)wait) : 0;
		if (nev < 0 && errno != EINTR)
			return pw_failf(&run->ctx->err, PW_EFAIL, "epoll: %s",
			    strerror(errno));
		for (int i = 0; i < nev; i++) {
			int f = 0;
			if (evs[i].events & EPOLLIN)
				f |= CURL_CSELECT_IN;
			if (evs[i].events & EPOLLOUT)
				f |= CURL_CSELECT_OUT;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				f |= CURL_CSELECT_ERR;
			curl_multi_socket_action(run->m, evs[i].data.fd, f,
			    &running);
		}
		if (run->timer_at >= 0 && pw_mono_ms() >= run->timer_at) {
			run->timer_at = -1;
			curl_multi_socket_action(run->m, CURL_SOCKET_TIMEOUT, 0,
			    &running);
		}
		reap(run);
		if (run->npend >= BATCH_MAX || (run->npend > 0 &&
		    pw_mono_ms() - run->last_flush >= FLUSH_MS)) {
			if ((r = flush(run)) != 0)
				return r;
			reap(run);
		}
		progress(run, 0);
	}
	return 0;
}

static void
run_release(struct run *run)
{
	for (size_t i = 0; i < run->nslots; i++) {
		struct slot *s = &run->slots[i];
		if (s->busy) {
			curl_multi_remove_handle(run->m, s->h);
			slot_release(s);
		}
		if (s->h != NULL)
			curl_easy_cleanup(s->h);
		pw_buf_release(&s->body);
	}
	free(run->slots);
	free(run->free);
	pend_clear(run);
	free(run->pend);
	free(run->lat);
	if (run->m != NULL)
		curl_multi_cleanup(run->m);
	if (run->ep >= 0)
		close(run->ep);
	if (run->has_re)
		regfree(&run->re);
	judges_free(run);
}

int
pw_health_check_opts(struct pw_ctx *ctx, const struct pw_health_opts *o)
{
	struct run	run;
	regex_t		re;
	char		msg[256];
	int		r;

	memset(&run, 0, sizeof run);
	run.ctx = ctx;
	run.o = o;
	r = judges_load(&run);
	judges_free(&run);
	if (r != 0)
		return r;
	if (o->expect_body != NULL) {
		if ((r = regcomp(&re, o->expect_body, REG_EXTENDED |
		    REG_NOSUB)) != 0) {
			regerror(r, &re, msg, sizeof msg);
			return pw_failf(&ctx->err, PW_EUSAGE, "expected body "
			    "'%s': %s", o->expect_body, msg);
		}
		regfree(&re);
	}
	if (o->expect_status != 0 && (o->expect_status < 100 ||
	    o->expect_status > 599))
		return pw_failf(&ctx->err, PW_EUSAGE, "expected status %ld: "
		    "want 100 to 599", o->expect_status);
	return 0;
}

int
pw_health_run(struct pw_ctx *ctx, const struct pw_health_opts *o,
    const int64_t *ids, size_t n, struct pw_health_summary *sum)
{
	struct run	run;
	char		msg[256];
	int		r, lockfd = -1, conc;

	memset(&run, 0, sizeof run);
	run.ctx = ctx;
	run.o = o;
	run.ep = -1;
	run.timer_at = -1;
	if ((r = judges_load(&run)) != 0)
		goto out;
	if (o->expect_body != NULL) {
		if ((r = regcomp(&run.re, o->expect_body, REG_EXTENDED |
		    REG_NOSUB)) != 0) {
			regerror(r, &run.re, msg, sizeof msg);
			r = pw_failf(&ctx->err, PW_EUSAGE, "expected body "
			    "'%s': %s", o->expect_body, msg);
			goto out;
		}
		run.has_re = 1;
	}
	if (o->expect_status != 0 && (o->expect_status < 100 ||
	    o->expect_status > 599)) {
		r = pw_failf(&ctx->err, PW_EUSAGE, "expected status %ld: want "
		    "100 to 599", o->expect_status);
		goto out;
	}
	if ((r = pw_net_init(&ctx->err)) != 0 ||
	    (o->anonymity && (r = pw_cjson_init(&ctx->err)) != 0))
		goto out;
	run.capture = run.has_re || o->anonymity;
	conc = o->concurrency > 0 ? o->concurrency :
	    (int)pw_config_int(ctx, "health.concurrency");
	run.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms :
	    pw_config_int(ctx, "health.timeout") * 1000;
	run.alpha = pw_config_double(ctx, "strategy.alpha");
	run.threshold = pw_config_int(ctx, "health.failure_threshold");
	if ((r = lock_take(ctx, o->lock, &lockfd)) != 0)
		goto out;

	run.t0 = run.last_flush = pw_mono_ms();
	run.sum.total = n;
	run.nslots = (size_t)conc < n ? (size_t)conc : n;
	run.slots = pw_xcalloc(run.nslots ? run.nslots : 1,
	    sizeof *run.slots);
	run.free = pw_xcalloc(run.nslots ? run.nslots : 1, sizeof *run.free);
	run.pend = pw_xcalloc(BATCH_MAX, sizeof *run.pend);
	for (size_t i = 0; i < run.nslots; i++) {
		run.slots[i].run = &run;
		pw_buf_init(&run.slots[i].body);
		if ((run.slots[i].h = curl_easy_init()) == NULL) {
			r = pw_failf(&ctx->err, PW_EFAIL, "cannot start "
			    "libcurl");
			goto out;
		}
		run.free[run.nfree++] = run.nslots - 1 - i;
	}
	if ((run.m = curl_multi_init()) == NULL ||
	    (run.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot start libcurl");
		goto out;
	}
	curl_multi_setopt(run.m, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(run.m, CURLMOPT_SOCKETDATA, &run);
	curl_multi_setopt(run.m, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(run.m, CURLMOPT_TIMERDATA, &run);
	curl_multi_setopt(run.m, CURLMOPT_MAXCONNECTS, 1L);

	if ((r = loop(&run, ids, n)) != 0)
		goto out;
	if ((r = flush(&run)) != 0 || (r = record_run(&run)) != 0)
		goto out;
	progress(&run, 1);
	if (run.nlat > 0)
		qsort(run.lat, run.nlat, sizeof *run.lat, cmp_double);
	run.sum.p50_ms = percentile(run.lat, run.nlat, 50);
	run.sum.p95_ms = percentile(run.lat, run.nlat, 95);
	run.sum.elapsed_s = (pw_mono_ms() - run.t0) / 1000.0;
	*sum = run.sum;
out:
	run_release(&run);
	if (lockfd >= 0)
		close(lockfd);
	return r;
}
