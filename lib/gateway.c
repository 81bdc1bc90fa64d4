/*
 * gateway.c -- pw serve --gateway: a local rotating proxy. Clients speak
 * HTTP proxy (CONNECT, absolute-form requests) or SOCKS5 to it; each
 * tunnel, and each plain request, goes out through a proxy of the pool.
 *
 * One thread, one epoll set, no thread per connection. Upstream connects
 * run on libcurl's multi interface with CURLOPT_CONNECT_ONLY through the
 * chosen proxy (whatever its scheme and credentials); once the tunnel is
 * up the gateway takes the socket (CURLINFO_ACTIVESOCKET) and relays on
 * it itself, byte for byte. A connect that fails before the tunnel is up
 * is tried again through the next eligible proxy, up to the retries.
 * Proxies are chosen from the pool in memory (view.c), the API server's
 * when it runs beside the gateway, and outcomes go back to it: the state
 * file is written in batches, not once a tunnel.
 *
 * Memory is bounded per connection: bytes read from one side are written
 * to the other at once; what the other side will not take now is kept
 * (at most one read, SCRATCH bytes) and that side is not read again
 * until it is gone. An idle tunnel holds no buffer and, unless its proxy
 * is https (TLS inside libcurl), no libcurl handle.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "wire.h"

#define SCRATCH		(64 * 1024)
#define TICK_MS		1000
#define BUCKETS		1024
#define UPSTREAM_MAX	1024	/* upstreams with their own failure count */

enum ev_kind { EV_LISTEN, EV_CLIENT, EV_UP, EV_CURL, EV_WAKE, EV_DEAD };

struct ev {
	int		 kind;
	int		 fd;
	int		 reg;		/* in the epoll set */
	uint32_t	 mask;		/* what epoll watches now */
	struct conn	*c;
	struct ev	*next_dead;
	int		 socks_only;	/* EV_LISTEN: the --gateway-socks one */
};

/*
 * S_DEAD: closed, its memory kept until the events of this round are
 * handled (one of them may still name it).
 */
enum state { S_SNIFF, S_HTTP_HEAD, S_SOCKS_GREET, S_SOCKS_AUTH,
    S_SOCKS_REQ, S_CONNECTING, S_TUNNEL, S_HTTP, S_CLOSING, S_DEAD };

/* Bytes that one side would not take yet. */
struct out {
	char	*p;
	size_t	 off, len;
};

struct client {
	struct client	*next;
	char		 addr[INET6_ADDRSTRLEN];
	int		 n;
};

struct conn {
	struct ev		 cev, uev;
	struct pw_gateway	*g;
	struct conn		*prev, *next;
	struct client		*cl;
	int			 state;
	int			 socks;
	int			 keepalive_wait;	/* between requests */
	char			*in;		/* handshake, request heads */
	size_t			 inlen;
	struct out		 to_c, to_u;
	int			 c_eof, u_eof, c_shut, u_shut;
	char			 host[PW_WIRE_NAME_MAX + 1];
	int			 port;
	struct pw_wire_user	 u;
	struct pw_wire_req	 req;
	int			 plain;		/* an absolute-form request */
	/* The upstream: the proxy, libcurl while it connects (or TLS). */
	CURL			*h;
	struct pw_proxy		 px;
	int			 have_px;
	int64_t			*tried;
	int			 ntried;
	int64_t			 t0, deadline, last;
	char			 errbuf[CURL_ERROR_SIZE];
	int			 counted;	/* in the active tunnels */
	/* Plain HTTP: where the request and the response end. */
	struct pw_wire_body	 qb, rb;
	int			 q_done, r_done, r_inhead, r_close;
	char			*rh;
	size_t			 rhl;
};

struct user {
	char	*name;
	char	*hash;
};

struct pw_gateway {
	struct pw_ctx		 ctx;	/* the loop thread's own */
	/*
	 * The pool in memory (ctx.view): the API server's beside it, or
	 * the gateway's own, with a flusher of its own.
	 */
	struct pw_view		*own_view;
	struct pw_housekeep	*hk;
	char			*state_path;
	pthread_t		 thread;
	int			 ep, wake;
	struct ev		 lev[2], wev;
	char			 addr[2][INET6_ADDRSTRLEN + 8];
	CURLM			*multi;
	int64_t			 curl_deadline;	/* < 0: none */
	struct conn		*conns, *dead;
	struct ev		*dead_evs;
	struct client		*clients[BUCKETS];
	int			 nconns;
	char			*scratch;
	int			 tries;
	int64_t			 connect_ms;
	int64_t			 max_conns, max_per_client, idle_ms,
				 handshake_ms;
	char			*users_value;
	struct user		*users;
	size_t			 nusers;
	int			 loopback;
	const char		*public_spec, *public_what;	/* start only */
	int			 log;
	int64_t			 next_tick;
	/* Metrics: written by the loop, read by the API's threads. */
	_Atomic int64_t		 m_active, m_opened, m_failed, m_failovers,
				 m_up, m_down, m_auth_failed, m_refused;
	pthread_mutex_t		 mu;	/* the per-upstream failures */
	struct {
		int64_t	id, n;
	}			 up_fail[UPSTREAM_MAX];
	size_t			 nup_fail;
};

/* The gateway running in this process, for /metrics. */
static pthread_mutex_t	 running_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pw_gateway *running;

static void	conn_close(struct conn *);
static void	advance(struct conn *);
static void	attempt(struct conn *);
static void	rearm(struct conn *);

/* ------------------------------------------------------------- helpers */


static void
addr_text(const struct sockaddr_storage *ss, char *out, size_t n, int port)
{
	char	host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const void *)ss;
		inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
		if (port)
			snprintf(out, n, "[%s]:%d", host, ntohs(a6->sin6_port));
		else
			snprintf(out, n, "%s", host);
	} else {
		const struct sockaddr_in *a4 = (const void *)ss;
		inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
		if (port)
			snprintf(out, n, "%s:%d", host, ntohs(a4->sin_port));
		else
			snprintf(out, n, "%s", host);
	}
}

/* Parse the serve.gateway_users value into g->users. */
static void
users_load(struct pw_gateway *g, const char *v)
{
	for (size_t i = 0; i < g->nusers; i++) {
		free(g->users[i].name);
		free(g->users[i].hash);
	}
	free(g->users);
	g->users = NULL;
	g->nusers = 0;
	free(g->users_value);
	g->users_value = pw_xstrdup(v);
	while (*v != '\0') {
		size_t n = strcspn(v, ","), ul = strcspn(v, ":");
		if (ul < n) {
			g->users = pw_xrealloc(g->users, (g->nusers + 1) *
			    sizeof *g->users);
			g->users[g->nusers].name = pw_xstrndup(v, ul);
			g->users[g->nusers].hash = pw_xstrndup(v + ul + 1,
			    n - ul - 1);
			g->nusers++;
		}
		v += n + (v[n] == ',');
	}
}

/*
 * Whether name and pass may use the gateway, with the controls of name
 * in *u. *bad_controls is set when the name itself is malformed (why in
 * err). Without users configured, anyone may, and only the controls
 * count.
 */
static int
auth_check(struct pw_gateway *g, const char *name, const char *pass,
    struct pw_wire_user *u, int *bad_controls, struct pw_err *err)
{
	const char	*hash = NULL;
	size_t		 ul = strcspn(name, "-");
	int		 ok;

