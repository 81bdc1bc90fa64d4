/*
 * fetch.c -- one request through the pool, with failover: pick a proxy,
 * try, classify what went wrong, record it, try the next.
 *
 * Output is never buffered beyond the response headers: the body goes to
 * the caller as it arrives. Until the first body byte nothing has been
 * shown, so a failing proxy can still be replaced; after it, a failure
 * is reported, not retried.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net.h"
#include "ratelimit.h"

/* One attempt's transfer state, seen by the libcurl callbacks. */
struct xfer {
	const struct pw_fetch_opts	*o;
	CURL				*h;
	struct pw_buf			 hdrs;	/* held until the body starts */
	int				 started;	/* output began */
	int				 retry_status;	/* aborted: retry-on */
	int				 tunnel;	/* CONNECT or SOCKS */
	int				 proxy_auth;	/* aborted: 407 */
	int				 write_failed;
	int64_t				 bytes;
};

static int
retry_status(const struct pw_fetch_opts *o, long status)
{
	for (size_t i = 0; i < o->nretry_on; i++)
		if (o->retry_on[i] == status)
			return 1;
	return 0;
}

/* The response headers held back, shown: output begins. */
static int
show_headers(struct xfer *x)
{
	x->started = 1;
	if (x->o->on_header != NULL && x->hdrs.len > 0 &&
	    x->o->on_header(x->o->arg, x->hdrs.data, x->hdrs.len) != 0) {
		x->write_failed = 1;
		return -1;
	}
	return 0;
}

/*
 * Show what was held back, once, unless the status makes this the
 * proxy's failure (its own 407, a --retry-on status).
 */
static int
start_output(struct xfer *x)
{
	long	status = 0;

	if (x->started)
		return 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	/*
	 * Without a tunnel the HTTP proxy answers for itself: its 407 is a
	 * proxy failure, not the target's response.
	 */
	if (status == 407 && !x->tunnel) {
		x->proxy_auth = 1;
		return -1;
	}
	if (retry_status(x->o, status)) {
		x->retry_status = 1;
		return -1;
	}
	return show_headers(x);
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct xfer	*x = arg;

	(void)size;
	/* Headers are small; a runaway server is cut off at 1 MiB. */
	if (x->hdrs.len + n > 1 << 20)
		return 0;
	if (!x->started)
		pw_buf_add(&x->hdrs, p, n);
	return n;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct xfer	*x = arg;

	(void)size;
	if (start_output(x) != 0)
		return 0;
	x->bytes += n;
	if (x->o->on_body != NULL && x->o->on_body(x->o->arg, p, n) != 0) {
		x->write_failed = 1;
		return 0;
	}
	return n;
}

/*
 * Called after each round of reads, before libcurl waits again: what
 * came in that round goes out now, not when a buffer fills, so a slow
 * stream reaches its reader as it arrives.
 */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer	*x = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (!x->started)
		return 0;
	if (x->o->on_flush(x->o->arg) != 0) {
		x->write_failed = 1;
		return 1;
	}
	return 0;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)size;
	(void)arg;
	return n;
}

/*
 * Through a plain HTTP proxy, silence is ambiguous: a dead proxy and a
 * slow target look the same. Ask the proxy itself for "/": a working one
 * answers at once (400, 403, 407: any HTTP answer will do), a dead one
 * does not. Only the proxy's host is contacted.
 */
static int
proxy_answers(const struct pw_fetch_opts *o, const struct pw_addr *a)
{
	CURL		*h;
	char		*url;
	long		 status = 0, limit = 2000;
	CURLcode	 rc;

	if ((h = curl_easy_init()) == NULL)
		return 0;
	if (o->connect_timeout_ms > 0 && o->connect_timeout_ms < limit)
		limit = (long)o->connect_timeout_ms;
	url = pw_xasprintf(strchr(a->host, ':') ? "%s://[%s]:%d/" :
	    "%s://%s:%d/", a->scheme == PW_HTTPS ? "https" : "http", a->host,
	    a->port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, limit);
	/* Whether it speaks, not who it is. */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	free(url);
	return rc == CURLE_OK && status > 0;
}

/* The host of the URL last requested is a name, not an address. */
static int
target_is_name(CURL *h)
{
	CURLU		*u;
	char		*eff = NULL, *host = NULL;
	unsigned char	 sa[16];
	int		 name = 0;

	curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
	if (eff == NULL || (u = curl_url()) == NULL)
		return 0;
	if (curl_url_set(u, CURLUPART_URL, eff, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		name = host[0] != '[' && inet_pton(AF_INET, host, sa) != 1;
	curl_free(host);
	curl_url_cleanup(u);
	return name;
}

static int
is_tls_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
		return 1;
	default:
		return 0;
	}
}

