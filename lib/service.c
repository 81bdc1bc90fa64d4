/*
 * service.c -- delegating proxy selection to a remote pw serve: the
 * endpoints in order, each behind a circuit breaker kept in the state file,
 * bounded retries with exponential backoff and full jitter, a cache of the
 * service's answers, a fallback to the local pool within a second of the
 * call starting, and an outbox of outcomes sent in batches.
 *
 * A plain http:// endpoint is spoken to over a socket of our own: loading
 * libcurl costs more than the whole call on loopback. https:// and mtls go
 * through libcurl.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"
#include "net.h"

/* The service path gives up this long after the call started. */
#define BUDGET_MS	800
/* The largest answer read from a service. */
#define REPLY_MAX	(64 << 10)
/* Outcomes per feedback request. */
#define BATCH_MAX	200
#define BACKOFF_BASE_MS	25
#define BACKOFF_CAP_MS	200
/* The proxies the service handed out that pw pool report knows. */
#define HANDOUTS_MAX	4096

const char *
pw_path_name(int path)
{
	static const char *const names[] = { "local", "service", "cache",
	    "fallback" };

	return path >= 0 && path <= PW_PATH_FALLBACK ? names[path] : "?";
}

int
pw_service_enabled(struct pw_ctx *ctx)
{
	const char	*v = pw_config_get(ctx, "service.endpoints", NULL);

	return v != NULL && v[strspn(v, " \t,")] != '\0' &&
	    pw_config_int(ctx, "service.enabled");
}

int
pw_service_delegable(struct pw_ctx *ctx, const struct pw_pick *pk)
{
	const struct pw_filter	*f = &pk->filter;

	return pw_service_enabled(ctx) && pk->strategy == NULL &&
	    pk->plugin == NULL && pk->session == NULL && f->status < 0 &&
	    f->scheme < 0 && f->source == NULL && f->country == NULL &&
	    f->anonymity == NULL && f->max_latency_ms <= 0 && !f->unmeasured;
}

/* ---------------------------------------------------------------- HTTP */

struct reply {
	long		status;		/* 0: no answer */
	struct pw_buf	body;
	char		why[200];	/* when status is 0 */
};

/* "http://host:port/prefix" -> host, port, prefix (no trailing '/'). */
static int
split_url(const char *url, char *host, size_t hn, char *port, size_t pn,
    const char **prefix)
{
	const char	*h = url + 7, *e, *p;
	size_t		 n;

	e = h + strcspn(h, "/?#");
	*prefix = e;
	if (*h == '[') {
		if ((p = memchr(h, ']', e - h)) == NULL)
			return -1;
		n = p - h - 1;
		if (n == 0 || n >= hn)
			return -1;
		memcpy(host, h + 1, n);
		host[n] = '\0';
		p++;
	} else {
		p = memchr(h, ':', e - h);
		n = (p != NULL ? p : e) - h;
		if (n == 0 || n >= hn)
			return -1;
		memcpy(host, h, n);
		host[n] = '\0';
		if (p == NULL)
			p = e;
	}
	if (p < e && *p == ':') {
		n = e - p - 1;
		if (n == 0 || n >= pn)
			return -1;
		memcpy(port, p + 1, n);
		port[n] = '\0';
	} else
		snprintf(port, pn, "80");
	return 0;
}

