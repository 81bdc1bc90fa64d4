/*
 * fuzz_api.c -- libFuzzer target for pw serve's request pipeline
 * (lib/api.c, lib/delegate.c): the router, the path's {id}, the query
 * parameters, the headers it reads, and the JSON bodies of every route.
 *
 * The seam is the table of libmicrohttpd functions (lib/httpd.h): the
 * server is started as pw serve starts it, but MHD_start_daemon is ours.
 * It keeps the access handler and the completion callback, and each
 * request of an input is handed to them as libmicrohttpd would (headers,
 * then the body, then the final call), with no socket. The process runs
 * in a network namespace of its own where only loopback exists and
 * nothing listens: a handler that fetches, checks health or delegates
 * fails at once, and nothing leaves the machine.
 *
 * An input is up to four requests separated by NUL bytes; each is
 *   METHOD SP TARGET LF *(NAME ":" VALUE LF) LF BODY
 * After an input the pool and the settings are emptied again. Checked for
 * every request:
 *   - exactly one response is queued, with a status from 100 to 599;
 *   - it carries a sane X-Request-ID, the client's when that was sane;
 *   - every answer but 204 and the documentation is the JSON envelope:
 *     "status" is "error" exactly when the status is 400 or more, an
 *     error has a code and a message, and meta.request_id is the header;
 *   - 405 comes with Allow, 201 with Location;
 *   - a password given in the "url" of a body (and nowhere else in the
 *     input) is never in a response.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/httpd.h"

#define MARK		"Zq9xPASSWORDx"
#define NREQ_MAX	4
#define NKV_MAX		32

struct kv {
	char	*k;
	char	*v;
};

static void
kv_free(struct kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].k);
		free(kv[i].v);
	}
}

/* What libmicrohttpd would hold for one connection. */
struct MHD_Connection {
	struct kv		 hdr[NKV_MAX];
	size_t			 nhdr;
	struct kv		 arg[NKV_MAX];
	size_t			 narg;
	struct sockaddr_in	 peer;
	union MHD_ConnectionInfo info;
	/* The response queued. */
	int			 queued;
	unsigned int		 status;
	char			*body;
	size_t			 len;
	struct kv		 rhdr[NKV_MAX];
	size_t			 nrhdr;
};

struct MHD_Response {
	char		*body;
	size_t		 len;
	struct kv	 hdr[NKV_MAX];
	size_t		 nhdr;
};

static MHD_AccessHandlerCallback	 handler;
static void				*handler_cls;
static MHD_RequestCompletedCallback	 completed;
static void				*completed_cls;
/* MHD_OPTION_UNESCAPE_CALLBACK's function (microhttpd.h has no name). */
typedef size_t unescape_fn(void *, struct MHD_Connection *, char *);
static unescape_fn			*unescaper;
static void				*unescaper_cls;
static char				*state_dir;
static char				*state_path;
static struct pw_ctx			 admin;

static void
die(const char *what, const char *in, const char *got)
{
	fprintf(stderr, "fuzz_api: %s\n--- request\n%s\n--- response\n%s\n",
	    what, in, got ? got : "(none)");
	abort();
}

/* ------------------------------------------- libmicrohttpd, faked */

static struct MHD_Daemon *
fake_start(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
    void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
	va_list	ap;
	int	opt;

	(void)flags;
	(void)port;
	(void)apc;
	(void)apc_cls;
	handler = dh;
	handler_cls = dh_cls;
	/* The options pw_serve_start gives, in its order. */
	va_start(ap, dh_cls);
	while ((opt = va_arg(ap, int)) != MHD_OPTION_END) {
		switch (opt) {
		case MHD_OPTION_EXTERNAL_LOGGER:
			(void)va_arg(ap, void *);
			(void)va_arg(ap, void *);
			break;
		case MHD_OPTION_NOTIFY_COMPLETED:
			completed = va_arg(ap, MHD_RequestCompletedCallback);
			completed_cls = va_arg(ap, void *);
			break;
		case MHD_OPTION_UNESCAPE_CALLBACK:
			unescaper = va_arg(ap, unescape_fn *);
			unescaper_cls = va_arg(ap, void *);
			break;
		case MHD_OPTION_NOTIFY_CONNECTION:
			/*
			 * The slow-client watch: a fake connection has no
			 * descriptor to watch, and no socket context.
			 */
			(void)va_arg(ap, MHD_NotifyConnectionCallback);
			(void)va_arg(ap, void *);
			break;
		case MHD_OPTION_LISTEN_SOCKET:
			/* Nothing listens: a fetch of it is refused. */
			close(va_arg(ap, int));
			break;
		case MHD_OPTION_THREAD_POOL_SIZE:
		case MHD_OPTION_CONNECTION_TIMEOUT:
		case MHD_OPTION_CONNECTION_LIMIT:
			(void)va_arg(ap, unsigned int);
			break;
		default:
			fprintf(stderr, "fuzz_api: MHD option %d unknown "
			    "to the fake: teach it\n", opt);
			abort();
		}
	}
	va_end(ap);
	return (struct MHD_Daemon *)&handler;
}