	*bad_controls = 0;
	if (g->nusers > 0) {
		/*
		 * The user first: who has not authenticated learns nothing
		 * about the controls. An unknown user costs what a wrong
		 * password does.
		 */
		for (size_t i = 0; i < g->nusers; i++)
			if (strlen(g->users[i].name) == ul &&
			    strncmp(g->users[i].name, name, ul) == 0)
				hash = g->users[i].hash;
		ok = pw_crypto_pass_verify(hash != NULL ? hash :
		    g->users[0].hash, pass);
		if (!ok || hash == NULL)
			return 0;
	}
	if (pw_wire_user(name, u, err) != 0) {
		*bad_controls = 1;
		return 0;
	}
	return 1;
}

static void
report(struct pw_gateway *g, int64_t id, int outcome, double ms)
{
	/* In the view: the flusher writes it with the rest. */
	pw_pool_report(&g->ctx, id, outcome, ms);
	if (outcome == PW_REPORT_FAIL) {
		size_t i;
		pthread_mutex_lock(&g->mu);
		for (i = 0; i < g->nup_fail; i++)
			if (g->up_fail[i].id == id)
				break;
		if (i == g->nup_fail && i < UPSTREAM_MAX) {
			g->up_fail[i].id = id;
			g->up_fail[i].n = 0;
			g->nup_fail++;
		}
		if (i < UPSTREAM_MAX)
			g->up_fail[i].n++;
		pthread_mutex_unlock(&g->mu);
	}
}

/* ----------------------------------------------------------- clients */

static unsigned int
bucket(const char *s)
{
	unsigned int	h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h % BUCKETS;
}

static struct client *
client_get(struct pw_gateway *g, const char *addr)
{
	struct client	**pp = &g->clients[bucket(addr)], *cl;

	for (cl = *pp; cl != NULL; cl = cl->next)
		if (strcmp(cl->addr, addr) == 0)
			return cl;
	cl = pw_xcalloc(1, sizeof *cl);
	snprintf(cl->addr, sizeof cl->addr, "%s", addr);
	cl->next = *pp;
	*pp = cl;
	return cl;
}

static void
client_put(struct pw_gateway *g, struct client *cl)
{
	struct client	**pp;

	if (--cl->n > 0)
		return;
	for (pp = &g->clients[bucket(cl->addr)]; *pp != cl;
	    pp = &(*pp)->next)
		;
	*pp = cl->next;
	free(cl);
}

/* ---------------------------------------------------------------- I/O */

/* Read from one side: > 0 bytes, 0 end of stream, -1 not now, -2 error. */
static ssize_t
rd(struct conn *c, int up, void *p, size_t n)
{
	ssize_t	r;

	if (up && c->h != NULL) {
		size_t got = 0;
		CURLcode rc = curl_easy_recv(c->h, p, n, &got);
		if (rc == CURLE_AGAIN)
			return -1;
		return rc == CURLE_OK ? (ssize_t)got : -2;
	}
	r = recv(up ? c->uev.fd : c->cev.fd, p, n, 0);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR ? -1 : -2;
	return r;
}

/* Write to one side: bytes taken (0: none now), or -2 on error. */
static ssize_t
wr(struct conn *c, int up, const void *p, size_t n)
{
	ssize_t	r;

	if (up && c->h != NULL) {
		size_t sent = 0;
		CURLcode rc = curl_easy_send(c->h, p, n, &sent);
		if (rc == CURLE_AGAIN)
			return 0;
		return rc == CURLE_OK ? (ssize_t)sent : -2;
	}
	r = send(up ? c->uev.fd : c->cev.fd, p, n, MSG_NOSIGNAL);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR ? 0 : -2;
	return r;
}

/*
 * Send p[0..n) to one side, keeping what it will not take now. -1 when
 * the side is gone.
 */
static int
put(struct conn *c, int up, const void *p, size_t n)
{
	struct out	*o = up ? &c->to_u : &c->to_c;
	ssize_t		 w = 0;

	if (n == 0)
		return 0;
	if (o->len == 0 && (!up || c->uev.fd >= 0)) {
		if ((w = wr(c, up, p, n)) < 0)
			return -1;
		if ((size_t)w == n)
			return 0;
	}
	if (o->off > 0) {
		memmove(o->p, o->p + o->off, o->len);
		o->off = 0;
	}
	o->p = pw_xrealloc(o->p, o->len + n - (size_t)w);
	memcpy(o->p + o->len, (const char *)p + w, n - (size_t)w);
	o->len += n - (size_t)w;
	return 0;
}

/* Write what one side was owed. 0 when all went, 1 when some is left. */
static int
flush_out(struct conn *c, int up)
{
	struct out	*o = up ? &c->to_u : &c->to_c;
	ssize_t		 w;

	while (o->len > 0) {
		if ((w = wr(c, up, o->p + o->off, o->len)) < 0)
			return -1;
		if (w == 0)
			return 1;
		o->off += (size_t)w;
		o->len -= (size_t)w;
	}
	free(o->p);
	o->p = NULL;
	o->off = 0;
	return 0;
}

/*
 * Watch ev for mask. A descriptor with nothing to wait for leaves the
 * set: epoll reports a hang-up even for an empty mask, and the loop
 * would spin on one it cannot act on yet.
 */
static int
ev_set(struct pw_gateway *g, struct ev *ev, uint32_t mask)
{
	struct epoll_event	ee;
	int			r = 0;

	if (ev->fd < 0 || (ev->reg && ev->mask == mask))
		return 0;
	memset(&ee, 0, sizeof ee);
	ee.events = mask;
	ee.data.ptr = ev;
	if (mask == 0) {
		if (ev->reg)
			epoll_ctl(g->ep, EPOLL_CTL_DEL, ev->fd, NULL);
		ev->reg = 0;
	} else if (ev->reg)
		r = epoll_ctl(g->ep, EPOLL_CTL_MOD, ev->fd, &ee);
	else if ((r = epoll_ctl(g->ep, EPOLL_CTL_ADD, ev->fd, &ee)) == 0)
		ev->reg = 1;
	ev->mask = mask;
	return r;
}

static int
ev_add(struct pw_gateway *g, struct ev *ev, uint32_t mask)
{
	ev->reg = 0;
	return ev_set(g, ev, mask);
}

static void
ev_del(struct pw_gateway *g, struct ev *ev)
{
	if (ev->fd >= 0 && ev->reg)
		epoll_ctl(g->ep, EPOLL_CTL_DEL, ev->fd, NULL);
	ev->reg = 0;
	ev->mask = 0;
}

/* What each side's descriptor should wake the loop for, now. */
static void
rearm(struct conn *c)
{
	uint32_t	cm = 0, um = 0;

	switch (c->state) {
	case S_SNIFF:
	case S_HTTP_HEAD:
	case S_SOCKS_GREET:
	case S_SOCKS_AUTH:
	case S_SOCKS_REQ:
		cm = EPOLLIN;
		break;
	case S_TUNNEL:
	case S_HTTP:
		/*
		 * Back-pressure: read one side only when the other is owed
		 * nothing.
		 */
		if (!c->c_eof && c->to_u.len == 0 &&
		    (c->state == S_TUNNEL || !c->q_done))
			cm |= EPOLLIN;
		if (!c->u_eof && c->to_c.len == 0)
			um |= EPOLLIN;
		break;
	default:
		break;
	}
	if (c->to_c.len > 0)
		cm |= EPOLLOUT;
	if (c->to_u.len > 0)
		um |= EPOLLOUT;
	ev_set(c->g, &c->cev, cm);
	ev_set(c->g, &c->uev, um);
}