static int
wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd	pfd = { fd, ev, 0 };
	int64_t		left;
	int		r;

	for (;;) {
		if ((left = deadline - pw_mono_ms()) <= 0)
			return 0;
		r = poll(&pfd, 1, (int)left);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

static void
auth_header(struct pw_ctx *ctx, struct pw_buf *b)
{
	const char	*auth = pw_config_get(ctx, "service.auth", NULL);
	const char	*key = pw_config_get(ctx, "service.key", NULL);

	if (strcmp(auth, "api-key") == 0)
		pw_buf_addf(b, "X-API-Key: %s\r\n", key);
	else if (strcmp(auth, "bearer") == 0)
		pw_buf_addf(b, "Authorization: Bearer %s\r\n", key);
}

/* Content-Length of a header block, or -1. */
static long
content_length(const char *h, size_t n)
{
	static const char	name[] = "\r\ncontent-length:";
	size_t			k = sizeof name - 1;

	for (size_t i = 0; i + k < n; i++)
		if (strncasecmp(h + i, name, k) == 0)
			return strtol(h + i + k, NULL, 10);
	return -1;
}

int
pw_service_answer_parse(const char *in, size_t n, int eof, long *status,
    size_t *body_off, size_t *body_len)
{
	const char	*hend = n ? memmem(in, n, "\r\n\r\n", 4) : NULL;
	size_t		 off, rest;
	long		 clen, st = 0;

	if (hend == NULL)
		return eof || n > REPLY_MAX ? -1 : 0;
	/* "HTTP/1.x NNN": three digits, then a space or the line's end. */
	if (n < 16 || strncmp(in, "HTTP/1.", 7) != 0 || in[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++) {
		if (in[i] < '0' || in[i] > '9')
			return -1;
		st = st * 10 + (in[i] - '0');
	}
	if (st < 100 || (in[12] != ' ' && in[12] != '\r'))
		return -1;
	off = hend + 4 - in;
	rest = n - off;
	clen = content_length(in, hend - in + 2);
	if (clen >= 0 && rest < (size_t)clen && !eof)
		return 0;
	if (clen < 0 && !eof)
		return 0;
	*status = st;
	*body_off = off;
	*body_len = clen >= 0 && (size_t)clen < rest ? (size_t)clen : rest;
	return 1;
}

/* POST body to url over a socket of our own (plain http). */
static void
post_plain(struct pw_ctx *ctx, const char *url, const char *path,
    const char *body, int64_t deadline, struct reply *rp)
{
	struct addrinfo	 hints, *ai = NULL;
	struct pw_buf	 req, in;
	const char	*prefix;
	char		 host[256], port[16], buf[8192];
	int		 fd = -1, soerr = 0, k = 0;
	socklen_t	 sl = sizeof soerr;
	size_t		 off = 0, plen, boff = 0, blen = 0;
	ssize_t		 n;

	pw_buf_init(&req);
	pw_buf_init(&in);
	if (split_url(url, host, sizeof host, port, sizeof port,
	    &prefix) != 0) {
		snprintf(rp->why, sizeof rp->why, "not a usable URL");
		goto done;
	}
	plen = strcspn(prefix, "?#");
	while (plen > 0 && prefix[plen - 1] == '/')
		plen--;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL) {
		snprintf(rp->why, sizeof rp->why, "cannot resolve %.100s",
		    host);
		goto done;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0 || (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
	    errno != EINPROGRESS)) {
		snprintf(rp->why, sizeof rp->why, "connect: %s",
		    strerror(errno));
		goto done;
	}
	if (wait_fd(fd, POLLOUT, deadline) <= 0) {
		snprintf(rp->why, sizeof rp->why, "timed out connecting");
		goto done;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
	    soerr != 0) {
		snprintf(rp->why, sizeof rp->why, "connect: %s",
		    strerror(soerr ? soerr : errno));
		goto done;
	}
	/* An IPv6 address in brackets, as in the URL (RFC 9110 Host). */
	pw_buf_addf(&req, strchr(host, ':') != NULL ?
	    "POST %.*s%s HTTP/1.1\r\nHost: [%s]:%s\r\n" :
	    "POST %.*s%s HTTP/1.1\r\nHost: %s:%s\r\n", (int)plen, prefix,
	    path, host, port);
	pw_buf_addf(&req, "User-Agent: pw/%s\r\nAccept: application/json\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n", PW_VERSION, strlen(body));
	auth_header(ctx, &req);
	pw_buf_adds(&req, "\r\n");
	pw_buf_adds(&req, body);
	while (off < req.len) {
		if (wait_fd(fd, POLLOUT, deadline) <= 0) {
			snprintf(rp->why, sizeof rp->why, "timed out sending");
			goto done;
		}
		n = send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(rp->why, sizeof rp->why, "send: %s",
			    strerror(errno));
			goto done;
		}
		if (n > 0)
			off += n;
	}
	for (;;) {
		if ((k = pw_service_answer_parse(in.data, in.len, 0,
		    &rp->status, &boff, &blen)) != 0)
			break;
		if (wait_fd(fd, POLLIN, deadline) <= 0) {
			snprintf(rp->why, sizeof rp->why, "timed out waiting "
			    "for the answer");
			goto done;
		}
		n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			snprintf(rp->why, sizeof rp->why, "recv: %s",
			    strerror(errno));
			goto done;
		}
		if (n == 0) {
			k = pw_service_answer_parse(in.data, in.len, 1,
			    &rp->status, &boff, &blen);
			break;
		}
		if (in.len + n > REPLY_MAX) {
			snprintf(rp->why, sizeof rp->why, "answer too large");
			goto done;
		}
		pw_buf_add(&in, buf, n);
	}
	if (k < 0) {
		rp->status = 0;
		snprintf(rp->why, sizeof rp->why, "not an HTTP answer");
		goto done;
	}
	pw_buf_add(&rp->body, in.data + boff, blen);
done:
	if (fd >= 0)
		close(fd);
	if (ai != NULL)
		freeaddrinfo(ai);
	pw_buf_release(&req);
	pw_buf_release(&in);
}

static size_t
curl_sink(char *p, size_t size, size_t n, void *arg)
{
	struct pw_buf	*b = arg;

	(void)size;
	if (b->len + n > REPLY_MAX)
		return 0;
	pw_buf_add(b, p, n);
	return n;
}

/* POST through libcurl: https, mtls. */
static void
post_curl(struct pw_ctx *ctx, const char *url, const char *path,
    const char *body, int64_t deadline, struct reply *rp)
{
	struct curl_slist	*hl = NULL;
	struct pw_buf		 u, h;
	struct pw_err		 err;
	const char		*v;
	CURL			*c;
	CURLcode		 rc;
	size_t			 n = strlen(url);

	if (pw_net_init(&err) != 0) {
		snprintf(rp->why, sizeof rp->why, "%.190s", err.msg);
		return;
	}
	if ((c = curl_easy_init()) == NULL) {
		snprintf(rp->why, sizeof rp->why, "cannot start libcurl");
		return;
	}
	pw_buf_init(&u);
	pw_buf_init(&h);
	while (n > 0 && url[n - 1] == '/')
		n--;
	pw_buf_add(&u, url, n);
	pw_buf_adds(&u, path);
	auth_header(ctx, &h);
	if (h.len > 2) {
		h.data[h.len - 2] = '\0';
		hl = curl_slist_append(hl, h.data);
	}
	hl = curl_slist_append(hl, "Content-Type: application/json");
	hl = curl_slist_append(hl, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_URL, u.data);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "pw/" PW_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &rp->body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(deadline -
	    pw_mono_ms() > 1 ? deadline - pw_mono_ms() : 1));
	if (strcmp(pw_config_get(ctx, "service.auth", NULL), "mtls") == 0) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, pw_config_get(ctx,
		    "service.cert", NULL));
		if (*(v = pw_config_get(ctx, "service.cert_key", NULL)))
			curl_easy_setopt(c, CURLOPT_SSLKEY, v);
	}
	if (*(v = pw_config_get(ctx, "service.ca", NULL)))
		curl_easy_setopt(c, CURLOPT_CAINFO, v);
	if ((rc = curl_easy_perform(c)) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rp->status);
	else
		snprintf(rp->why, sizeof rp->why, "%s", curl_easy_strerror(rc));
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	pw_buf_release(&u);
	pw_buf_release(&h);
}