/*
 * Whose fault: the proxy's (it penalises the proxy and the next one is
 * tried) or the target's (reported; the proxy did its job). *why, when
 * set, says what the error buffer does not.
 */
static int
classify(CURL *h, CURLcode rc, const struct pw_fetch_opts *o,
    const struct pw_addr *a, int tunnel, const char **why)
{
	long	connect_code = 0, pxerr = 0, pxverify = 0, status = 0;
	double	t_connect = 0, t_pre = 0, t_start = 0;
	int	http_tunnel = tunnel && a->scheme <= PW_HTTPS;

	curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h, CURLINFO_CONNECT_TIME, &t_connect);
	curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME, &t_pre);
	curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME, &t_start);
	*why = NULL;
	if (is_tls_error(rc)) {
		/*
		 * TLS to an https proxy comes first; TLS to the target only
		 * inside a tunnel the proxy opened.
		 */
		if (a->scheme != PW_HTTPS)
			return PW_FAIL_TARGET;
		curl_easy_getinfo(h, CURLINFO_PROXY_SSL_VERIFYRESULT,
		    &pxverify);
		if (!tunnel || pxverify != 0 || connect_code != 200) {
			*why = "TLS to the proxy failed";
			return PW_FAIL_PROXY;
		}
		return PW_FAIL_TARGET;
	}
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return PW_FAIL_PROXY;
	case CURLE_COULDNT_RESOLVE_HOST:	/* resolved here: socks5, ... */
		return PW_FAIL_TARGET;
	case CURLE_PROXY:
		curl_easy_getinfo(h, CURLINFO_PROXY_ERROR, &pxerr);
		switch (pxerr) {
		case CURLPX_REPLY_HOST_UNREACHABLE:
		case CURLPX_REPLY_NETWORK_UNREACHABLE:
		case CURLPX_REPLY_CONNECTION_REFUSED:
		case CURLPX_REPLY_TTL_EXPIRED:
			*why = "the proxy could not reach the target";
			return PW_FAIL_TARGET;
		case CURLPX_RESOLVE_HOST:
			*why = "the target's name does not resolve";
			return PW_FAIL_TARGET;
		case CURLPX_REPLY_GENERAL_SERVER_FAILURE:
			/*
			 * The SOCKS server took us, then failed the request:
			 * for a name it resolves itself (socks5h, socks4a),
			 * that is how some (microsocks) say the name does
			 * not resolve. For an address it is the server's.
			 */
			if ((a->scheme == PW_SOCKS5H ||
			    a->scheme == PW_SOCKS4A) && target_is_name(h)) {
				*why = "the proxy could not resolve or reach "
				    "the target";
				return PW_FAIL_TARGET;
			}
			return PW_FAIL_PROXY;
		default:
			return PW_FAIL_PROXY;
		}
	case CURLE_OPERATION_TIMEDOUT:
		/*
		 * Not connected to the proxy, or the tunnel never opened: the
		 * proxy. A tunnel open and no answer: the target. Through a
		 * plain HTTP proxy nothing tells a dead proxy from a slow
		 * target, unless the proxy still answers a request of its
		 * own.
		 */
		if (t_connect <= 0)
			return PW_FAIL_PROXY;
		if (http_tunnel)
			return connect_code == 200 ? PW_FAIL_TARGET :
			    PW_FAIL_PROXY;
		if (tunnel)
			return t_pre > 0 ? PW_FAIL_TARGET : PW_FAIL_PROXY;
		if (t_start > 0)
			return PW_FAIL_TARGET;
		if (proxy_answers(o, a)) {
			*why = "the target did not answer in time (the proxy "
			    "does)";
			return PW_FAIL_TARGET;
		}
		return PW_FAIL_PROXY;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		/*
		 * A tunnel refused with 5xx: the proxy could not reach the
		 * target. With 4xx (401, 403, 407) the proxy would not
		 * carry us: its failure, another may.
		 */
		if (http_tunnel && connect_code >= 500) {
			*why = "the proxy could not reach the target";
			return PW_FAIL_TARGET;
		}
		return PW_FAIL_PROXY;
	case CURLE_OUT_OF_MEMORY:
		/* A header line over libcurl's limit, or out of memory. */
		*why = pw_curl_strerror(rc, status);
		return PW_FAIL_TARGET;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* No HTTP from a plain HTTP proxy: not a proxy at all. */
		if (!tunnel && status == 0)
			return PW_FAIL_PROXY;
		return PW_FAIL_TARGET;
	default:
		return PW_FAIL_TARGET;
	}
}