/* ------------------------------------------------------------ upstream */

/* Drop the upstream connection (libcurl's, or the one taken from it). */
static void
up_close(struct conn *c)
{
	struct pw_gateway	*g = c->g;

	if (c->uev.fd >= 0) {
		ev_del(g, &c->uev);
		if (c->h == NULL)
			close(c->uev.fd);
		c->uev.fd = -1;
		c->uev.mask = 0;
	}
	if (c->h != NULL) {
		curl_multi_remove_handle(g->multi, c->h);
		curl_easy_cleanup(c->h);
		c->h = NULL;
	}
	free(c->to_u.p);
	memset(&c->to_u, 0, sizeof c->to_u);
	c->u_eof = c->u_shut = 0;
	if (c->have_px) {
		pw_proxy_release(&c->px);
		c->have_px = 0;
	}
}

static void
conn_close(struct conn *c)
{
	struct pw_gateway	*g = c->g;

	if (c->state == S_DEAD)
		return;
	up_close(c);
	if (c->cev.fd >= 0) {
		ev_del(g, &c->cev);
		close(c->cev.fd);
		c->cev.fd = -1;
	}
	if (c->counted)
		atomic_fetch_sub(&g->m_active, 1);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		g->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	client_put(g, c->cl);
	g->nconns--;
	free(c->to_c.p);
	free(c->in);
	free(c->rh);
	free(c->tried);
	explicit_bzero(&c->u, sizeof c->u);
	explicit_bzero(&c->req, sizeof c->req);
	c->state = S_DEAD;
	c->next = g->dead;
	g->dead = c;
}

/* Free what was closed in this round. */
static void
reap(struct pw_gateway *g)
{
	while (g->dead != NULL) {
		struct conn *c = g->dead;
		g->dead = c->next;
		free(c);
	}
	while (g->dead_evs != NULL) {
		struct ev *ev = g->dead_evs;
		g->dead_evs = ev->next_dead;
		free(ev);
	}
}

/* Answer the client and close once it is written. */
static void
reply_close(struct conn *c, const void *p, size_t n)
{
	up_close(c);
	c->state = S_CLOSING;
	if (put(c, 0, p, n) != 0 || c->to_c.len == 0) {
		conn_close(c);
		return;
	}
	rearm(c);
}

static void
http_error(struct conn *c, int status, const char *why)
{
	const char	*text;
	char		*msg;

	switch (status) {
	case 400: text = "Bad Request"; break;
	case 407: text = "Proxy Authentication Required"; break;
	case 431: text = "Request Header Fields Too Large"; break;
	case 501: text = "Not Implemented"; break;
	case 503: text = "Service Unavailable"; break;
	default: text = "Bad Gateway"; break;
	}
	msg = pw_xasprintf("HTTP/1.1 %d %s\r\n%s"
	    "Content-Type: text/plain\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\npw gateway: %s\n", status, text,
	    status == 407 ? "Proxy-Authenticate: Basic realm=\"pw\"\r\n" : "",
	    strlen(why) + 13, why);
	reply_close(c, msg, strlen(msg));
	free(msg);
}

static void
socks_reply(struct conn *c, int code)
{
	unsigned char	r[10] = { 5, (unsigned char)code, 0, 1 };

	if (code == 0) {
		if (put(c, 0, r, sizeof r) != 0)
			conn_close(c);
		return;
	}
	reply_close(c, r, sizeof r);
}

/* The connect failed for good: tell the client how. */
static void
fail_client(struct conn *c, int status, int socks_code, const char *why)
{
	atomic_fetch_add(&c->g->m_failed, 1);
	if (c->g->log)
		pw_log(PW_LOG_INFO, "gateway: %s:%d: %s", c->host, c->port,
		    why);
	if (c->socks)
		socks_reply(c, socks_code);
	else
		http_error(c, status, why);
}

/*
 * Whose fault a failed connect was: 1 the proxy's (try another), 0 the
 * target's. *code gets the SOCKS5 reply that says it best.
 */
static int
proxy_fault(CURL *h, CURLcode rc, const struct pw_addr *a, int *code)
{
	long	connect_code = 0, pxerr = 0;

	curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	*code = 1;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		*code = 4;
		return 0;
	case CURLE_PROXY:
		curl_easy_getinfo(h, CURLINFO_PROXY_ERROR, &pxerr);
		switch (pxerr) {
		case CURLPX_REPLY_HOST_UNREACHABLE:
		case CURLPX_RESOLVE_HOST:
			*code = 4;
			return 0;
		case CURLPX_REPLY_NETWORK_UNREACHABLE:
			*code = 3;
			return 0;
		case CURLPX_REPLY_CONNECTION_REFUSED:
			*code = 5;
			return 0;
		case CURLPX_REPLY_TTL_EXPIRED:
			*code = 6;
			return 0;
		case CURLPX_REPLY_GENERAL_SERVER_FAILURE:
			/* How microsocks says a name does not resolve. */
			if (a->scheme == PW_SOCKS5H ||
			    a->scheme == PW_SOCKS4A) {
				*code = 4;
				return 0;
			}
			return 1;
		default:
			return 1;
		}
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		/* A CONNECT refused with 5xx: the proxy could not get there. */
		if (a->scheme <= PW_HTTPS && connect_code >= 500) {
			*code = 4;
			return 0;
		}
		return 1;
	default:
		return 1;
	}
}

/* The request head as it goes upstream (plain HTTP). */
static void
plain_head(struct conn *c, struct pw_buf *b)
{
	const struct pw_wire_req	*q = &c->req;
	const char			*p = c->in, *eol;
	size_t				 i, end = q->head_len;
	int				 via_http;

	via_http = c->px.addr.scheme <= PW_HTTPS;
	eol = memchr(p, '\n', end);
	if (via_http) {
		/* Absolute form, as the client sent it, to the proxy. */
		pw_buf_add(b, p, (size_t)(eol - p) + 1);
		if (c->px.addr.user != NULL) {
			char *cred = pw_xasprintf("%s:%s", c->px.addr.user,
			    c->px.addr.pass ? c->px.addr.pass : "");
			pw_buf_adds(b, "Proxy-Authorization: Basic ");
			pw_wire_base64(b, cred, strlen(cred));
			pw_buf_adds(b, "\r\n");
			explicit_bzero(cred, strlen(cred));
			free(cred);
		}
	} else {
		/*
		 * Origin form to the origin itself, and the target's authority
		 * for Host (RFC 9112 3.2.2: a proxy ignores the Host a request
		 * in absolute form came with, and an HTTP/1.0 one may have
		 * none), without its user information.
		 */
		size_t tend = q->target_off + q->target_len;
		const char *a = p + q->target_off, *ae = p + q->path_off, *at;

		pw_buf_add(b, p, q->target_off);
		if (q->path_off == tend || p[q->path_off] != '/')
			pw_buf_addc(b, '/');
		pw_buf_add(b, p + q->path_off, tend - q->path_off);
		pw_buf_add(b, p + tend, (size_t)(eol - p) + 1 - tend);
		if ((at = memmem(a, ae - a, "://", 3)) != NULL)
			a = at + 3;
		for (at = ae; at > a && at[-1] != '@'; at--)
			;
		if (at > a)
			a = at;
		pw_buf_adds(b, "Host: ");
		pw_buf_add(b, a, ae - a);
		pw_buf_adds(b, "\r\n");
	}
	/* The rest, less what was for the gateway alone. */
	for (i = (size_t)(eol - p) + 1; i < end; ) {
		size_t skip = 0;
		if (q->auth_len && i == q->auth_off)
			skip = q->auth_len;
		else if (!via_http && q->pconn_len && i == q->pconn_off)
			skip = q->pconn_len;
		if (skip) {
			i += skip;
			continue;
		}
		eol = memchr(p + i, '\n', end - i);
		/* The client's Host, replaced above. */
		if (!via_http && eol - (p + i) >= 5 &&
		    strncasecmp(p + i, "host:", 5) == 0) {
			i = (size_t)(eol - p) + 1;
			continue;
		}
		pw_buf_add(b, p + i, (size_t)(eol - p) + 1 - i);
		i = (size_t)(eol - p) + 1;
	}
}