static void
post(struct pw_ctx *ctx, const char *url, const char *path,
    const char *body, int64_t deadline, struct reply *rp)
{
	rp->status = 0;
	rp->why[0] = '\0';
	pw_buf_reset(&rp->body);
	if (strncasecmp(url, "http://", 7) == 0 &&
	    strcmp(pw_config_get(ctx, "service.auth", NULL), "mtls") != 0)
		post_plain(ctx, url, path, body, deadline, rp);
	else
		post_curl(ctx, url, path, body, deadline, rp);
}

/* ------------------------------------------------------------- breaker */

static void
count(struct pw_ctx *ctx, const char *name, int64_t n)
{
	/* Counters are best effort: never worth failing a selection. */
	if (n != 0)
		(void)pw_store_stat_add(ctx->store, name, n, &ctx->err);
}

/* Outside a transaction: one short one of its own; errors are logged. */
static void
count_now(struct pw_ctx *ctx, const char *name, int64_t n)
{
	struct pw_err	e;

	if (pw_store_begin(ctx->store, &e) != 0) {
		pw_log(PW_LOG_DEBUG, "%s", e.msg);
		return;
	}
	if (pw_store_stat_add(ctx->store, name, n, &e) != 0 ||
	    pw_store_commit(ctx->store, &e) != 0) {
		pw_store_rollback(ctx->store);
		pw_log(PW_LOG_DEBUG, "%s", e.msg);
	}
}

/*
 * May ep be called now? 1 yes, 0 no (its breaker is open); *trial says
 * the call is a half-open breaker's one trial.
 */
static int
breaker_allows(struct pw_ctx *ctx, const char *ep, int *trial)
{
	struct pw_breaker	b;
	struct pw_err		e;
	int64_t			now = pw_now_ms(), wait;
	int			won = 0;

	*trial = 0;
	if (pw_store_breaker_get(ctx->store, ep, &b, &e) != 0) {
		pw_log(PW_LOG_DEBUG, "%s", e.msg);
		return 1;
	}
	if (b.state == PW_BREAKER_CLOSED)
		return 1;
	wait = pw_config_int(ctx, "service.breaker_timeout") * 1000;
	if (now - b.since_ms < wait)
		return 0;
	if (pw_store_begin(ctx->store, &e) != 0)
		return 0;
	if (pw_store_breaker_claim(ctx->store, ep, now - wait, now, &won,
	    &e) != 0 || (won && b.state == PW_BREAKER_OPEN &&
	    pw_store_stat_add(ctx->store, "service.breaker.half_opened", 1,
	    &e) != 0) || pw_store_commit(ctx->store, &e) != 0) {
		pw_store_rollback(ctx->store);
		return 0;
	}
	if (won)
		pw_log(PW_LOG_INFO, "service %s: breaker half-open: one trial "
		    "call", ep);
	*trial = won;
	return won;
}

/* Inside a transaction: how the call to ep went, for its breaker. */
static int
breaker_record(struct pw_ctx *ctx, const char *ep, int ok, int trial)
{
	struct pw_breaker	b;
	int			r, was;

	if ((r = pw_store_breaker_get(ctx->store, ep, &b, &ctx->err)) != 0)
		return r;
	was = b.state;
	if (ok) {
		if (was == PW_BREAKER_CLOSED && b.failures == 0)
			return 0;
		b.state = PW_BREAKER_CLOSED;
		b.failures = 0;
		b.since_ms = pw_now_ms();
		if (was != PW_BREAKER_CLOSED) {
			count(ctx, "service.breaker.closed", 1);
			pw_log(PW_LOG_INFO, "service %s: breaker closed", ep);
		}
	} else {
		b.failures++;
		if (trial || (was == PW_BREAKER_CLOSED && b.failures >=
		    pw_config_int(ctx, "service.breaker_threshold"))) {
			b.state = PW_BREAKER_OPEN;
			b.since_ms = pw_now_ms();
			count(ctx, "service.breaker.opened", 1);
			pw_log(PW_LOG_INFO, "service %s: breaker open after "
			    "%lld failed calls", ep, (long long)b.failures);
		}
	}
	return pw_store_breaker_put(ctx->store, ep, &b, &ctx->err);
}

/* ---------------------------------------------------------------- calls */

/* What one endpoint's call came to. */
enum { CALL_OK, CALL_RETRY, CALL_FAIL, CALL_AUTH };

static int
classify(const struct reply *rp)
{
	if (rp->status >= 200 && rp->status < 300)
		return CALL_OK;
	if (rp->status == 401 || rp->status == 403)
		return CALL_AUTH;
	if (rp->status == 0 || rp->status >= 500 || rp->status == 429 ||
	    rp->status == 408)
		return CALL_RETRY;
	return CALL_FAIL;
}