static struct MHD_Response *
fake_response(size_t len, void *buf, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response	*r = pw_xcalloc(1, sizeof *r);

	(void)mode;
	r->body = pw_xmalloc(len + 1);
	memcpy(r->body, buf, len);
	r->body[len] = '\0';
	r->len = len;
	return r;
}

static enum MHD_Result
fake_add_header(struct MHD_Response *r, const char *k, const char *v)
{
	if (r->nhdr == NKV_MAX)
		abort();
	r->hdr[r->nhdr].k = pw_xstrdup(k);
	r->hdr[r->nhdr++].v = pw_xstrdup(v);
	return MHD_YES;
}

static enum MHD_Result
fake_queue(struct MHD_Connection *c, unsigned int status,
    struct MHD_Response *r)
{
	if (c->queued++)
		die("a second response queued", "", r->body);
	c->status = status;
	c->body = pw_xstrdup(r->body);
	c->len = r->len;
	for (size_t i = 0; i < r->nhdr; i++) {
		c->rhdr[i].k = pw_xstrdup(r->hdr[i].k);
		c->rhdr[i].v = pw_xstrdup(r->hdr[i].v);
	}
	c->nrhdr = r->nhdr;
	return MHD_YES;
}

static void
fake_destroy(struct MHD_Response *r)
{
	kv_free(r->hdr, r->nhdr);
	free(r->body);
	free(r);
}

static const char *
fake_lookup(struct MHD_Connection *c, enum MHD_ValueKind kind,
    const char *k)
{
	if (kind == MHD_HEADER_KIND) {
		for (size_t i = 0; i < c->nhdr; i++)
			if (strcasecmp(c->hdr[i].k, k) == 0)
				return c->hdr[i].v;
	} else if (kind == MHD_GET_ARGUMENT_KIND) {
		for (size_t i = 0; i < c->narg; i++)
			if (strcmp(c->arg[i].k, k) == 0)
				return c->arg[i].v;
	}
	return NULL;
}

static const union MHD_ConnectionInfo *
fake_info(struct MHD_Connection *c, enum MHD_ConnectionInfoType t, ...)
{
	if (t != MHD_CONNECTION_INFO_CLIENT_ADDRESS)
		return NULL;
	c->info.client_addr = (struct sockaddr *)&c->peer;
	return &c->info;
}

static enum MHD_Result
fake_add_connection(struct MHD_Daemon *d, MHD_socket fd,
    const struct sockaddr *sa, socklen_t sl)
{
	(void)d;
	(void)sa;
	(void)sl;
	close(fd);
	return MHD_NO;
}

static void
fake_stop(struct MHD_Daemon *d)
{
	(void)d;
}

/* ------------------------------------------------------ the sandbox */