static void
attempt_add(struct pw_fetch_result *res, int64_t id, const char *proxy,
    int kind, const char *error, long status, double ms)
{
	struct pw_attempt	*a;

	res->attempts = pw_xrealloc(res->attempts, (res->nattempts + 1) *
	    sizeof *res->attempts);
	a = &res->attempts[res->nattempts++];
	a->proxy_id = id;
	a->proxy = pw_xstrdup(proxy);
	a->kind = kind;
	/* libcurl's messages may quote a URL; never with a password. */
	a->error = error != NULL ? pw_redact_url(error) : NULL;
	a->status = status;
	a->ms = ms;
}

/* The options every attempt shares. */
static int
setup(CURL *h, const struct pw_fetch_opts *o, int kept,
    struct curl_slist **hl, char *errbuf, struct pw_err *err)
{
	*hl = NULL;
	for (size_t i = 0; i < o->nheaders; i++) {
		struct curl_slist *n = curl_slist_append(*hl, o->headers[i]);
		if (n == NULL)
			return pw_failf(err, PW_ENOMEM, "out of memory");
		*hl = n;
	}
	curl_easy_setopt(h, CURLOPT_URL, o->url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hl);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	if (o->has_body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, o->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)o->body_len);
	}
	if (o->head)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	if (o->method != NULL)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, o->method);
	if (o->follow) {
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, o->max_redirs);
	}
	if (o->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	if (o->connect_timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
		    (long)o->connect_timeout_ms);
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
	curl_easy_setopt(h, CURLOPT_USERAGENT, o->user_agent != NULL ?
	    o->user_agent : "pw/" PW_VERSION);
	if (o->compressed)
		curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	/* A tunnel's "200 Connection established" is not the response. */
	curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	/*
	 * A receive buffer of 512 KiB (the largest every libcurl takes), not
	 * libcurl's 16 KiB nor the curl tool's 100 KiB: a large body then
	 * comes in a fifth of the curl tool's reads and waits, which took
	 * 0.9 ms (2.5%) off a 10 MiB fetch through tinyproxy. The buffer is
	 * touched only as far as a read fills it, so a small response pays
	 * nothing for it. Not for pw serve's kept handles: there it would be
	 * allocated afresh for every request (after curl_easy_reset), most
	 * of them small.
	 */
	if (!kept)
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	if (o->on_flush != NULL) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	return 0;
}

/*
 * A URL libcurl will take, checked before any proxy is picked; shown is
 * url as a message may quote it (its password masked).
 */
static int
check_url(const char *url, const char *shown, struct pw_err *err)
{
	CURLU		*u;
	CURLUcode	 uc;

	if ((u = curl_url()) == NULL)
		return pw_failf(err, PW_ENOMEM, "out of memory");
	uc = curl_url_set(u, CURLUPART_URL, url, 0);
	curl_url_cleanup(u);
	if (uc != CURLUE_OK)
		return pw_failf(err, PW_EUSAGE, "'%s': bad URL: %s", shown,
		    curl_url_strerror(uc));
	return 0;
}