/* The envelope's error message, or the status. */
static void
reply_why(const struct reply *rp, char *why, size_t n)
{
	if (rp->status == 0) {
		snprintf(why, n, "%s", rp->why);
		return;
	}
	pw_service_reply_why(rp->status, rp->body.data, rp->body.len, why, n);
}

/* Sleep for a full-jitter backoff before retry number i, within deadline. */
static void
backoff(struct pw_ctx *ctx, int i, int64_t deadline)
{
	int64_t		cap = BACKOFF_BASE_MS << (i < 8 ? i : 8), ms, left;
	struct timespec	ts;

	if (cap > BACKOFF_CAP_MS)
		cap = BACKOFF_CAP_MS;
	if (!ctx->rng_seeded) {
		pw_rng_seed(&ctx->rng, 0);
		ctx->rng_seeded = 1;
	}
	ms = (int64_t)(pw_rng_next(&ctx->rng) % (uint64_t)(cap + 1));
	left = deadline - pw_mono_ms();
	if (ms > left)
		ms = left > 0 ? left : 0;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
}

/*
 * Call path on ep with body, retrying as service.retries says (a trial
 * call is not retried) until deadline. Returns CALL_*; rp holds the last
 * answer, why what went wrong.
 */
static int
call(struct pw_ctx *ctx, const char *ep, const char *path, const char *body,
    int trial, int64_t deadline, struct reply *rp, char *why, size_t wn)
{
	int64_t	retries = trial ? 0 : pw_config_int(ctx, "service.retries");
	int64_t	tmo = pw_config_int(ctx, "service.timeout"), end;
	int	k = CALL_FAIL;

	for (int i = 0; i <= retries; i++) {
		if (i > 0)
			backoff(ctx, i - 1, deadline);
		if (pw_mono_ms() >= deadline) {
			if (i == 0)
				snprintf(why, wn, "no time left");
			break;
		}
		end = pw_mono_ms() + tmo;
		post(ctx, ep, path, body, end < deadline ? end : deadline,
		    rp);
		count_now(ctx, "service.calls", 1);
		if ((k = classify(rp)) == CALL_OK)
			return k;
		reply_why(rp, why, wn);
		count_now(ctx, "service.errors", 1);
		pw_log(PW_LOG_DEBUG, "service %s: %s", ep, why);
		if (k != CALL_RETRY)
			break;
	}
	return k;
}

/* The endpoints of service.endpoints, in order; *out is the caller's. */
static char **
endpoints(struct pw_ctx *ctx, size_t *n)
{
	const char	*v = pw_config_get(ctx, "service.endpoints", NULL);
	char		**e = NULL;
	size_t		 k = 0, len;

	for (v += strspn(v, " \t,"); *v != '\0'; v += strspn(v, " \t,")) {
		len = strcspn(v, " \t,");
		e = pw_xrealloc(e, (k + 1) * sizeof *e);
		e[k++] = pw_xstrndup(v, len);
		v += len;
	}
	*n = k;
	return e;
}

static void
endpoints_free(char **e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i]);
	free(e);
}

/*
 * What try_endpoints does with a good answer: 0 takes it, 1 declines a
 * sound one (the next endpoint is asked), -1 finds it unusable (a
 * failure of the endpoint's).
 */
typedef int answer_fn(void *arg, const char *ep, const struct reply *rp,
    char *why, size_t wn);

/*
 * Offer body to each endpoint in turn, as its breaker allows, until one
 * answers and fn takes the answer (0), or deadline. Breakers are updated.
 * *auth is set when an endpoint refused our credentials.
 */
static int
try_endpoints(struct pw_ctx *ctx, const char *path, const char *body,
    int64_t deadline, answer_fn *fn, void *arg, char *why, size_t wn,
    int *auth)
{
	struct reply	 rp;
	char		**eps, w[200];
	size_t		 n;
	int		 r = PW_EFAIL, k, trial, ok, took;

	pw_buf_init(&rp.body);
	eps = endpoints(ctx, &n);
	snprintf(why, wn, "no endpoint available");
	*auth = 0;
	for (size_t i = 0; i < n && r != 0; i++) {
		if (pw_mono_ms() >= deadline)
			break;
		if (!breaker_allows(ctx, eps[i], &trial)) {
			snprintf(why, wn, "%s: breaker open", eps[i]);
			pw_log(PW_LOG_DEBUG, "service %s: breaker open: "
			    "skipped", eps[i]);
			continue;
		}
		w[0] = '\0';
		k = call(ctx, eps[i], path, body, trial, deadline, &rp, w,
		    sizeof w);
		took = k == CALL_OK ? fn(arg, eps[i], &rp, w, sizeof w) : -1;
		/* A sound answer declined (1): the endpoint works. */
		ok = took >= 0;
		if (took != 0) {
			snprintf(why, wn, "%s: %s", eps[i], w);
			if (k == CALL_AUTH) {
				*auth = 1;
				pw_log(PW_LOG_WARN, "service %s: credentials "
				    "refused (%s): using the local pool",
				    eps[i], w);
			}
		}
		if (pw_store_begin(ctx->store, &ctx->err) == 0) {
			if (breaker_record(ctx, eps[i], ok, trial) != 0 ||
			    pw_store_commit(ctx->store, &ctx->err) != 0)
				pw_store_rollback(ctx->store);
		}
		if (took == 0)
			r = 0;
	}
	endpoints_free(eps, n);
	pw_buf_release(&rp.body);
	return r;
}