static void
consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->inlen - n);
	c->inlen -= n;
}

static void http_from_client(struct conn *, const char *, size_t);

/* The tunnel (or the connection to the proxy) is up. */
static void
connected(struct conn *c, curl_socket_t sock)
{
	struct pw_gateway	*g = c->g;
	int			 keep_handle = c->px.addr.scheme == PW_HTTPS;
	int			 fd;

	report(g, c->px.id, PW_REPORT_OK, (double)(pw_mono_ms() - c->t0));
	/*
	 * The handle stays in the multi handle while it carries TLS (taking
	 * it out would close its connection); it no longer asks for events.
	 */
	if (keep_handle)
		fd = sock;
	else {
		/*
		 * A plain socket outlives the handle: the handle (and its
		 * buffers) go, so an idle tunnel costs little.
		 */
		fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
		curl_multi_remove_handle(g->multi, c->h);
		epoll_ctl(g->ep, EPOLL_CTL_DEL, sock, NULL);
		curl_easy_cleanup(c->h);
		c->h = NULL;
		if (fd < 0) {
			fail_client(c, 502, 1, "out of descriptors");
			return;
		}
	}
	c->uev.fd = fd;
	if (ev_add(g, &c->uev, 0) != 0) {
		if (c->h == NULL)
			close(fd);
		c->uev.fd = -1;
		fail_client(c, 502, 1, "cannot watch the upstream socket");
		return;
	}
	free(c->tried);
	c->tried = NULL;
	c->last = pw_mono_ms();
	if (!c->counted) {
		c->counted = 1;
		atomic_fetch_add(&g->m_active, 1);
	}
	atomic_fetch_add(&g->m_opened, 1);
	if (g->log)
		pw_log(PW_LOG_INFO, "gateway: %s:%d via proxy %lld", c->host,
		    c->port, (long long)c->px.id);
	if (c->plain) {
		struct pw_buf	b;
		size_t		hl = c->req.head_len;

		pw_buf_init(&b);
		plain_head(c, &b);
		consume(c, hl);
		c->state = S_HTTP;
		pw_wire_body_init(&c->qb, c->req.chunked,
		    c->req.content_length < 0 ? 0 : c->req.content_length);
		c->q_done = pw_wire_body_done(&c->qb);
		c->r_inhead = 1;
		c->r_done = 0;
		c->rhl = 0;
		if (put(c, 1, b.data, b.len) != 0) {
			pw_buf_release(&b);
			conn_close(c);
			return;
		}
		pw_buf_release(&b);
		atomic_fetch_add(&g->m_up, (int64_t)hl);
		/* Body bytes that came with the head. */
		if (c->inlen > 0 && !c->q_done) {
			char *rest = c->in;
			size_t n = c->inlen;
			c->in = pw_xmalloc(PW_WIRE_HEAD_MAX);
			c->inlen = 0;
			http_from_client(c, rest, n);
			free(rest);
			if (c->state != S_HTTP)
				return;
		}
		rearm(c);
		return;
	}
	c->state = S_TUNNEL;
	if (c->socks)
		socks_reply(c, 0);
	else {
		static const char ok[] =
		    "HTTP/1.1 200 Connection established\r\n\r\n";
		if (put(c, 0, ok, sizeof ok - 1) != 0) {
			conn_close(c);
			return;
		}
	}
	/* What the client sent early goes first. */
	if (c->inlen > 0 && put(c, 1, c->in, c->inlen) != 0) {
		conn_close(c);
		return;
	}
	atomic_fetch_add(&g->m_up, (int64_t)c->inlen);
	free(c->in);
	c->in = NULL;
	c->inlen = 0;
	rearm(c);
}

/* libcurl finished the connect of c, with rc. */
static void
connect_done(struct conn *c, CURLcode rc)
{
	struct pw_gateway	*g = c->g;
	curl_socket_t		 sock = CURL_SOCKET_BAD;
	int			 code;
	char			*why;

	if (rc == CURLE_OK) {
		curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &sock);
		if (sock != CURL_SOCKET_BAD) {
			connected(c, sock);
			return;
		}
		rc = CURLE_COULDNT_CONNECT;
	}
	why = pw_redact_url(c->errbuf[0] ? c->errbuf :
	    curl_easy_strerror(rc));
	if (proxy_fault(c->h, rc, &c->px.addr, &code)) {
		report(g, c->px.id, PW_REPORT_FAIL, -1);
		if (g->log)
			pw_log(PW_LOG_INFO, "gateway: %s:%d: proxy %lld "
			    "failed: %s", c->host, c->port,
			    (long long)c->px.id, why);
		up_close(c);
		free(why);
		if (c->ntried < g->tries) {
			atomic_fetch_add(&g->m_failovers, 1);
			attempt(c);
			return;
		}
		fail_client(c, 502, 1, "every proxy tried failed");
		return;
	}
	report(g, c->px.id, PW_REPORT_NEUTRAL, -1);
	up_close(c);
	fail_client(c, 502, code, why);
	free(why);
}

/* Pick a proxy and start connecting through it. */
static void
attempt(struct conn *c)
{
	struct pw_gateway	*g = c->g;
	struct pw_pick		 pk;
	char			*url;
	int			 r, tunnel;

	memset(&pk, 0, sizeof pk);
	pw_filter_init(&pk.filter);
	pk.strategy = c->u.strategy[0] ? c->u.strategy : NULL;
	pk.session = c->u.session[0] ? c->u.session : NULL;
	pk.filter.country = c->u.country[0] ? c->u.country : NULL;
	if (c->tried == NULL)
		c->tried = pw_xcalloc((size_t)g->tries, sizeof *c->tried);
	pk.exclude = c->tried;
	pk.nexclude = (size_t)c->ntried;
	pk.secrets = 1;
	/* What other processes changed meanwhile, checked now and then. */
	if (pw_view_sync(g->ctx.view, 0, &g->ctx.err) != 0) {
		fail_client(c, 502, 1, g->ctx.err.msg);
		return;
	}
	if ((r = pw_pool_next(&g->ctx, &pk, &c->px)) != 0) {
		if (r == PW_EUSAGE)
			fail_client(c, 400, 1, g->ctx.err.msg);
		else if (r == PW_ENOPROXY && c->ntried > 0)
			fail_client(c, 502, 1, "every proxy tried failed");
		else
			fail_client(c, 502, 1, g->ctx.err.msg);
		return;
	}
	c->have_px = 1;
	c->tried[c->ntried++] = c->px.id;
	if ((c->h = curl_easy_init()) == NULL) {
		fail_client(c, 502, 1, "cannot start libcurl");
		return;
	}
	url = pw_xasprintf(strchr(c->host, ':') ? "http://[%s]:%d/" :
	    "http://%s:%d/", c->host, c->port);
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	free(url);
	pw_curl_use_proxy(c->h, &c->px.addr);
	/* A plain request goes to an HTTP proxy as it is: no tunnel. */
	tunnel = !c->plain || c->px.addr.scheme > PW_HTTPS;
	curl_easy_setopt(c->h, CURLOPT_HTTPPROXYTUNNEL, (long)tunnel);
	curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, (long)g->connect_ms);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
	curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http");
	c->errbuf[0] = '\0';
	c->t0 = pw_mono_ms();
	c->state = S_CONNECTING;
	rearm(c);
	if (curl_multi_add_handle(g->multi, c->h) != CURLM_OK) {
		curl_easy_cleanup(c->h);
		c->h = NULL;
		fail_client(c, 502, 1, "cannot start the connect");
	}
}