static void
nap(int64_t ms)
{
	struct timespec	ts = { ms / 1000, ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * fetch.rate_per_host: wait until the target's host may take one more
 * request from the pw processes sharing this state file, or, with
 * no_wait, say when it could. The host of the URL counts; the hosts of
 * redirects do not.
 */
static int
polite(struct pw_ctx *ctx, const struct pw_fetch_opts *o, const char *shown)
{
	struct pw_rl_opts	 ro = { .backend = PW_RL_SQLITE,
	    .fail_open = 0 };
	struct pw_rl_limit	 l;
	struct pw_rl_verdict	 v;
	struct pw_rl		*rl = NULL;
	CURLU			*u;
	char			*host = NULL, *key;
	const char		*rate;
	int			 r = 0;

	rate = pw_config_get(ctx, "fetch.rate_per_host", NULL);
	if (ctx->store == NULL || pw_parse_rate(rate, &l.limit,
	    &l.window_ms) != 0 || l.limit == 0)
		return 0;
	if ((u = curl_url()) == NULL)
		return pw_failf(&ctx->err, PW_ENOMEM, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, o->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		curl_url_cleanup(u);
		return pw_failf(&ctx->err, PW_EUSAGE, "'%s': bad URL", shown);
	}
	curl_url_cleanup(u);
	for (char *c = host; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	key = pw_xasprintf("host:%s", host);
	if ((r = pw_rl_new(&ro, &rl, &ctx->err)) != 0)
		goto out;
	for (;;) {
		const char *k = key;
		char why[256];

		if ((r = pw_rl_check(rl, ctx->store, &k, &l, 1, 1, &v,
		    &ctx->err)) != 0)
			break;
		if (v.failed) {
			r = pw_failf(&ctx->err, PW_ESTATE, "%s",
			    pw_rl_last_error(rl, why, sizeof why));
			break;
		}
		if (v.allowed)
			break;
		if (o->no_wait) {
			r = pw_failf(&ctx->err, PW_ERATE, "%s: "
			    "fetch.rate_per_host (%s) reached; the next "
			    "request may go in %.1f s", host, rate,
			    v.retry_ms / 1000.0);
			break;
		}
		pw_log(PW_LOG_INFO, "%s: waiting %.1f s for "
		    "fetch.rate_per_host (%s)", host, v.retry_ms / 1000.0,
		    rate);
		nap(v.retry_ms);
	}
out:
	pw_rl_free(rl);
	free(key);
	curl_free(host);
	return r;
}

static int64_t
info_off(CURL *h, CURLINFO what)
{
	curl_off_t	v = 0;

	curl_easy_getinfo(h, what, &v);
	return v;
}

static long
info_long(CURL *h, CURLINFO what)
{
	long	v = 0;

	curl_easy_getinfo(h, what, &v);
	return v;
}

static char *
info_str(CURL *h, CURLINFO what)
{
	char	*v = NULL;

	curl_easy_getinfo(h, what, &v);
	return v != NULL ? pw_xstrdup(v) : NULL;
}

/* What the last attempt left in h, for -w and --json. */
static void
last_info(CURL *h, const struct pw_fetch_opts *o,
    struct pw_fetch_result *res)
{
	char	*eff = NULL;

	res->time_namelookup = info_off(h, CURLINFO_NAMELOOKUP_TIME_T);
	res->time_connect = info_off(h, CURLINFO_CONNECT_TIME_T);
	res->time_appconnect = info_off(h, CURLINFO_APPCONNECT_TIME_T);
	res->time_pretransfer = info_off(h, CURLINFO_PRETRANSFER_TIME_T);
	res->time_starttransfer = info_off(h,
	    CURLINFO_STARTTRANSFER_TIME_T);
	res->time_redirect = info_off(h, CURLINFO_REDIRECT_TIME_T);
	res->time_total = info_off(h, CURLINFO_TOTAL_TIME_T);
	res->size_download = info_off(h, CURLINFO_SIZE_DOWNLOAD_T);
	res->size_upload = info_off(h, CURLINFO_SIZE_UPLOAD_T);
	res->speed_download = info_off(h, CURLINFO_SPEED_DOWNLOAD_T);
	res->speed_upload = info_off(h, CURLINFO_SPEED_UPLOAD_T);
	res->size_header = info_long(h, CURLINFO_HEADER_SIZE);
	res->size_request = info_long(h, CURLINFO_REQUEST_SIZE);
	res->num_redirects = info_long(h, CURLINFO_REDIRECT_COUNT);
	res->num_connects = info_long(h, CURLINFO_NUM_CONNECTS);
	res->remote_port = info_long(h, CURLINFO_PRIMARY_PORT);
	res->local_port = info_long(h, CURLINFO_LOCAL_PORT);
	res->remote_ip = info_str(h, CURLINFO_PRIMARY_IP);
	res->local_ip = info_str(h, CURLINFO_LOCAL_IP);
	res->scheme = info_str(h, CURLINFO_SCHEME);
	res->method = info_str(h, CURLINFO_EFFECTIVE_METHOD);
	res->content_type = info_str(h, CURLINFO_CONTENT_TYPE);
	switch (info_long(h, CURLINFO_HTTP_VERSION)) {
	case CURL_HTTP_VERSION_1_0:
		res->http_version = "1";
		break;
	case CURL_HTTP_VERSION_1_1:
		res->http_version = "1.1";
		break;
	case CURL_HTTP_VERSION_2_0:
		res->http_version = "2";
		break;
	case CURL_HTTP_VERSION_3:
		res->http_version = "3";
		break;
	default:
		res->http_version = "0";
		break;
	}
	/* libcurl's keeps a password given in the URL. */
	curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
	if (eff != NULL)
		res->url_effective = o->show_secrets ? pw_xstrdup(eff) :
		    pw_redact_url(eff);
}

static int
is_tunnel(const struct pw_fetch_opts *o, const struct pw_addr *a)
{
	return a->scheme >= PW_SOCKS4 || strncasecmp(o->url, "https:", 6) ==
	    0;
}

int
pw_fetch(struct pw_ctx *ctx, const struct pw_fetch_opts *o,
    struct pw_fetch_result *res)
{
	struct curl_slist	*hl = NULL;
	struct pw_pick		 pk = o->pick;
	struct pw_proxy		 p;
	struct pw_addr		 forced;
	struct xfer		 x;
	char			 errbuf[CURL_ERROR_SIZE], *shown = NULL;
	char			*url;	/* o->url for messages */
	int64_t			*tried = NULL, *svc_tried = NULL, wait_ms = 0;
	struct pw_service_ask	 ask;
	struct pw_delegation	 dlg;
	size_t			 ntried = 0, nsvc = 0;
	int			 tries, r = 0, kind, outcome, delegate, path;
	int			 tls, performed = 0;
	CURL			*h;
	CURLcode		 rc;

	memset(res, 0, sizeof *res);
	memset(&forced, 0, sizeof forced);
	/*
	 * TLS to the target, to where it may redirect, or to the proxy named
	 * here: OpenSSL is set up whole. A proxy of the pool reached over
	 * TLS is told in pw_curl_use_proxy.
	 */
	tls = strncasecmp(o->url, "https:", 6) == 0 || o->follow ||
	    (o->proxy != NULL && strncasecmp(o->proxy, "https:", 6) == 0);
	if ((r = tls ? pw_net_init(&ctx->err) :
	    pw_net_init_lazy(&ctx->err)) != 0)
		return r;
	url = pw_redact_url(o->url);
	if ((r = check_url(o->url, url, &ctx->err)) != 0)
		goto refused;
	if (o->proxy != NULL &&
	    pw_addr_parse(o->proxy, &forced, &ctx->err) != 0) {
		r = pw_err_prefix(&ctx->err, "--proxy");
		goto refused;
	}
	/*
	 * The strategy, session and filters are checked before anything
	 * is counted: a usage error takes no turn of fetch.rate_per_host.
	 */
	if (o->proxy == NULL) {
		const struct pw_strategy *s, *fallback;

		if ((r = pw_pool_resolve_pick(ctx, &o->pick, &s,
		    &fallback)) != 0)
			goto refused;
	}
	if ((r = polite(ctx, o, url)) != 0)
		goto refused;
	tries = o->proxy != NULL ? 1 : o->retries > 0 ? o->retries :
	    (int)pw_config_int(ctx, "fetch.retries");
	/*
	 * A long-lived context (pw serve's workers) keeps its handle, and
	 * with it libcurl's connections: the next request through the same
	 * proxy need not connect again. The last fetch reset it on its way
	 * out.
	 */
	if (ctx->view != NULL && ctx->curl != NULL)
		h = ctx->curl;
	else if ((h = curl_easy_init()) == NULL) {
		pw_addr_release(&forced);
		free(url);
		return pw_failf(&ctx->err, PW_EFAIL, "cannot start libcurl");
	}
	if (ctx->view != NULL)
		ctx->curl = h;
	if ((r = setup(h, o, ctx->view != NULL, &hl, errbuf, &ctx->err)) != 0)
		goto out;
	tried = pw_xcalloc(tries, sizeof *tried);
	svc_tried = pw_xcalloc(tries, sizeof *svc_tried);
	pk.secrets = 1;
	pk.rate_retry_ms = &wait_ms;
	if (pw_parse_rate(pw_config_get(ctx, "fetch.rate_per_proxy", NULL),
	    &pk.rate_limit, &pk.rate_window_ms) != 0)
		pk.rate_limit = 0;
	delegate = o->proxy == NULL && pw_service_delegable(ctx, &pk);
	res->delegated = delegate;
	memset(&ask, 0, sizeof ask);
	ask.target = o->url;
	ask.region = pk.filter.region;
	for (int t = 0; t < tries; t++) {
		const struct pw_addr *a;
		int64_t id = 0;
		double total = 0, start = 0;
		long status = 0;

		path = PW_PATH_LOCAL;
		if (o->proxy == NULL) {
			pk.exclude = tried;
			pk.nexclude = ntried;
			ask.exclude = svc_tried;
			ask.nexclude = nsvc;
			if (delegate) {
				r = pw_service_next(ctx, &ask, &pk, &p, &dlg);
				path = dlg.path;
				/*
				 * Unavailable once, the service is not asked
				 * again by this fetch: each ask may cost most
				 * of a second.
				 */
				if (path == PW_PATH_FALLBACK) {
					delegate = 0;
					res->fallback_why = pw_xstrdup(dlg.why);
				}
			} else
				r = pw_pool_next(ctx, &pk, &p);
			if (r == PW_ERATE && !o->no_wait) {
				/* Every proxy over fetch.rate_per_proxy. */
				pw_log(PW_LOG_INFO, "waiting %.1f s for "
				    "fetch.rate_per_proxy", wait_ms / 1000.0);
				nap(wait_ms);
				t--;
				continue;
			}
			if (r != 0) {
				/* Some were tried: they all failed. */
				if (r == PW_ENOPROXY && t > 0)
					break;
				goto out;
			}
			id = p.id;
			if (path == PW_PATH_SERVICE || path == PW_PATH_CACHE)
				svc_tried[nsvc++] = id;
			else
				tried[ntried++] = id;
			a = &p.addr;
		} else
			a = &forced;
		free(shown);
		shown = pw_addr_format(a, o->show_secrets ? PW_CREDS_SHOW :
		    PW_CREDS_MASK);
		pw_curl_use_proxy(h, a);
		memset(&x, 0, sizeof x);
		x.o = o;
		x.h = h;
		x.tunnel = is_tunnel(o, a);
		pw_buf_init(&x.hdrs);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
		errbuf[0] = '\0';
		rc = curl_easy_perform(h);
		performed = 1;
		if (rc == CURLE_OK && !x.started)
			start_output(&x);	/* no body: show the headers */
		else if (rc == CURLE_TOO_MANY_REDIRECTS && !x.started)
			/*
			 * As curl -i: the responses up to the limit, though
			 * the fetch failed (the target's doing: no other
			 * proxy would fare better).
			 */
			show_headers(&x);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &total);
		curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME, &start);
		if (x.write_failed) {
			/* The proxy did its part: the request is completed. */
			if (o->proxy == NULL)
				pw_proxy_release(&p);
			pw_buf_release(&x.hdrs);
			if (id != 0 && path == PW_PATH_LOCAL &&
			    pw_pool_report(ctx, id, PW_REPORT_NEUTRAL, -1) != 0)
				pw_log(PW_LOG_WARN, "%s", ctx->err.msg);
			r = pw_failf(&ctx->err, PW_EFAIL,
			    "cannot write output");
			goto out;
		}
		if (x.proxy_auth) {
			kind = PW_FAIL_PROXY;
			snprintf(errbuf, sizeof errbuf, "proxy authentication "
			    "failed (HTTP 407)");
		} else if (x.retry_status) {
			kind = PW_FAIL_PROXY;
			snprintf(errbuf, sizeof errbuf, "HTTP %ld (retry-on)",
			    status);
		} else if (rc == CURLE_OK)
			kind = PW_FAIL_NONE;
		else {
			const char *why;
			kind = classify(h, rc, o, a, x.tunnel, &why);
			if (errbuf[0] == '\0' || why != NULL)
				snprintf(errbuf + strlen(errbuf),
				    sizeof errbuf - strlen(errbuf), "%s%s",
				    errbuf[0] ? ": " : "",
				    why ? why : curl_easy_strerror(rc));
		}
		/* Not before: a (the proxy's address) is p's. */
		if (o->proxy == NULL)
			pw_proxy_release(&p);
		/* The last attempt's headers stay, for -w %header{}. */
		free(res->headers);
		res->headers = NULL;
		res->headers_len = x.hdrs.len;
		if (x.hdrs.len > 0)
			res->headers = pw_buf_detach(&x.hdrs);
		pw_buf_release(&x.hdrs);
		res->redirs_exceeded = rc == CURLE_TOO_MANY_REDIRECTS;
		attempt_add(res, id, shown, kind, kind ? errbuf : NULL, status,
		    total * 1000);
		res->attempts[res->nattempts - 1].timed_out =
		    rc == CURLE_OPERATION_TIMEDOUT;
		res->attempts[res->nattempts - 1].path = path;
		res->path = path;
		if (id != 0 && (path == PW_PATH_SERVICE ||
		    path == PW_PATH_CACHE)) {
			/* The service's proxy: the outcome is the service's. */
			if (kind != PW_FAIL_TARGET && (r =
			    pw_service_report(ctx, id, kind == PW_FAIL_NONE,
			    kind == PW_FAIL_NONE ? start * 1000 : -1, kind ?
			    errbuf : NULL)) != 0)
				goto out;
		} else if (id != 0) {
			outcome = kind == PW_FAIL_NONE ? PW_REPORT_OK :
			    kind == PW_FAIL_PROXY ? PW_REPORT_FAIL :
			    PW_REPORT_NEUTRAL;
			if ((r = pw_pool_report(ctx, id, outcome, kind ==
			    PW_FAIL_NONE ? start * 1000 : -1)) != 0)
				goto out;
		}
		res->body_started = x.started;
		if (kind == PW_FAIL_NONE || kind == PW_FAIL_TARGET ||
		    x.started) {
			res->proxy_id = id;
			res->proxy = pw_xstrdup(shown);
			res->status = status;
			break;
		}
	}

	if (res->nattempts == 0)
		goto out;
	kind = res->attempts[res->nattempts - 1].kind;
	if (kind == PW_FAIL_TARGET)
		r = pw_failf(&ctx->err, PW_ETARGET, "%s: %s", url,
		    res->attempts[res->nattempts - 1].error);
	else if (kind == PW_FAIL_PROXY && res->body_started)
		r = pw_failf(&ctx->err, PW_EALLFAILED, "%s: transfer broke "
		    "off after output began: %s", url,
		    res->attempts[res->nattempts - 1].error);
	else if (kind == PW_FAIL_PROXY)
		r = pw_failf(&ctx->err, PW_EALLFAILED, "%s: every proxy "
		    "tried failed (%zu %s)", url, res->nattempts,
		    res->nattempts == 1 ? "attempt" : "attempts");
out:
	/* However it ended: a failed write has its figures too. */
	if (performed && o->figures)
		last_info(h, o, res);
	free(url);
	free(shown);
	free(tried);
	free(svc_tried);
	curl_slist_free_all(hl);
	if (h != ctx->curl)
		curl_easy_cleanup(h);
	else
		curl_easy_reset(h);	/* nothing left pointing at our stack */
	pw_addr_release(&forced);
	return r;
refused:
	pw_addr_release(&forced);
	free(url);
	return r;
}

void
pw_fetch_release(struct pw_ctx *ctx)
{
	if (ctx->curl != NULL)
		curl_easy_cleanup(ctx->curl);
	ctx->curl = NULL;
}

void
pw_fetch_result_release(struct pw_fetch_result *res)
{
	for (size_t i = 0; i < res->nattempts; i++) {
		free(res->attempts[i].proxy);
		free(res->attempts[i].error);
	}
	free(res->attempts);
	free(res->proxy);
	free(res->url_effective);
	free(res->content_type);
	free(res->remote_ip);
	free(res->local_ip);
	free(res->scheme);
	free(res->method);
	free(res->headers);
	free(res->fallback_why);
	memset(res, 0, sizeof *res);
}

/* ------------------------------------------------------------- headers */

/*
 * The header fields of the last response in a block (redirects and 100
 * Continue come first): names in lower case, and a repeated name's
 * values joined by ", " in its first place. A NUL ends one.
 */
struct hfield {
	size_t		 name;		/* in names */
	size_t		 nlen;
	const char	*v;		/* in the block */
	size_t		 vlen;
	size_t		 next;		/* the next of this name; 0: none */
	size_t		 last;		/* (the first) the last of its name */
	int		 dup;		/* not the first of its name */
};

struct hfields {
	struct pw_buf	 names;
	struct hfield	*f;
	size_t		 n;
};

static void
hfields_parse(struct hfields *h, const char *p, size_t n)
{
	const char	*last = p, *e = p + n;
	size_t		 lines = 1, *tab, mask;

	pw_buf_init(&h->names);
	h->n = 0;
	for (const char *s = p, *eol; s < e; s = eol + 1) {
		if (e - s >= 5 && memcmp(s, "HTTP/", 5) == 0)
			last = s;
		lines++;
		if ((eol = memchr(s, '\n', e - s)) == NULL)
			break;
	}
	h->f = pw_xcalloc(lines, sizeof *h->f);
	/* Names by a hash of them: a block may hold thousands. */
	for (mask = 1; mask < lines * 2; mask <<= 1)
		;
	tab = pw_xcalloc(mask--, sizeof *tab);
	for (const char *s = last; s < e;) {
		const char *eol = memchr(s, '\n', e - s), *colon, *v, *ve;
		struct hfield *f;
		uint32_t hash = 2166136261u;	/* FNV-1a */
		size_t at, k;
		char *name;

		if (eol == NULL)
			eol = e;
		colon = memchr(s, ':', eol - s);
		if (colon == NULL || (eol - s >= 5 &&
		    memcmp(s, "HTTP/", 5) == 0)) {
			s = eol + 1;
			continue;
		}
		v = colon + 1;
		ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' ||
		    ve[-1] == '\t'))
			ve--;
		f = &h->f[h->n];
		f->v = v;
		f->vlen = strnlen(v, ve - v);
		f->name = h->names.len;
		f->nlen = strnlen(s, colon - s);
		pw_buf_add(&h->names, s, f->nlen);
		name = h->names.data + f->name;
		for (k = 0; k < f->nlen; k++) {
			if (name[k] >= 'A' && name[k] <= 'Z')
				name[k] += 32;
			hash = (hash ^ (unsigned char)name[k]) * 16777619u;
		}
		for (at = hash & mask; tab[at] != 0; at = (at + 1) & mask) {
			struct hfield *g = &h->f[tab[at] - 1];
			if (g->nlen == f->nlen && memcmp(h->names.data +
			    g->name, h->names.data + f->name, f->nlen) == 0)
				break;
		}
		if (tab[at] == 0) {
			tab[at] = h->n + 1;
			f->last = h->n;
		} else {
			struct hfield *g = &h->f[tab[at] - 1];
			h->f[g->last].next = h->n;
			g->last = h->n;
			f->dup = 1;
		}
		h->n++;
		s = eol + 1;
	}
	free(tab);
}