/* ------------------------------------------------------------ selection */

/* "scheme://host:port" of a target URL, lower-case; "" when none. */
static void
origin_of(const char *t, char *out, size_t n)
{
	const char	*h, *e, *at;
	size_t		 k = 0;

	out[0] = '\0';
	if (t == NULL || (h = strstr(t, "://")) == NULL)
		return;
	h += 3;
	e = h + strcspn(h, "/?#");
	/* Credentials in a target are no part of where it is. */
	if ((at = memchr(h, '@', e - h)) != NULL)
		h = at + 1;
	for (const char *p = t; p < strstr(t, "://") + 3 && k + 1 < n; p++)
		out[k++] = (char)tolower((unsigned char)*p);
	for (const char *p = h; p < e && k + 1 < n; p++)
		out[k++] = (char)tolower((unsigned char)*p);
	out[k] = '\0';
}

static const char *
conn_type(const char *target)
{
	static const char *const types[] = { "https", "wss", "ws", "http" };

	if (target == NULL)
		return "http";
	for (size_t i = 0; i < 4; i++) {
		size_t n = strlen(types[i]);
		if (strncasecmp(target, types[i], n) == 0 &&
		    strncmp(target + n, "://", 3) == 0)
			return types[i];
	}
	return "http";
}

static char *
client_id(struct pw_ctx *ctx)
{
	const char	*v = pw_config_get(ctx, "service.client_id", NULL);
	char		 host[256];

	if (v != NULL && *v != '\0')
		return pw_xstrdup(v);
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "pw");
	host[sizeof host - 1] = '\0';
	return pw_xstrdup(host);
}

struct want {
	struct pw_ctx			*ctx;
	const struct pw_service_ask	*ask;
	const char			*key;
	struct pw_proxy			*out;
	struct pw_delegation		*d;
};

static int
excluded(const struct pw_service_ask *ask, int64_t id)
{
	for (size_t i = 0; i < ask->nexclude; i++)
		if (ask->exclude[i] == id)
			return 1;
	return 0;
}

/* Fill p from a service's proxy URL; 0 or -1. */
static int
proxy_from(struct pw_proxy *p, int64_t id, const char *url)
{
	struct pw_err	e;

	memset(p, 0, sizeof *p);
	if (pw_addr_parse(url, &p->addr, &e) != 0)
		return -1;
	p->id = id;
	p->has_creds = p->addr.user != NULL;
	p->status = PW_UNKNOWN;
	p->weight = -1;
	p->latency_ms = -1;
	p->source = pw_xstrdup("service");
	return 0;
}

int
pw_service_offer_parse(const char *body, size_t len, struct pw_proxy *p,
    char **url, int64_t *ttl, char *strategy, size_t sn, char *why,
    size_t wn)
{
	cJSON	*j, *d, *u, *id, *s, *t;
	int	 r = -1;

	if ((j = cJSON_ParseWithLength(body, len)) == NULL) {
		snprintf(why, wn, "answer is not JSON");
		return -1;
	}
	d = cJSON_GetObjectItemCaseSensitive(j, "data");
	u = cJSON_GetObjectItemCaseSensitive(d, "proxy_url");
	id = cJSON_GetObjectItemCaseSensitive(d, "proxy_id");
	s = cJSON_GetObjectItemCaseSensitive(d, "strategy");
	t = cJSON_GetObjectItemCaseSensitive(d, "ttl_seconds");
	if (u == NULL || (u->type & 0xff) != cJSON_String || id == NULL ||
	    (id->type & 0xff) != cJSON_Number || !(id->valuedouble >= 1 &&
	    id->valuedouble <= 9007199254740992.0) ||
	    proxy_from(p, (int64_t)id->valuedouble, u->valuestring) != 0) {
		snprintf(why, wn, "answer has no usable proxy_url and "
		    "proxy_id");
		goto done;
	}
	*ttl = 0;
	if (t != NULL && (t->type & 0xff) == cJSON_Number &&
	    t->valuedouble > 0)
		*ttl = t->valuedouble < 86400.0 * 365 ?
		    (int64_t)t->valuedouble : 86400 * 365;
	if (s != NULL && (s->type & 0xff) == cJSON_String)
		snprintf(strategy, sn, "%s", s->valuestring);
	*url = pw_xstrdup(u->valuestring);
	r = 0;
done:
	cJSON_Delete(j);
	return r;
}

void
pw_service_reply_why(long status, const char *body, size_t len, char *why,
    size_t n)
{
	cJSON	*j, *e, *m;

	snprintf(why, n, "HTTP %ld", status);
	if (len == 0 || (j = cJSON_ParseWithLength(body, len)) == NULL)
		return;
	if ((e = cJSON_GetObjectItemCaseSensitive(j, "error")) != NULL &&
	    (m = cJSON_GetObjectItemCaseSensitive(e, "message")) != NULL &&
	    (m->type & 0xff) == cJSON_String)
		snprintf(why, n, "HTTP %ld: %s", status, m->valuestring);
	cJSON_Delete(j);
}