/* ---------------------------------------------------------- handshakes */

static void
start(struct conn *c)
{
	if (c->port <= 0) {
		fail_client(c, 400, 1, "no port");
		return;
	}
	c->ntried = 0;
	attempt(c);
}

static void
http_request(struct conn *c)
{
	struct pw_gateway	*g = c->g;
	struct pw_err		 err;
	int			 bad;

	memset(&c->u, 0, sizeof c->u);
	if (!c->req.has_auth && g->nusers > 0) {
		atomic_fetch_add(&g->m_auth_failed, 1);
		http_error(c, 407, "proxy authentication required");
		return;
	}
	pw_err_clear(&err);
	if (c->req.has_auth && !auth_check(g, c->req.user, c->req.pass, &c->u,
	    &bad, &err)) {
		if (bad) {
			http_error(c, 400, err.msg);
			return;
		}
		atomic_fetch_add(&g->m_auth_failed, 1);
		http_error(c, 407, "wrong user name or password");
		return;
	}
	explicit_bzero(c->req.pass, sizeof c->req.pass);
	snprintf(c->host, sizeof c->host, "%s", c->req.host);
	c->port = c->req.port;
	c->plain = !c->req.connect;
	if (!c->plain)
		consume(c, c->req.head_len);
	c->keepalive_wait = 0;
	start(c);
}

static void
socks_auth(struct conn *c, const char *user, const char *pass)
{
	static const unsigned char	ok[2] = { 1, 0 }, no[2] = { 1, 1 };
	struct pw_gateway		*g = c->g;
	struct pw_err			 err;
	int				 bad;

	if (!auth_check(g, user, pass, &c->u, &bad, &err)) {
		if (!bad)
			atomic_fetch_add(&g->m_auth_failed, 1);
		else if (g->log)
			pw_log(PW_LOG_INFO, "gateway: %s", err.msg);
		reply_close(c, no, sizeof no);
		return;
	}
	if (put(c, 0, ok, sizeof ok) != 0) {
		conn_close(c);
		return;
	}
	c->state = S_SOCKS_REQ;
}

/* Parse what the client sent so far, as far as the state allows. */
static void
advance(struct conn *c)
{
	struct pw_gateway	*g = c->g;
	char			 user[PW_WIRE_NAME_MAX + 1];
	char			 pass[PW_WIRE_NAME_MAX + 1];
	unsigned int		 methods;
	int			 r, cmd;

	for (;;) {
		switch (c->state) {
		case S_SNIFF:
			if (c->inlen == 0)
				goto wait;
			if ((unsigned char)c->in[0] == 4) {
				/* SOCKS4(a): "request rejected or failed". */
				static const unsigned char no[8] = { 0, 0x5b };
				if (g->log)
					pw_log(PW_LOG_INFO, "gateway: a SOCKS4 "
					    "client refused (SOCKS5 only)");
				reply_close(c, no, sizeof no);
				return;
			}
			if ((unsigned char)c->in[0] == 5) {
				c->socks = 1;
				c->state = S_SOCKS_GREET;
			} else if (c->cev.socks_only) {
				conn_close(c);
				return;
			} else
				c->state = S_HTTP_HEAD;
			continue;
		case S_HTTP_HEAD:
			r = pw_wire_request(c->in, c->inlen, &c->req);
			if (r == 0)
				goto wait;
			if (r < 0) {
				http_error(c, -r, r == -431 ? "request head "
				    "too long" : r == -501 ? "only http:// "
				    "requests and CONNECT are carried" :
				    pw_wire_bare_lf(c->in, c->inlen) ?
				    "malformed request: a line ends in a bare "
				    "LF (want CRLF)" : "malformed request");
				return;
			}
			http_request(c);
			return;
		case S_SOCKS_GREET:
			r = pw_socks5_greeting((unsigned char *)c->in,
			    c->inlen, &methods);
			if (r == 0)
				goto wait;
			if (r < 0) {
				conn_close(c);
				return;
			}
			consume(c, (size_t)r);
			if (methods & (1u << PW_SOCKS5_USERPASS)) {
				static const unsigned char m[2] = { 5, 2 };
				if (put(c, 0, m, 2) != 0) {
					conn_close(c);
					return;
				}
				c->state = S_SOCKS_AUTH;
			} else if (g->nusers == 0 &&
			    (methods & (1u << PW_SOCKS5_NOAUTH))) {
				static const unsigned char m[2] = { 5, 0 };
				if (put(c, 0, m, 2) != 0) {
					conn_close(c);
					return;
				}
				c->state = S_SOCKS_REQ;
			} else {
				static const unsigned char m[2] = { 5, 0xff };
				atomic_fetch_add(&g->m_auth_failed, 1);
				reply_close(c, m, 2);
				return;
			}
			continue;
		case S_SOCKS_AUTH:
			r = pw_socks5_auth((unsigned char *)c->in, c->inlen,
			    user, pass);
			if (r == 0)
				goto wait;
			if (r < 0) {
				conn_close(c);
				return;
			}
			consume(c, (size_t)r);
			socks_auth(c, user, pass);
			explicit_bzero(pass, sizeof pass);
			if (c->state != S_SOCKS_REQ)
				return;
			continue;
		case S_SOCKS_REQ:
			r = pw_socks5_request((unsigned char *)c->in, c->inlen,
			    &cmd, c->host, &c->port);
			if (r == 0)
				goto wait;
			if (r < 0) {
				socks_reply(c, -r);
				return;
			}
			consume(c, (size_t)r);
			start(c);
			return;
		default:
			return;
		}
	}
wait:
	if (c->inlen >= PW_WIRE_HEAD_MAX) {
		conn_close(c);
		return;
	}
	rearm(c);
}

/* --------------------------------------------------------------- relay */

/* Plain HTTP: the response to the client is complete. */
static void
response_done(struct conn *c)
{
	c->r_done = 1;
	if (!c->q_done || c->r_close || !c->req.keep_alive) {
		/* Close once the client has it all. */
		up_close(c);
		c->state = S_CLOSING;
		if (c->to_c.len == 0)
			conn_close(c);
		else
			rearm(c);
		return;
	}
	/* The next request on this connection picks again. */
	up_close(c);
	c->state = S_HTTP_HEAD;
	c->keepalive_wait = 1;
	c->deadline = pw_mono_ms() + c->g->idle_ms;
	c->plain = 0;
	advance(c);
}