static void
hfields_release(struct hfields *h)
{
	pw_buf_release(&h->names);
	free(h->f);
}

/* The value of field i and the rest of its name, joined, into b. */
static void
hfield_value(const struct hfields *h, size_t i, struct pw_buf *b)
{
	pw_buf_reset(b);
	for (;;) {
		const struct hfield *f = &h->f[i];

		pw_buf_add(b, f->v, f->vlen);
		if ((i = f->next) == 0)
			break;
		pw_buf_add(b, ", ", 2);
	}
}

void
pw_headers_json(struct pw_buf *out, const char *p, size_t n)
{
	struct hfields	h;
	struct pw_buf	val;
	int		first = 1;

	hfields_parse(&h, p, n);
	pw_buf_init(&val);
	pw_buf_addc(out, '{');
	for (size_t i = 0; i < h.n; i++) {
		const struct hfield *f = &h.f[i];

		if (f->dup)
			continue;
		if (!first)
			pw_buf_addc(out, ',');
		first = 0;
		pw_buf_json(out, h.names.data + f->name, f->nlen);
		pw_buf_addc(out, ':');
		/* One: straight from the block. */
		if (f->next == 0)
			pw_buf_json(out, f->v, f->vlen);
		else {
			hfield_value(&h, i, &val);
			pw_buf_json(out, val.data, val.len);
		}
	}
	pw_buf_addc(out, '}');
	pw_buf_release(&val);
	hfields_release(&h);
}

char *
pw_header_get(const char *p, size_t n, const char *name)
{
	struct hfields	h;
	struct pw_buf	val;
	char		*r = NULL;

	hfields_parse(&h, p, n);
	pw_buf_init(&val);
	for (size_t i = 0; i < h.n && r == NULL; i++)
		if (!h.f[i].dup && h.f[i].nlen == strlen(name) &&
		    memcmp(h.names.data + h.f[i].name, name, h.f[i].nlen) ==
		    0) {
			hfield_value(&h, i, &val);
			r = pw_buf_detach(&val);
		}
	pw_buf_release(&val);
	hfields_release(&h);
	return r;
}

char *
pw_header_first(const char *p, size_t n, const char *name)
{
	struct hfields	h;
	char		*r = NULL;
	size_t		 len = strlen(name);

	hfields_parse(&h, p, n);
	for (size_t i = 0; i < h.n && r == NULL; i++)
		if (!h.f[i].dup && h.f[i].nlen == len &&
		    strncasecmp(h.names.data + h.f[i].name, name, len) == 0)
			r = pw_xstrndup(h.f[i].v, h.f[i].vlen);
	hfields_release(&h);
	return r;
}