/* A good answer to POST /api/v1/proxy/request: use it and cache it. */
static int
take_answer(void *arg, const char *ep, const struct reply *rp, char *why,
    size_t wn)
{
	struct want		*w = arg;
	struct pw_ctx		*ctx = w->ctx;
	struct pw_svc_cached	 c;
	struct pw_proxy		 p;
	char			*url = NULL, strat[sizeof w->d->strategy] = "";
	int64_t			 cttl = pw_config_int(ctx, "service.cache_ttl");
	int64_t			 life = 0;
	int			 r = -1;

	if (pw_service_offer_parse(rp->body.data, rp->body.len, &p, &url,
	    &life, strat, sizeof strat, why, wn) != 0)
		return -1;
	if (excluded(w->ask, p.id)) {
		snprintf(why, wn, "offered proxy %lld again", (long long)p.id);
		pw_proxy_release(&p);
		r = 1;
		goto done;
	}
	if (life > cttl)
		life = cttl;
	snprintf(w->d->endpoint, sizeof w->d->endpoint, "%s", ep);
	if (strat[0] != '\0')
		memcpy(w->d->strategy, strat, sizeof strat);
	w->d->ttl = life;
	*w->out = p;
	r = 0;
	memset(&c, 0, sizeof c);
	c.proxy_id = p.id;
	c.url = pw_addr_format(&p.addr, PW_CREDS_NONE);
	c.strategy = w->d->strategy;
	c.endpoint = (char *)ep;
	c.expires_at = pw_now() + life;
	/* A password never touches the file in clear. */
	if (life > 0 && p.addr.user != NULL && (pw_ctx_key(ctx, 1) != 0 ||
	    pw_crypto_seal(ctx->key, url, strlen(url), &c.sealed,
	    &c.sealed_len, &ctx->err) != 0))
		life = 0;
	/*
	 * Whatever is cached, the proxy is remembered as the service's:
	 * pw pool report then tells its id from a local proxy's.
	 */
	if (pw_store_begin(ctx->store, &ctx->err) == 0) {
		if (pw_store_svc_handout(ctx->store, p.id, c.url, ep,
		    HANDOUTS_MAX, &ctx->err) != 0 || (life > 0 &&
		    pw_store_svc_cache_put(ctx->store, w->key, &c,
		    &ctx->err) != 0) || pw_store_commit(ctx->store,
		    &ctx->err) != 0)
			pw_store_rollback(ctx->store);
	}
	free(c.url);
	free(c.sealed);
done:
	pw_secret_free(url);
	return r;
}

/* A live cached answer for key: 1 and *out filled, else 0. */
static int
from_cache(struct pw_ctx *ctx, const struct pw_service_ask *ask,
    const char *key, struct pw_proxy *out, struct pw_delegation *d)
{
	struct pw_svc_cached	 c;
	struct pw_err		 e;
	char			*url = NULL;
	int			 ok = 0;

	if (pw_store_svc_cache_get(ctx->store, key, &c, &e) != 0)
		return 0;
	if (c.expires_at <= pw_now() || excluded(ask, c.proxy_id))
		goto done;
	if (c.sealed != NULL && (pw_ctx_key(ctx, 0) != 0 ||
	    pw_crypto_unseal(ctx->key, c.sealed, c.sealed_len, &url,
	    &e) != 0))
		goto done;
	if (proxy_from(out, c.proxy_id, url != NULL ? url : c.url) != 0)
		goto done;
	snprintf(d->endpoint, sizeof d->endpoint, "%s", c.endpoint);
	snprintf(d->strategy, sizeof d->strategy, "%s", c.strategy ?
	    c.strategy : "");
	d->ttl = c.expires_at - pw_now();
	ok = 1;
done:
	pw_secret_free(url);
	pw_svc_cached_release(&c);
	return ok;
}

int
pw_service_next(struct pw_ctx *ctx, const struct pw_service_ask *ask,
    const struct pw_pick *local, struct pw_proxy *out,
    struct pw_delegation *d)
{
	struct want	 w = { ctx, ask, NULL, out, d };
	struct pw_err	 e;
	cJSON		*b;
	char		 origin[512], *key, *body, *cid, why[400];
	const char	*ct = conn_type(ask->target);
	int64_t		 deadline = pw_mono_ms() + BUDGET_MS;
	int		 r, auth = 0;