/* Only loopback, up, and nothing else: no packet can leave. */
static void
sandbox(void)
{
	struct ifreq	ifr;
	int		fd;

	if (unshare(CLONE_NEWNET) != 0 &&
	    unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
		fprintf(stderr, "fuzz_api: cannot make a network namespace "
		    "(%s); refusing to run with the network\n",
		    strerror(errno));
		exit(1);
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
		abort();
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
		abort();
	close(fd);
}

static void
quiet(void *arg, int level, const char *msg)
{
	(void)level;
	(void)msg;
	(void)arg;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The state directory goes at exit (a crash leaves it, for a look). */
static void
remove_state(void)
{
	nftw(state_dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pw_serve_opts	 o = { .listen = "127.0.0.1:8080",
				    .threads = 1 };
	struct pw_server	*s;
	struct pw_err		 err;
	char			 tmpl[] = "/tmp/fuzz-api-XXXXXX";

	(void)argc;
	(void)argv;
	sandbox();
	if (mkdtemp(tmpl) == NULL)
		abort();
	state_dir = pw_xstrdup(tmpl);
	state_path = pw_xasprintf("%s/state.db", state_dir);
	atexit(remove_state);
	setenv("PW_SECRET_KEY", "000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f", 1);
	pw_log_set(quiet, NULL, 0);
	if (pw_httpd_init(&err) != 0) {
		fprintf(stderr, "fuzz_api: %s\n", err.msg);
		exit(1);
	}
	pw_mhd.start_daemon = fake_start;
	pw_mhd.stop_daemon = fake_stop;
	pw_mhd.add_connection = fake_add_connection;
	pw_mhd.create_response_from_buffer = fake_response;
	pw_mhd.add_response_header = fake_add_header;
	pw_mhd.queue_response = fake_queue;
	pw_mhd.destroy_response = fake_destroy;
	pw_mhd.lookup_connection_value = fake_lookup;
	pw_mhd.get_connection_info = fake_info;
	if (pw_open(&admin, state_path, PW_OPEN_RW) != 0 ||
	    pw_serve_start(&admin, state_path, &o, &s) != 0) {
		fprintf(stderr, "fuzz_api: %s\n", admin.err.msg);
		exit(1);
	}
	if (handler == NULL || completed == NULL)
		abort();
	return 0;
}

/* ------------------------------------------------------- a request */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Percent-decode s (and '+' when plus), as libmicrohttpd does: '+' first,
 * then the server's unescape callback when it gave one.
 */
static char *
unescape(const char *s, size_t n, int plus)
{
	char	*out = pw_xmalloc(n + 1), *o = out;

	if (unescaper != NULL) {
		for (size_t i = 0; i < n; i++)
			out[i] = plus && s[i] == '+' ? ' ' : s[i];
		out[n] = '\0';
		unescaper(unescaper_cls, NULL, out);
		return out;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
		    hexval(s[i + 2]) >= 0) {
			*o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else if (plus && s[i] == '+')
			*o++ = ' ';
		else
			*o++ = s[i];
	}
	*o = '\0';
	return out;
}

static void
add_arg(struct MHD_Connection *c, const char *s, size_t n)
{
	const char	*eq = memchr(s, '=', n);

	if (n == 0 || c->narg == NKV_MAX)
		return;
	if (eq == NULL) {
		c->arg[c->narg].k = unescape(s, n, 1);
		c->arg[c->narg++].v = pw_xstrdup("");
		return;
	}
	c->arg[c->narg].k = unescape(s, eq - s, 1);
	c->arg[c->narg++].v = unescape(eq + 1, s + n - eq - 1, 1);
}

static void
conn_free(struct MHD_Connection *c)
{
	kv_free(c->hdr, c->nhdr);
	kv_free(c->arg, c->narg);
	kv_free(c->rhdr, c->nrhdr);
	free(c->body);
	free(c);
}

static const char *
resp_header(const struct MHD_Connection *c, const char *k)
{
	for (size_t i = 0; i < c->nrhdr; i++)
		if (strcasecmp(c->rhdr[i].k, k) == 0)
			return c->rhdr[i].v;
	return NULL;
}

static int
rid_sane(const char *s)
{
	size_t	n = strlen(s);

	if (n == 0 || n > 128)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("-_.:", *s)))
			return 0;
	return 1;
}

static int
is_type(const cJSON *j, int type)
{
	return j != NULL && (j->type & 0xff) == type;
}

static void
check_envelope(const struct MHD_Connection *c, const char *in,
    const char *rid)
{
	cJSON		*env, *st, *meta, *mrid, *e, *code, *msg;
	int		 error = c->status >= 400;

	env = cJSON_ParseWithLength(c->body, c->len);
	if (!is_type(env, cJSON_Object))
		die("the answer is not a JSON object", in, c->body);
	st = cJSON_GetObjectItemCaseSensitive(env, "status");
	if (!is_type(st, cJSON_String) || strcmp(st->valuestring, error ?
	    "error" : "success") != 0)
		die("envelope status does not match the HTTP status", in,
		    c->body);
	if (cJSON_GetObjectItemCaseSensitive(env, "data") == NULL)
		die("envelope without data", in, c->body);
	e = cJSON_GetObjectItemCaseSensitive(env, "error");
	if (error) {
		code = cJSON_GetObjectItemCaseSensitive(e, "code");
		msg = cJSON_GetObjectItemCaseSensitive(e, "message");
		if (!is_type(code, cJSON_String) || code->valuestring[0] ==
		    '\0' || !is_type(msg, cJSON_String) ||
		    msg->valuestring[0] == '\0')
			die("error without a code or a message", in, c->body);
	} else if (!is_type(e, cJSON_NULL))
		die("success with an error", in, c->body);
	meta = cJSON_GetObjectItemCaseSensitive(env, "meta");
	mrid = cJSON_GetObjectItemCaseSensitive(meta, "request_id");
	if (!is_type(mrid, cJSON_String) || strcmp(mrid->valuestring, rid))
		die("meta.request_id is not X-Request-ID", in, c->body);
	cJSON_Delete(env);
}

/* Does the password MARK come only in a body's "url" member? */
static int
mark_in_url_only(const char *in, const char *body, size_t blen)
{
	const char	*first = strstr(in, MARK);
	cJSON		*j, *u;
	int		 r = 0;

	if (first == NULL || strstr(first + 1, MARK) != NULL || first < body)
		return 0;
	if ((j = cJSON_ParseWithLength(body, blen)) == NULL)
		return 0;
	u = cJSON_GetObjectItemCaseSensitive(j, "url");
	if (is_type(u, cJSON_String) && strstr(u->valuestring, MARK) != NULL)
		r = strstr(u->valuestring, ":" MARK "@") != NULL;
	cJSON_Delete(j);
	return r;
}

static void
one_request(const char *in, size_t n)
{
	static const char *const methods[] = { "GET", "POST", "PUT",
	    "DELETE", "OPTIONS", "HEAD", "PATCH" };
	struct MHD_Connection	*c = pw_xcalloc(1, sizeof *c);
	char			*text = pw_xstrndup(in, n), *method, *url;
	const char		*p = text, *e = text + strlen(text), *sp, *nl;
	const char		*body, *rid, *given, *q, *ct;
	size_t			 blen, up;
	void			*cls = NULL;
	const char		*m;

	c->peer.sin_family = AF_INET;
	c->peer.sin_addr.s_addr = htonl(0x7f000001);
	/* The request line. */
	nl = memchr(p, '\n', e - p);
	if (nl == NULL)
		nl = e;
	sp = memchr(p, ' ', nl - p);
	if (sp == NULL)
		sp = nl;
	m = NULL;
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if ((size_t)(sp - p) == strlen(methods[i]) &&
		    memcmp(p, methods[i], sp - p) == 0)
			m = methods[i];
	method = m != NULL ? pw_xstrdup(m) : pw_xstrndup(p, sp - p);
	if (sp < nl)
		sp++;
	q = memchr(sp, '?', nl - sp);
	url = unescape(sp, (q != NULL ? q : nl) - sp, 0);
	if (q != NULL) {
		for (const char *a = q + 1; a < nl;) {
			const char *amp = memchr(a, '&', nl - a);
			if (amp == NULL)
				amp = nl;
			add_arg(c, a, amp - a);
			a = amp + 1;
		}
	}
	/* Headers, to an empty line. */
	p = nl < e ? nl + 1 : e;
	while (p < e && *p != '\n') {
		const char *colon, *v;
		nl = memchr(p, '\n', e - p);
		if (nl == NULL)
			nl = e;
		colon = memchr(p, ':', nl - p);
		if (colon != NULL && colon > p && c->nhdr < NKV_MAX) {
			v = colon + 1;
			while (v < nl && *v == ' ')
				v++;
			c->hdr[c->nhdr].k = pw_xstrndup(p, colon - p);
			c->hdr[c->nhdr++].v = pw_xstrndup(v, nl - v);
		}
		p = nl < e ? nl + 1 : e;
	}
	body = p < e ? p + 1 : e;
	blen = e - body;

	/* As libmicrohttpd calls: headers, the body in pieces, the end. */
	up = 0;
	if (handler(handler_cls, c, url, method, "HTTP/1.1", NULL, &up,
	    &cls) != MHD_YES && !c->queued)
		die("refused without an answer", text, NULL);
	for (size_t off = 0; off < blen && !c->queued;) {
		size_t k = blen - off > 4096 ? 4096 : blen - off;
		up = k;
		handler(handler_cls, c, url, method, "HTTP/1.1", body + off,
		    &up, &cls);
		if (up != 0)
			die("upload not taken", text, NULL);
		off += k;
	}
	up = 0;
	if (!c->queued)
		handler(handler_cls, c, url, method, "HTTP/1.1", NULL, &up,
		    &cls);
	if (c->queued != 1)
		die("no response", text, NULL);
	completed(completed_cls, c, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
	if (cls != NULL)
		die("request not freed", text, NULL);

	/* What every answer holds. */
	if (c->status < 100 || c->status > 599)
		die("status out of range", text, c->body);
	rid = resp_header(c, "X-Request-ID");
	if (rid == NULL || !rid_sane(rid))
		die("no sane X-Request-ID", text, rid);
	given = fake_lookup(c, MHD_HEADER_KIND, "X-Request-ID");
	if (given != NULL && rid_sane(given) && strcmp(given, rid) != 0)
		die("the client's X-Request-ID not kept", text, rid);
	if (c->status == 405 && resp_header(c, "Allow") == NULL)
		die("405 without Allow", text, c->body);
	if (c->status == 201 && resp_header(c, "Location") == NULL)
		die("201 without Location", text, c->body);
	ct = resp_header(c, "Content-Type");
	if (c->status == 204) {
		if (c->len != 0)
			die("204 with a body", text, c->body);
	} else if (ct != NULL && strcmp(ct, "application/json") == 0)
		check_envelope(c, text, rid);
	else if (strncmp(url, "/api/", 5) == 0)
		die("an API answer that is not JSON", text, c->body);
	if (mark_in_url_only(text, body, blen)) {
		for (size_t i = 0; i < c->nrhdr; i++)
			if (strstr(c->rhdr[i].v, MARK) != NULL)
				die("a password in a response header", text,
				    c->rhdr[i].v);
		if (strstr(c->body, MARK) != NULL)
			die("a password in a response", text, c->body);
	}
	conn_free(c);
	free(method);
	free(url);
	free(text);
}

/* ------------------------------------------------ back to nothing */

struct ids {
	int64_t	*v;
	size_t	 n;
};

static int
collect(void *arg, const struct pw_proxy *p)
{
	struct ids	*ids = arg;

	ids->v = pw_xrealloc(ids->v, (ids->n + 1) * sizeof *ids->v);
	ids->v[ids->n++] = p->id;
	return 0;
}

static void
reset(void)
{
	struct pw_filter	 f;
	struct ids		 ids = { NULL, 0 };

	pw_filter_init(&f);
	if (pw_pool_each(&admin, &f, 0, collect, &ids) != 0)
		abort();
	if (ids.n > 0 && pw_pool_remove(&admin, ids.v, ids.n) != 0)
		abort();
	free(ids.v);
	for (const struct pw_config_key *k = pw_config_keys(); k->name != NULL;
	    k++)
		(void)pw_config_unstore(&admin, k->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data, *e = p + size;
	int		 nreq = 0, wrote = 0;

	if (size > 64 * 1024)
		return 0;
	while (p < e && nreq < NREQ_MAX) {
		const char *nul = memchr(p, '\0', e - p);
		if (nul == NULL)
			nul = e;
		if (nul > p) {
			one_request(p, nul - p);
			wrote |= p[0] != 'G';
			nreq++;
		}
		p = nul + 1;
	}
	if (wrote)
		reset();
	return 0;
}