/* Plain HTTP, client to upstream: the request body, no further. */
static void
http_from_client(struct conn *c, const char *p, size_t n)
{
	ssize_t	k = 0;
	int	done = 0;

	if (!c->q_done) {
		if ((k = pw_wire_body_feed(&c->qb, p, n, &done)) < 0) {
			http_error(c, 400, "malformed chunked body");
			return;
		}
		if (put(c, 1, p, (size_t)k) != 0) {
			conn_close(c);
			return;
		}
		c->q_done = done;
	}
	/* The start of the next request (pipelining) waits its turn. */
	if ((size_t)k < n) {
		if (c->inlen + n - (size_t)k > PW_WIRE_HEAD_MAX) {
			conn_close(c);
			return;
		}
		memcpy(c->in + c->inlen, p + k, n - (size_t)k);
		c->inlen += n - (size_t)k;
	}
}

/* Plain HTTP, upstream to client: one response, then pick again. */
static void
http_from_up(struct conn *c, const char *p, size_t n)
{
	struct pw_wire_resp	resp;
	size_t			off = 0;
	int			r, done;

	while (off < n && c->state == S_HTTP) {
		if (c->r_inhead) {
			size_t take = n - off, hb;
			if (take > PW_WIRE_HEAD_MAX - c->rhl)
				take = PW_WIRE_HEAD_MAX - c->rhl;
			if (c->rh == NULL)
				c->rh = pw_xmalloc(PW_WIRE_HEAD_MAX);
			memcpy(c->rh + c->rhl, p + off, take);
			c->rhl += take;
			if ((r = pw_wire_response(c->rh, c->rhl, &resp)) < 0) {
				conn_close(c);
				return;
			}
			if (r == 0) {
				if (put(c, 0, p + off, take) != 0) {
					conn_close(c);
					return;
				}
				off += take;
				continue;
			}
			hb = (size_t)r - (c->rhl - take);
			if (put(c, 0, p + off, hb) != 0) {
				conn_close(c);
				return;
			}
			off += hb;
			c->rhl = 0;
			free(c->rh);
			c->rh = NULL;
			if (resp.status == 101) {
				/* Upgraded: a tunnel from now on. */
				c->state = S_TUNNEL;
				c->q_done = 1;
				if (put(c, 0, p + off, n - off) != 0)
					conn_close(c);
				return;
			}
			if (resp.status >= 100 && resp.status < 200)
				continue;
			c->r_inhead = 0;
			if (c->req.head || resp.status == 204 ||
			    resp.status == 304)
				pw_wire_body_init(&c->rb, 0, 0);
			else
				pw_wire_body_init(&c->rb, resp.chunked,
				    resp.content_length);
			c->r_close = resp.close || c->rb.until_close;
			if (pw_wire_body_done(&c->rb)) {
				response_done(c);
				return;
			}
			continue;
		}
		if ((r = (int)pw_wire_body_feed(&c->rb, p + off, n - off,
		    &done)) < 0) {
			conn_close(c);
			return;
		}
		if (put(c, 0, p + off, (size_t)r) != 0) {
			conn_close(c);
			return;
		}
		off += (size_t)r;
		if (done) {
			/* Anything after the response is not the client's. */
			response_done(c);
			return;
		}
	}
}

/* Move what one side has to the other, until it has none or is owed. */
static void
pump(struct conn *c, int from_up)
{
	struct pw_gateway	*g = c->g;
	struct out		*o = from_up ? &c->to_c : &c->to_u;
	int			*eof = from_up ? &c->u_eof : &c->c_eof;
	ssize_t			 n;

	for (int budget = 16; budget > 0; budget--) {
		if (o->len > 0 || *eof ||
		    (c->state != S_TUNNEL && c->state != S_HTTP))
			break;
		if (!from_up && c->state == S_HTTP && c->q_done)
			break;
		n = rd(c, from_up, g->scratch, SCRATCH);
		if (n == -1)
			break;
		if (n == -2) {
			conn_close(c);
			return;
		}
		c->last = pw_mono_ms();
		if (n == 0) {
			*eof = 1;
			if (c->state == S_HTTP && from_up) {
				/* Close-delimited: the end of the body. */
				if (!c->r_inhead && c->rb.until_close)
					response_done(c);
				else
					c->state = S_CLOSING;
				if (c->state == S_CLOSING && c->to_c.len == 0) {
					conn_close(c);
					return;
				}
				if (c->state != S_HTTP)
					goto out;
			}
			break;
		}
		atomic_fetch_add(from_up ? &g->m_down : &g->m_up, n);
		if (c->state == S_HTTP) {
			if (from_up)
				http_from_up(c, g->scratch, (size_t)n);
			else
				http_from_client(c, g->scratch, (size_t)n);
		} else if (put(c, !from_up, g->scratch, (size_t)n) != 0) {
			conn_close(c);
			return;
		}
		/* conn_close may have run: the states it leaves say so. */
		if (c->state == S_DEAD)
			return;
		if (c->state != S_TUNNEL && c->state != S_HTTP)
			goto out;
	}
	if (c->state == S_TUNNEL) {
		/* An end of stream goes on once all before it went. */
		if (c->c_eof && !c->u_shut && c->to_u.len == 0) {
			c->u_shut = 1;
			if (c->h == NULL)
				shutdown(c->uev.fd, SHUT_WR);
		}
		if (c->u_eof && !c->c_shut && c->to_c.len == 0) {
			c->c_shut = 1;
			shutdown(c->cev.fd, SHUT_WR);
		}
		if (c->c_eof && c->u_eof && c->to_c.len == 0 &&
		    c->to_u.len == 0) {
			conn_close(c);
			return;
		}
	}
out:
	if (c->state != S_DEAD)
		rearm(c);
}

/* ---------------------------------------------------------------- loop */