	memset(d, 0, sizeof *d);
	origin_of(ask->target, origin, sizeof origin);
	key = pw_xasprintf("%s|%s|%s", origin, ct, ask->region ?
	    ask->region : "");
	/* A region matches in any case: one answer for all of them. */
	for (char *c = key + strlen(origin) + strlen(ct) + 2; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	w.key = key;
	if (pw_config_int(ctx, "service.cache_ttl") > 0 &&
	    from_cache(ctx, ask, key, out, d)) {
		d->path = PW_PATH_CACHE;
		count_now(ctx, "service.cache_hits", 1);
		pw_log(PW_LOG_INFO, "service %s: proxy %lld (cached, %lld s "
		    "left)", d->endpoint, (long long)out->id,
		    (long long)d->ttl);
		free(key);
		return 0;
	}
	if ((r = pw_cjson_init(&e)) != 0) {
		snprintf(why, sizeof why, "%.300s", e.msg);
		goto fallback;
	}
	cid = client_id(ctx);
	b = cJSON_CreateObject();
	cJSON_AddItemToObject(b, "client_id", cJSON_CreateString(cid));
	cJSON_AddItemToObject(b, "target", cJSON_CreateString(
	    ask->target ? ask->target : ""));
	cJSON_AddItemToObject(b, "connection_type", cJSON_CreateString(ct));
	if (ask->region != NULL)
		cJSON_AddItemToObject(b, "region",
		    cJSON_CreateString(ask->region));
	body = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	free(cid);
	r = try_endpoints(ctx, "/api/v1/proxy/request", body, deadline,
	    take_answer, &w, why, sizeof why, &auth);
	cJSON_free(body);
	if (r == 0) {
		d->path = PW_PATH_SERVICE;
		pw_log(PW_LOG_INFO, "service %s: proxy %lld (%s)",
		    d->endpoint, (long long)out->id, d->strategy);
		free(key);
		return 0;
	}
fallback:
	free(key);
	d->path = PW_PATH_FALLBACK;
	snprintf(d->why, sizeof d->why, "%s", why);
	d->endpoint[0] = '\0';
	d->strategy[0] = '\0';
	if (!auth)
		pw_log(PW_LOG_INFO, "service unavailable (%s): using the "
		    "local pool", why);
	count_now(ctx, "service.fallbacks", 1);
	pw_err_clear(&ctx->err);
	return pw_pool_next(ctx, local, out);
}

/* ------------------------------------------------------------ feedback */

int
pw_service_resolve(struct pw_ctx *ctx, const char *arg, int64_t *id)
{
	struct pw_addr	 a;
	struct pw_proxy	 p;
	struct pw_err	 e;
	char		*url, *svc_url = NULL, *local;
	int64_t		 n;
	int		 r;

	if (strspn(arg, "0123456789") == strlen(arg) && *arg != '\0') {
		if (pw_parse_int(arg, 1, INT64_MAX, &n) != 0)
			return PW_ENOTFOUND;
		if ((r = pw_store_svc_cache_find(ctx->store, NULL, n, id,
		    &svc_url, &ctx->err)) != 0)
			return r;
		/* An id of the service's and of the local pool: say so. */
		if ((r = pw_pool_get(ctx, n, 0, &p)) != 0) {
			free(svc_url);
			if (r != PW_ENOTFOUND)
				return r;
			pw_err_clear(&ctx->err);
			return 0;
		}
		/* Sealed credentials, not unsealed: masked all the same. */
		if (p.has_creds && p.addr.user == NULL) {
			a = p.addr;
			a.user = a.pass = "x";
			local = pw_addr_format(&a, PW_CREDS_MASK);
		} else
			local = pw_addr_format(&p.addr, PW_CREDS_MASK);
		r = pw_failf(&ctx->err, PW_EUSAGE, "%s: ambiguous: the "
		    "service's proxy %lld (%s) or the local proxy %lld "
		    "(%s); name it by its URL", arg, (long long)n, svc_url,
		    (long long)n, local);
		free(local);
		free(svc_url);
		pw_proxy_release(&p);
		return r;
	}
	if (pw_addr_parse(arg, &a, &e) != 0)
		return PW_ENOTFOUND;
	url = pw_addr_format(&a, PW_CREDS_NONE);
	pw_addr_release(&a);
	r = pw_store_svc_cache_find(ctx->store, url, 0, id, NULL, &ctx->err);
	free(url);
	return r;
}

int
pw_service_report(struct pw_ctx *ctx, int64_t proxy_id, int ok,
    double latency_ms, const char *error)
{
	struct pw_outcome	o;
	int64_t			dropped = 0, gone = 0;
	int			added = 0, r;

	memset(&o, 0, sizeof o);
	o.proxy_id = proxy_id;
	o.success = ok;
	o.latency_ms = latency_ms;
	o.error = (char *)error;
	o.ts_ms = pw_now_ms();
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	if ((r = pw_store_outbox_add(ctx->store, &o, pw_config_int(ctx,
	    "service.outbox_max"), &added, &dropped, &ctx->err)) != 0 ||
	    (!ok && (r = pw_store_svc_cache_drop(ctx->store, proxy_id, &gone,
	    &ctx->err)) != 0)) {
		pw_store_rollback(ctx->store);
		return r;
	}
	count(ctx, "service.outbox.dropped", dropped);
	count(ctx, "service.cache_invalidated", gone);
	if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0)
		return r;
	if (dropped > 0)
		pw_log(PW_LOG_WARN, "service outbox full: dropped the %lld "
		    "oldest outcome%s", (long long)dropped, dropped == 1 ?
		    "" : "s");
	return 0;
}

static int
took_feedback(void *arg, const char *ep, const struct reply *rp, char *why,
    size_t wn)
{
	(void)arg;
	(void)ep;
	(void)rp;
	(void)why;
	(void)wn;
	return 0;
}

/* Lease a batch to this flush, in a transaction of its own. */
static int
claim(struct pw_ctx *ctx, int64_t deadline, struct pw_outcome **v,
    size_t *n)
{
	int64_t	now = pw_now_ms();
	int	r;

	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	/* Past the deadline a second more: then another flush may retry. */
	if ((r = pw_store_outbox_claim(ctx->store, BATCH_MAX, now, now +
	    (deadline - pw_mono_ms()) + 1000, v, n, &ctx->err)) != 0) {
		pw_store_rollback(ctx->store);
		return r;
	}
	if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0)
		pw_outcomes_free(*v, *n);
	return r;
}