static void
on_client(struct conn *c, uint32_t events)
{
	ssize_t	n;

	/* Gone while we could not read it (connecting, answering). */
	if ((events & (EPOLLHUP | EPOLLERR)) && (c->state == S_CONNECTING ||
	    c->state == S_CLOSING)) {
		conn_close(c);
		return;
	}
	if (events & EPOLLOUT) {
		int r = flush_out(c, 0);
		if (r < 0) {
			conn_close(c);
			return;
		}
		if (r == 0 && c->state == S_CLOSING) {
			conn_close(c);
			return;
		}
		if (r == 0 && (c->state == S_TUNNEL || c->state == S_HTTP)) {
			/* Owed no more: read the upstream again. */
			pump(c, 1);
			return;
		}
		rearm(c);
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	switch (c->state) {
	case S_SNIFF:
	case S_HTTP_HEAD:
	case S_SOCKS_GREET:
	case S_SOCKS_AUTH:
	case S_SOCKS_REQ:
		if (c->in == NULL)
			c->in = pw_xmalloc(PW_WIRE_HEAD_MAX);
		n = recv(c->cev.fd, c->in + c->inlen,
		    PW_WIRE_HEAD_MAX - c->inlen, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_close(c);
			return;
		}
		if (n > 0) {
			c->inlen += (size_t)n;
			advance(c);
		}
		return;
	case S_TUNNEL:
	case S_HTTP:
		pump(c, 0);
		return;
	default:
		return;
	}
}

static void
on_up(struct conn *c, uint32_t events)
{
	if (events & EPOLLOUT) {
		int r = flush_out(c, 1);
		if (r < 0) {
			conn_close(c);
			return;
		}
		if (r == 0) {
			pump(c, 0);
			if (c->state != S_TUNNEL && c->state != S_HTTP)
				return;
		}
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		pump(c, 1);
	else
		rearm(c);
}

static void
on_accept(struct pw_gateway *g, struct ev *lev)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	struct conn		*c;
	struct client		*cl;
	char			 addr[INET6_ADDRSTRLEN];
	int			 fd, one = 1;

	for (int i = 0; i < 64; i++) {
		sl = sizeof ss;
		fd = accept4(lev->fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		addr_text(&ss, addr, sizeof addr, 0);
		cl = client_get(g, addr);
		if (g->nconns >= g->max_conns || cl->n >= g->max_per_client) {
			atomic_fetch_add(&g->m_refused, 1);
			if (cl->n == 0) {
				cl->n = 1;
				client_put(g, cl);
			}
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c = pw_xcalloc(1, sizeof *c);
		c->g = g;
		c->cl = cl;
		cl->n++;
		c->cev.kind = EV_CLIENT;
		c->cev.fd = fd;
		c->cev.c = c;
		c->cev.socks_only = lev->socks_only;
		c->uev.kind = EV_UP;
		c->uev.fd = -1;
		c->uev.c = c;
		c->state = S_SNIFF;
		c->last = pw_mono_ms();
		c->deadline = c->last + g->handshake_ms;
		c->next = g->conns;
		if (g->conns != NULL)
			g->conns->prev = c;
		g->conns = c;
		g->nconns++;
		if (ev_add(g, &c->cev, EPOLLIN) != 0)
			conn_close(c);
	}
}

static int
on_curl_socket(CURL *e, curl_socket_t s, int what, void *arg, void *sp)
{
	struct pw_gateway	*g = arg;
	struct ev		*ev = sp;
	uint32_t		 mask;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (ev != NULL) {
			ev_del(g, ev);
			curl_multi_assign(g->multi, s, NULL);
			ev->kind = EV_DEAD;
			ev->next_dead = g->dead_evs;
			g->dead_evs = ev;
		}
		return 0;
	}
	mask = (what & CURL_POLL_IN ? EPOLLIN : 0) |
	    (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (ev == NULL) {
		ev = pw_xcalloc(1, sizeof *ev);
		ev->kind = EV_CURL;
		ev->fd = s;
		if (ev_add(g, ev, mask) != 0) {
			free(ev);
			return -1;
		}
		curl_multi_assign(g->multi, s, ev);
	} else
		ev_set(g, ev, mask);
	return 0;
}

static int
on_curl_timer(CURLM *m, long ms, void *arg)
{
	struct pw_gateway	*g = arg;

	(void)m;
	g->curl_deadline = ms < 0 ? -1 : pw_mono_ms() + ms;
	return 0;
}

static void
curl_done(struct pw_gateway *g)
{
	CURLMsg	*msg;
	int	 left;

	while ((msg = curl_multi_info_read(g->multi, &left)) != NULL) {
		struct conn *c = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &c);
		if (c != NULL && c->h == msg->easy_handle)
			connect_done(c, msg->data.result);
	}
}

/* Once a second: timeouts, outcomes, a changed user list. */
static void
tick(struct pw_gateway *g)
{
	int64_t		 now = pw_mono_ms();
	struct conn	*c, *next;
	const char	*users;

	for (c = g->conns; c != NULL; c = next) {
		next = c->next;
		switch (c->state) {
		case S_SNIFF:
		case S_HTTP_HEAD:
		case S_SOCKS_GREET:
		case S_SOCKS_AUTH:
		case S_SOCKS_REQ:
			if (now >= c->deadline)
				conn_close(c);
			break;
		case S_TUNNEL:
		case S_HTTP:
		case S_CLOSING:
			if (now - c->last >= g->idle_ms)
				conn_close(c);
			break;
		default:
			break;
		}
	}
	if (pw_config_reload_state(&g->ctx) == 0) {
		users = pw_config_get(&g->ctx, "serve.gateway_users", NULL);
		if (strcmp(users, g->users_value) != 0)
			users_load(g, users);
	}
}

static void *
loop(void *arg)
{
	struct pw_gateway	*g = arg;
	struct epoll_event	 evs[256];
	int			 n, running_flag = 1, still;

	while (running_flag) {
		int64_t now = pw_mono_ms(), wait = g->next_tick - now;
		if (g->curl_deadline >= 0 && g->curl_deadline - now < wait)
			wait = g->curl_deadline - now;
		if (wait < 0)
			wait = 0;
		n = epoll_wait(g->ep, evs, 256, (int)wait);
		for (int i = 0; i < n; i++) {
			struct ev *ev = evs[i].data.ptr;
			uint32_t e = evs[i].events;
			if (ev->c != NULL && ev->c->state == S_DEAD)
				continue;
			switch (ev->kind) {
			case EV_WAKE:
				running_flag = 0;
				break;
			case EV_LISTEN:
				on_accept(g, ev);
				break;
			case EV_CURL:
				curl_multi_socket_action(g->multi, ev->fd,
				    (e & EPOLLIN ? CURL_CSELECT_IN : 0) |
				    (e & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
				    (e & EPOLLERR ? CURL_CSELECT_ERR : 0),
				    &still);
				curl_done(g);
				break;
			case EV_CLIENT:
				on_client(ev->c, e);
				break;
			case EV_UP:
				on_up(ev->c, e);
				break;
			default:
				break;
			}
		}
		now = pw_mono_ms();
		if (g->curl_deadline >= 0 && now >= g->curl_deadline) {
			g->curl_deadline = -1;
			curl_multi_socket_action(g->multi, CURL_SOCKET_TIMEOUT,
			    0, &still);
			curl_done(g);
		}
		if (now >= g->next_tick) {
			tick(g);
			g->next_tick = now + TICK_MS;
		}
		reap(g);
	}
	return NULL;
}

/* -------------------------------------------------------------- public */

static int
listen_on(struct pw_gateway *g, int i, const char *spec, const char *what,
    int socks_only, struct pw_err *err)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = 0;
	int			 fd, one = 1;

	if (pw_listen_parse(spec, &ss, &sl, err) != 0)
		return pw_err_prefix(err, "%s", what);
	if (!pw_addr_is_loopback(&ss) && g->loopback) {
		g->loopback = 0;
		g->public_spec = spec;
		g->public_what = what;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
	    listen(fd, 4096) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return pw_failf(err, PW_EFAIL, "%s: cannot listen on %s: %s",
		    what, spec, strerror(e));
	}
	sl = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	addr_text(&ss, g->addr[i], sizeof g->addr[i], 1);
	g->lev[i].kind = EV_LISTEN;
	g->lev[i].fd = fd;
	g->lev[i].socks_only = socks_only;
	return 0;
}

static void
gateway_free(struct pw_gateway *g)
{
	for (int i = 0; i < 2; i++)
		if (g->lev[i].fd >= 0)
			close(g->lev[i].fd);
	if (g->wake >= 0)
		close(g->wake);
	if (g->ep >= 0)
		close(g->ep);
	pw_housekeep_stop(g->hk);
	g->ctx.view = NULL;
	pw_view_close(g->own_view);
	users_load(g, "");
	free(g->users_value);
	free(g->scratch);
	free(g->state_path);
	pw_close(&g->ctx);
	pw_config_free(g->ctx.cfg);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

int
pw_gateway_start(struct pw_ctx *ctx, const char *state,
    const struct pw_gateway_opts *o, struct pw_gateway **out)
{
	struct pw_gateway	*g;
	int			 r;

	if ((r = pw_net_init(&ctx->err)) != 0)
		return r;
	g = pw_xcalloc(1, sizeof *g);
	g->lev[0].fd = g->lev[1].fd = -1;
	g->ep = g->wake = -1;
	g->loopback = 1;
	pthread_mutex_init(&g->mu, NULL);
	g->ctx.cfg = pw_config_dup(ctx->cfg);
	if ((r = listen_on(g, 0, o->listen, "--gateway", 0, &ctx->err)) != 0)
		goto fail;
	if (o->socks_listen != NULL && (r = listen_on(g, 1, o->socks_listen,
	    "--gateway-socks", 1, &ctx->err)) != 0)
		goto fail;
	users_load(g, pw_config_get(ctx, "serve.gateway_users", NULL));
	if (!g->loopback && g->nusers == 0) {
		r = pw_failf(&ctx->err, PW_EUSAGE, "%s: '%s' is not a "
		    "loopback address, and the gateway has no users (set "
		    "serve.gateway_users first)", g->public_what,
		    g->public_spec);
		goto fail;
	}
	if ((r = pw_open(&g->ctx, state, PW_OPEN_RW)) != 0) {
		ctx->err = g->ctx.err;
		goto fail;
	}
	/* Choices and outcomes in memory, written in batches. */
	if (o->api != NULL)
		g->ctx.view = pw_serve_view(o->api);
	else if ((r = pw_view_open(state, g->ctx.cfg, PW_VIEW_CHECK_MS,
	    &g->own_view, &ctx->err)) != 0 ||
	    (r = pw_housekeep_start(state, g->ctx.cfg, g->own_view, &g->hk,
	    &ctx->err)) != 0)
		goto fail;
	else
		g->ctx.view = g->own_view;
	g->tries = o->retries > 0 ? o->retries :
	    (int)pw_config_int(ctx, "fetch.retries");
	g->connect_ms = pw_config_int(ctx, "fetch.connect_timeout") * 1000;
	g->max_conns = o->max_tunnels > 0 ? o->max_tunnels : 4096;
	g->max_per_client = o->max_per_client > 0 ? o->max_per_client : 1024;
	g->idle_ms = o->idle_ms > 0 ? o->idle_ms : 5 * 60 * 1000;
	g->handshake_ms = o->handshake_ms > 0 ? o->handshake_ms : 10 * 1000;
	g->log = o->log;
	g->curl_deadline = -1;
	g->scratch = pw_xmalloc(SCRATCH);
	g->state_path = pw_xstrdup(state);
	if ((g->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (g->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		r = pw_failf(&ctx->err, PW_EFAIL, "gateway: %s",
		    strerror(errno));
		goto fail;
	}
	g->wev.kind = EV_WAKE;
	g->wev.fd = g->wake;
	if (ev_add(g, &g->wev, EPOLLIN) != 0 ||
	    ev_add(g, &g->lev[0], EPOLLIN) != 0 ||
	    (g->lev[1].fd >= 0 && ev_add(g, &g->lev[1], EPOLLIN) != 0)) {
		r = pw_failf(&ctx->err, PW_EFAIL, "gateway: %s",
		    strerror(errno));
		goto fail;
	}
	if ((g->multi = curl_multi_init()) == NULL) {
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot start libcurl");
		goto fail;
	}
	curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(g->multi, CURLMOPT_SOCKETDATA, g);
	curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(g->multi, CURLMOPT_TIMERDATA, g);
	g->next_tick = pw_mono_ms() + TICK_MS;
	if (pthread_create(&g->thread, NULL, loop, g) != 0) {
		curl_multi_cleanup(g->multi);
		r = pw_failf(&ctx->err, PW_EFAIL, "cannot start the gateway "
		    "thread");
		goto fail;
	}
	pthread_mutex_lock(&running_mu);
	running = g;
	pthread_mutex_unlock(&running_mu);
	*out = g;
	return 0;
fail:
	gateway_free(g);
	return r;
}

const char *
pw_gateway_address(const struct pw_gateway *g, int socks)
{
	if (socks)
		return g->lev[1].fd >= 0 ? g->addr[1] : NULL;
	return g->addr[0];
}

void
pw_gateway_stop(struct pw_gateway *g)
{
	uint64_t	one = 1;

	if (g == NULL)
		return;
	pthread_mutex_lock(&running_mu);
	running = NULL;
	pthread_mutex_unlock(&running_mu);
	if (write(g->wake, &one, sizeof one) < 0)
		pw_log(PW_LOG_WARN, "gateway: cannot wake: %s",
		    strerror(errno));
	pthread_join(g->thread, NULL);
	while (g->conns != NULL)
		conn_close(g->conns);
	reap(g);
	curl_multi_cleanup(g->multi);
	gateway_free(g);
}

void
pw_gateway_metrics(struct pw_buf *b)
{
	struct pw_gateway	*g;

	pthread_mutex_lock(&running_mu);
	if ((g = running) == NULL) {
		pthread_mutex_unlock(&running_mu);
		return;
	}
	pw_buf_addf(b, "# HELP pw_gateway_tunnels_active Gateway tunnels "
	    "and requests open now.\n# TYPE pw_gateway_tunnels_active gauge\n"
	    "pw_gateway_tunnels_active %lld\n",
	    (long long)atomic_load(&g->m_active));
	pw_buf_addf(b, "# HELP pw_gateway_tunnels_opened_total Upstream "
	    "tunnels opened.\n# TYPE pw_gateway_tunnels_opened_total counter\n"
	    "pw_gateway_tunnels_opened_total %lld\n",
	    (long long)atomic_load(&g->m_opened));
	pw_buf_addf(b, "# HELP pw_gateway_tunnels_failed_total Requests the "
	    "gateway could not carry.\n"
	    "# TYPE pw_gateway_tunnels_failed_total counter\n"
	    "pw_gateway_tunnels_failed_total %lld\n",
	    (long long)atomic_load(&g->m_failed));
	pw_buf_addf(b, "# HELP pw_gateway_failovers_total Connects retried "
	    "through another proxy.\n"
	    "# TYPE pw_gateway_failovers_total counter\n"
	    "pw_gateway_failovers_total %lld\n",
	    (long long)atomic_load(&g->m_failovers));
	pw_buf_addf(b, "# HELP pw_gateway_bytes_total Bytes relayed, by "
	    "direction.\n# TYPE pw_gateway_bytes_total counter\n"
	    "pw_gateway_bytes_total{direction=\"up\"} %lld\n"
	    "pw_gateway_bytes_total{direction=\"down\"} %lld\n",
	    (long long)atomic_load(&g->m_up),
	    (long long)atomic_load(&g->m_down));
	pw_buf_addf(b, "# HELP pw_gateway_auth_failures_total Clients "
	    "refused for their credentials.\n"
	    "# TYPE pw_gateway_auth_failures_total counter\n"
	    "pw_gateway_auth_failures_total %lld\n",
	    (long long)atomic_load(&g->m_auth_failed));
	pw_buf_addf(b, "# HELP pw_gateway_refused_total Connections refused "
	    "at a limit.\n# TYPE pw_gateway_refused_total counter\n"
	    "pw_gateway_refused_total %lld\n",
	    (long long)atomic_load(&g->m_refused));
	pw_buf_adds(b, "# HELP pw_gateway_upstream_failures_total Failed "
	    "connects, by proxy id.\n"
	    "# TYPE pw_gateway_upstream_failures_total counter\n");
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < g->nup_fail; i++)
		pw_buf_addf(b, "pw_gateway_upstream_failures_total"
		    "{proxy=\"%lld\"} %lld\n", (long long)g->up_fail[i].id,
		    (long long)g->up_fail[i].n);
	pthread_mutex_unlock(&g->mu);
	pthread_mutex_unlock(&running_mu);
}