static char *
feedback_body(const char *cid, const struct pw_outcome *v, size_t n)
{
	cJSON	*b, *list, *o;
	char	*body;

	b = cJSON_CreateObject();
	cJSON_AddItemToObject(b, "client_id", cJSON_CreateString(cid));
	list = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "proxy_id",
		    cJSON_CreateNumber((double)v[i].proxy_id));
		cJSON_AddItemToObject(o, "success",
		    cJSON_CreateBool(v[i].success));
		if (v[i].latency_ms >= 0)
			cJSON_AddItemToObject(o, "latency_ms",
			    cJSON_CreateNumber(v[i].latency_ms));
		if (v[i].error != NULL)
			cJSON_AddItemToObject(o, "error",
			    cJSON_CreateString(v[i].error));
		cJSON_AddItemToObject(o, "timestamp",
		    cJSON_CreateNumber((double)v[i].ts_ms / 1000.0));
		cJSON_AddItemToArray(list, o);
	}
	cJSON_AddItemToObject(b, "reports", list);
	body = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	return body;
}

int
pw_service_flush(struct pw_ctx *ctx, int64_t budget_ms,
    struct pw_flush_result *fr)
{
	struct pw_outcome	*v = NULL;
	struct pw_err		 e;
	size_t			 n = 0;
	int64_t			 deadline = pw_mono_ms() + budget_ms, depth;
	char			 why[400], *cid, *body;
	int			 r = 0, auth;

	memset(fr, 0, sizeof *fr);
	if (!pw_service_enabled(ctx))
		return pw_failf(&ctx->err, PW_EUSAGE, "no service configured "
		    "(set service.endpoints)");
	if ((r = pw_store_outbox_count(ctx->store, &depth, &ctx->err)) != 0)
		return r;
	if (depth == 0)
		return 0;
	if ((r = pw_cjson_init(&ctx->err)) != 0)
		return r;
	cid = client_id(ctx);
	/*
	 * Each batch is leased to this flush first, so that flushes running
	 * at once (every pw fetch makes one) never send an outcome twice.
	 */
	while (pw_mono_ms() < deadline) {
		if ((r = claim(ctx, deadline, &v, &n)) != 0)
			break;
		if (n == 0) {
			free(v);
			break;
		}
		body = feedback_body(cid, v, n);
		r = try_endpoints(ctx, "/api/v1/proxy/feedback", body,
		    deadline, took_feedback, NULL, why, sizeof why, &auth);
		cJSON_free(body);
		if (r != 0) {
			/* Back for the next flush at once. */
			if (pw_store_begin(ctx->store, &e) == 0 &&
			    (pw_store_outbox_release(ctx->store, v, n,
			    &e) != 0 || pw_store_commit(ctx->store, &e) != 0))
				pw_store_rollback(ctx->store);
			pw_outcomes_free(v, n);
			r = pw_failf(&ctx->err, PW_EFAIL, "cannot send "
			    "feedback: %s", why);
			break;
		}
		if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0 ||
		    (r = pw_store_outbox_delete(ctx->store, v, n,
		    &ctx->err)) != 0 || (r = pw_store_stat_add(ctx->store,
		    "service.outbox.sent", (int64_t)n, &ctx->err)) != 0 ||
		    (r = pw_store_commit(ctx->store, &ctx->err)) != 0) {
			pw_store_rollback(ctx->store);
			pw_outcomes_free(v, n);
			break;
		}
		fr->sent += (int64_t)n;
		pw_outcomes_free(v, n);
	}
	free(cid);
	if (pw_store_outbox_count(ctx->store, &fr->left, &e) != 0)
		fr->left = -1;
	return r;
}

/* ------------------------------------------------------- pw serve side */

struct pw_flusher {
	pthread_t		 t;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 stop;
	int64_t			 interval_ms;
	struct pw_ctx		 ctx;
};

static void *
flusher_main(void *arg)
{
	struct pw_flusher	*f = arg;
	struct pw_flush_result	 fr;
	struct timespec		 ts;
	int64_t			 depth;

	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += f->interval_ms / 1000;
		ts.tv_nsec += (f->interval_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&f->cv, &f->mu, &ts);
		if (f->stop)
			break;
		pthread_mutex_unlock(&f->mu);
		if (pw_config_reload_state(&f->ctx) == 0 &&
		    pw_service_enabled(&f->ctx) &&
		    pw_store_outbox_count(f->ctx.store, &depth,
		    &f->ctx.err) == 0 && depth > 0 &&
		    pw_service_flush(&f->ctx, 2000, &fr) != 0)
			pw_log(PW_LOG_DEBUG, "outbox: %s", f->ctx.err.msg);
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int
pw_service_flusher_start(const char *state, const struct pw_config *cfg,
    int64_t interval_ms, struct pw_flusher **out, struct pw_err *err)
{
	struct pw_flusher	*f = pw_xcalloc(1, sizeof *f);
	int			 r;

	f->interval_ms = interval_ms;
	f->ctx.cfg = pw_config_dup(cfg);
	if ((r = pw_open(&f->ctx, state, PW_OPEN_RW)) != 0) {
		*err = f->ctx.err;
		pw_close(&f->ctx);
		free(f);
		return r;
	}
	if ((r = pw_cjson_init(err)) != 0) {
		pw_close(&f->ctx);
		free(f);
		return r;
	}
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (pthread_create(&f->t, NULL, flusher_main, f) != 0) {
		pw_close(&f->ctx);
		free(f);
		return pw_failf(err, PW_EFAIL, "cannot start the outbox "
		    "thread");
	}
	*out = f;
	return 0;
}

void
pw_service_flusher_stop(struct pw_flusher *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->t, NULL);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	pw_close(&f->ctx);
	free(f);
}
