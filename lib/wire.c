/*
 * wire.c -- the gateway's parsers: HTTP proxy requests, HTTP response
 * heads and body framing, SOCKS5 handshakes, user-name controls.
 *
 * Strict where laxness would let two readers disagree about where a
 * message ends (request smuggling): a request with both Content-Length
 * and Transfer-Encoding, or with two different lengths, is refused.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "wire.h"

/* The end of the head ("\r\n\r\n"), or 0 when not there yet. */
static size_t
head_end(const char *p, size_t n)
{
	for (size_t i = 3; i < n; i++)
		if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' &&
		    p[i - 3] == '\r')
			return i + 1;
	return 0;
}

static int
is_tchar(int c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* Does the comma-separated list v[0..n) hold token t? */
static int
has_token(const char *v, size_t n, const char *t)
{
	size_t	tl = strlen(t), i = 0;

	while (i < n) {
		size_t s, e;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, t, tl) == 0)
			return 1;
	}
	return 0;
}

/* The last token of a list is t (Transfer-Encoding: ..., chunked). */
static int
last_token(const char *v, size_t n, const char *t)
{
	size_t	tl = strlen(t), e = n, s;

	while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
		e--;
	s = e;
	while (s > 0 && v[s - 1] != ',' && v[s - 1] != ' ' &&
	    v[s - 1] != '\t')
		s--;
	return e - s == tl && strncasecmp(v + s, t, tl) == 0;
}

static int
parse_length(const char *v, size_t n, int64_t *out)
{
	int64_t	x = 0;

	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)v[i]))
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	*out = x;
	return 0;
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode base64 v[0..n) into out (at most max bytes); length or -1. */
static long
b64decode(const char *v, size_t n, char *out, size_t max)
{
	unsigned int	acc = 0;
	int		bits = 0;
	size_t		o = 0, i;

	for (i = 0; i < n && v[i] != '='; i++) {
		int d = b64val((unsigned char)v[i]);
		if (d < 0)
			return -1;
		acc = (acc << 6) | (unsigned int)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == max)
				return -1;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	for (; i < n; i++)
		if (v[i] != '=')
			return -1;
	return (long)o;
}

void
pw_wire_base64(struct pw_buf *b, const void *p, size_t n)
{
	static const char	 tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char	*s = p;

	for (size_t i = 0; i < n; i += 3) {
		unsigned int v = (unsigned int)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned int)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		pw_buf_addc(b, tab[(v >> 18) & 63]);
		pw_buf_addc(b, tab[(v >> 12) & 63]);
		pw_buf_addc(b, i + 1 < n ? tab[(v >> 6) & 63] : '=');
		pw_buf_addc(b, i + 2 < n ? tab[v & 63] : '=');
	}
}

/* "Basic base64(user:pass)" into r->user, r->pass. */
static int
parse_basic(const char *v, size_t n, struct pw_wire_req *r)
{
	char	 buf[2 * PW_WIRE_NAME_MAX + 2], *colon;
	long	 len;

	if (n < 6 || strncasecmp(v, "Basic ", 6) != 0)
		return -1;
	v += 6;
	n -= 6;
	while (n > 0 && *v == ' ') {
		v++;
		n--;
	}
	if ((len = b64decode(v, n, buf, sizeof buf - 1)) < 0)
		return -1;
	buf[len] = '\0';
	if (strlen(buf) != (size_t)len ||
	    (colon = strchr(buf, ':')) == NULL ||
	    colon - buf > PW_WIRE_NAME_MAX ||
	    strlen(colon + 1) > PW_WIRE_NAME_MAX)
		return -1;
	*colon = '\0';
	memcpy(r->user, buf, strlen(buf) + 1);
	memcpy(r->pass, colon + 1, strlen(colon + 1) + 1);
	r->has_auth = 1;
	return 0;
}

/* "host:port" or "[v6]:port" at s[0..n) into host and port. */
static int
parse_authority(const char *s, size_t n, int def_port, char *host,
    int *port)
{
	const char	*h = s, *colon = NULL;
	size_t		 hl;
	int64_t		 pt = def_port;

	if (n > 0 && s[0] == '[') {
		const char *e = memchr(s, ']', n);
		if (e == NULL)
			return -1;
		h = s + 1;
		hl = (size_t)(e - h);
		if (e + 1 < s + n) {
			if (e[1] != ':')
				return -1;
			colon = e + 1;
		}
	} else {
		colon = memchr(s, ':', n);
		hl = colon ? (size_t)(colon - s) : n;
	}
	if (hl == 0 || hl > PW_WIRE_NAME_MAX)
		return -1;
	for (size_t i = 0; i < hl; i++)
		if (!isalnum((unsigned char)h[i]) && !strchr("-._:", h[i]))
			return -1;
	if (colon != NULL) {
		size_t pl = (size_t)(s + n - colon - 1);
		if (parse_length(colon + 1, pl, &pt) != 0 || pt < 1 ||
		    pt > 65535)
			return -1;
	} else if (def_port == 0)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	for (size_t i = 0; i < hl; i++)
		host[i] = (char)tolower((unsigned char)host[i]);
	*port = (int)pt;
	return 0;
}

/*
 * The header lines of a head, from after the start line: calls fn for
 * each with the name, the value (trimmed) and the line's extent.
 */
typedef int header_fn(void *arg, const char *name, size_t nl,
    const char *v, size_t vl, size_t off, size_t len);

static int
each_header(const char *p, size_t start, size_t end, header_fn *fn,
    void *arg)
{
	size_t	i = start;

	while (i + 2 <= end) {
		const char *line = p + i, *nl = memchr(line, '\n', end - i);
		size_t ll, namel;
		const char *colon, *v, *ve;

		if (nl == NULL || nl == line || nl[-1] != '\r')
			return -1;
		ll = (size_t)(nl - line) + 1;
		if (ll == 2)
			break;	/* the empty line */
		colon = memchr(line, ':', ll - 2);
		if (colon == NULL || colon == line)
			return -1;
		namel = (size_t)(colon - line);
		for (size_t k = 0; k < namel; k++)
			if (!is_tchar((unsigned char)line[k]))
				return -1;	/* also "Name :" and folding */
		v = colon + 1;
		ve = nl - 1;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *c = v; c < ve; c++)
			if ((unsigned char)*c < 0x20 && *c != '\t')
				return -1;
		if (fn(arg, line, namel, v, (size_t)(ve - v), i, ll) != 0)
			return -1;
		i += ll;
	}
	return 0;
}

static int
name_is(const char *name, size_t nl, const char *want)
{
	return nl == strlen(want) && strncasecmp(name, want, nl) == 0;
}

/* What the framing headers of a message say. */
struct framing {
	int64_t	 length;
	int	 te, chunked, conn_close, conn_keep;
	struct pw_wire_req *req;	/* NULL for a response */
};

static int
framing_header(void *arg, const char *name, size_t nl, const char *v,
    size_t vl, size_t off, size_t len)
{
	struct framing	*f = arg;
	int64_t		 x;

	if (name_is(name, nl, "Content-Length")) {
		if (parse_length(v, vl, &x) != 0 ||
		    (f->length >= 0 && f->length != x))
			return -1;
		f->length = x;
	} else if (name_is(name, nl, "Transfer-Encoding")) {
		f->te = 1;
		f->chunked = last_token(v, vl, "chunked");
	} else if (name_is(name, nl, "Connection") ||
	    (f->req != NULL && name_is(name, nl, "Proxy-Connection"))) {
		if (f->req != NULL && nl == 16) {
			if (f->req->pconn_len != 0)
				return -1;
			f->req->pconn_off = off;
			f->req->pconn_len = len;
		}
		if (has_token(v, vl, "close"))
			f->conn_close = 1;
		if (has_token(v, vl, "keep-alive"))
			f->conn_keep = 1;
	} else if (f->req != NULL &&
	    name_is(name, nl, "Proxy-Authorization")) {
		if (f->req->auth_len != 0)
			return -1;
		f->req->auth_off = off;
		f->req->auth_len = len;
		if (parse_basic(v, vl, f->req) != 0)
			f->req->has_auth = 0;
	}
	return 0;
}

/* "HTTP/1.0" or "HTTP/1.1": the minor version, or -1. */
static int
http_version(const char *v, size_t n)
{
	if (n != 8 || strncmp(v, "HTTP/1.", 7) != 0 ||
	    (v[7] != '0' && v[7] != '1'))
		return -1;
	return v[7] - '0';
}

int
pw_wire_bare_lf(const char *p, size_t n)
{
	const char	*lf = p;

	while ((lf = memchr(lf, '\n', n - (size_t)(lf - p))) != NULL) {
		if (lf == p || lf[-1] != '\r')
			return 1;
		lf++;
	}
	return 0;
}

int
pw_wire_request(const char *p, size_t n, struct pw_wire_req *r)
{
	struct framing	 f;
	const char	*sp1, *sp2, *eol, *t;
	size_t		 end, ml, tl;
	int		 minor;

	if (n > PW_WIRE_HEAD_MAX)
		n = PW_WIRE_HEAD_MAX;
	if ((end = head_end(p, n)) == 0) {
		/* No CRLF CRLF will come to end a head of LF lines. */
		if (pw_wire_bare_lf(p, n))
			return -400;
		return n == PW_WIRE_HEAD_MAX ? -431 : 0;
	}
	memset(r, 0, sizeof *r);
	r->content_length = -1;
	eol = memchr(p, '\n', end);
	if (eol == p || eol[-1] != '\r')
		return -400;
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (sp1 == NULL || sp1 == p)
		return -400;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return -400;
	if ((minor = http_version(sp2 + 1, (size_t)(eol - 1 - sp2 - 1))) < 0)
		return -400;
	ml = (size_t)(sp1 - p);
	for (size_t i = 0; i < ml; i++)
		if (!is_tchar((unsigned char)p[i]))
			return -400;
	t = sp1 + 1;
	tl = (size_t)(sp2 - t);
	for (size_t i = 0; i < tl; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return -400;
	r->target_off = (size_t)(t - p);
	r->target_len = tl;
	if (ml == 7 && memcmp(p, "CONNECT", 7) == 0) {
		r->connect = 1;
		if (parse_authority(t, tl, 0, r->host, &r->port) != 0)
			return -400;
	} else {
		const char *a, *e;
		if (tl >= 8 && strncasecmp(t, "https://", 8) == 0)
			return -501;
		if (tl < 8 || strncasecmp(t, "http://", 7) != 0)
			return -400;
		a = t + 7;
		for (e = a; e < t + tl && *e != '/' && *e != '?' && *e != '#';
		    e++)
			;
		if (memchr(a, '@', (size_t)(e - a)) != NULL ||
		    parse_authority(a, (size_t)(e - a), 80, r->host,
		    &r->port) != 0)
			return -400;
		r->path_off = (size_t)(e - p);
		r->head = ml == 4 && memcmp(p, "HEAD", 4) == 0;
	}
	memset(&f, 0, sizeof f);
	f.length = -1;
	f.req = r;
	if (each_header(p, (size_t)(eol - p) + 1, end, framing_header, &f) !=
	    0)
		return -400;
	if (f.te && (f.length >= 0 || !f.chunked))
		return -400;
	r->content_length = f.length;
	r->chunked = f.chunked;
	r->keep_alive = minor == 1 ? !f.conn_close : f.conn_keep &&
	    !f.conn_close;
	r->head_len = end;
	return (int)end;
}

int
pw_wire_response(const char *p, size_t n, struct pw_wire_resp *r)
{
	struct framing	 f;
	const char	*eol;
	size_t		 end;
	int		 minor;

	if (n > PW_WIRE_HEAD_MAX)
		n = PW_WIRE_HEAD_MAX;
	if ((end = head_end(p, n)) == 0)
		return n == PW_WIRE_HEAD_MAX ? -1 : 0;
	memset(r, 0, sizeof *r);
	eol = memchr(p, '\n', end);
	if (eol - p < 13 || eol[-1] != '\r' || p[8] != ' ' ||
	    (minor = http_version(p, 8)) < 0 ||
	    !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
	    !isdigit((unsigned char)p[11]) ||
	    (p[12] != ' ' && p[12] != '\r'))
		return -1;
	r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	memset(&f, 0, sizeof f);
	f.length = -1;
	if (each_header(p, (size_t)(eol - p) + 1, end, framing_header, &f) !=
	    0)
		return -1;
	r->content_length = f.te ? -1 : f.length;
	r->chunked = f.te && f.chunked;
	r->close = f.conn_close || (minor == 0 && !f.conn_keep);
	r->head_len = end;
	return (int)end;
}

/* ------------------------------------------------------------- framing */

enum { B_LEN, B_CLOSE, B_SIZE, B_EXT, B_DATA, B_DATA_CR, B_DATA_LF,
    B_TRAILER, B_TRAILER_LINE, B_DONE };

void
pw_wire_body_init(struct pw_wire_body *b, int chunked, int64_t length)
{
	memset(b, 0, sizeof *b);
	if (chunked)
		b->state = B_SIZE;
	else if (length >= 0) {
		b->state = length == 0 ? B_DONE : B_LEN;
		b->left = (uint64_t)length;
	} else {
		b->state = B_CLOSE;
		b->until_close = 1;
	}
}

int
pw_wire_body_done(const struct pw_wire_body *b)
{
	return b->state == B_DONE;
}

ssize_t
pw_wire_body_feed(struct pw_wire_body *b, const char *p, size_t n, int *done)
{
	size_t	i = 0;
	int	d;

	*done = 0;
	while (i < n && b->state != B_DONE) {
		unsigned char c = (unsigned char)p[i];
		switch (b->state) {
		case B_CLOSE:
			return (ssize_t)n;
		case B_LEN:
		case B_DATA: {
			size_t take = n - i;
			if (take > b->left)
				take = (size_t)b->left;
			b->left -= take;
			i += take;
			if (b->left == 0)
				b->state = b->state == B_LEN ? B_DONE :
				    B_DATA_CR;
			continue;
		}
		case B_SIZE:
			if (isxdigit(c)) {
				d = isdigit(c) ? c - '0' :
				    tolower(c) - 'a' + 10;
				if (b->left > (UINT64_MAX >> 4))
					return -1;
				b->left = b->left << 4 | (uint64_t)d;
				b->digits = 1;
			} else if (!b->digits)
				return -1;
			else if (c == ';' || c == ' ' || c == '\t' ||
			    c == '\r')
				b->state = B_EXT;
			else if (c == '\n')
				goto size_done;
			else
				return -1;
			break;
		case B_EXT:
			if (c == '\n')
				goto size_done;
			break;
		size_done:
			b->digits = 0;
			b->state = b->left == 0 ? B_TRAILER : B_DATA;
			break;
		case B_DATA_CR:
			if (c != '\r')
				return -1;
			b->state = B_DATA_LF;
			break;
		case B_DATA_LF:
			if (c != '\n')
				return -1;
			b->state = B_SIZE;
			break;
		case B_TRAILER:
			/* At the start of a line: an empty one ends it. */
			if (c == '\n')
				b->state = B_DONE;
			else if (c != '\r')
				b->state = B_TRAILER_LINE;
			break;
		case B_TRAILER_LINE:
			if (c == '\n')
				b->state = B_TRAILER;
			break;
		}
		i++;
	}
	*done = b->state == B_DONE;
	return (ssize_t)i;
}

/* --------------------------------------------------------------- socks */

int
pw_socks5_greeting(const unsigned char *p, size_t n, unsigned int *methods)
{
	unsigned int	m = 0;

	if (n < 2)
		return n > 0 && p[0] != 5 ? -1 : 0;
	if (p[0] != 5 || p[1] == 0)
		return -1;
	if (n < 2 + (size_t)p[1])
		return 0;
	for (int i = 0; i < p[1]; i++)
		if (p[2 + i] < 32)
			m |= 1u << p[2 + i];
	*methods = m;
	return 2 + p[1];
}

int
pw_socks5_auth(const unsigned char *p, size_t n,
    char user[PW_WIRE_NAME_MAX + 1], char pass[PW_WIRE_NAME_MAX + 1])
{
	size_t	ul, pl;

	if (n < 2)
		return n > 0 && p[0] != 1 ? -1 : 0;
	if (p[0] != 1 || p[1] == 0)
		return -1;
	ul = p[1];
	if (n < 2 + ul + 1)
		return 0;
	pl = p[2 + ul];
	if (n < 3 + ul + pl)
		return 0;
	if (memchr(p + 2, 0, ul) != NULL || memchr(p + 3 + ul, 0, pl) != NULL)
		return -1;
	memcpy(user, p + 2, ul);
	user[ul] = '\0';
	memcpy(pass, p + 3 + ul, pl);
	pass[pl] = '\0';
	return (int)(3 + ul + pl);
}

int
pw_socks5_request(const unsigned char *p, size_t n, int *cmd,
    char host[PW_WIRE_NAME_MAX + 1], int *port)
{
	size_t	alen, off;

	if (n < 5)
		return n > 0 && p[0] != 5 ? -1 : 0;
	if (p[0] != 5 || p[2] != 0)
		return -1;
	switch (p[3]) {
	case 1:
		alen = 4;
		off = 4;
		break;
	case 3:
		alen = p[4];
		off = 5;
		if (alen == 0)
			return -1;
		break;
	case 4:
		alen = 16;
		off = 4;
		break;
	default:
		return -8;
	}
	if (n < off + alen + 2)
		return 0;
	if (p[3] == 1)
		inet_ntop(AF_INET, p + off, host, PW_WIRE_NAME_MAX + 1);
	else if (p[3] == 4)
		inet_ntop(AF_INET6, p + off, host, PW_WIRE_NAME_MAX + 1);
	else {
		for (size_t i = 0; i < alen; i++)
			if (p[off + i] <= 0x20 || p[off + i] >= 0x7f)
				return -1;
		memcpy(host, p + off, alen);
		host[alen] = '\0';
	}
	*port = p[off + alen] << 8 | p[off + alen + 1];
	*cmd = p[1];
	if (*port == 0)
		return -1;
	if (p[1] != 1)
		return -7;
	return (int)(off + alen + 2);
}

/* ---------------------------------------------------------------- user */

static int
is_control(const char *s, size_t n)
{
	return (n == 7 && strncmp(s, "session", 7) == 0) ||
	    (n == 7 && strncmp(s, "country", 7) == 0) ||
	    (n == 8 && strncmp(s, "strategy", 8) == 0);
}

int
pw_wire_user(const char *name, struct pw_wire_user *u, struct pw_err *err)
{
	const char	*p = name, *dash;
	size_t		 n;

	memset(u, 0, sizeof *u);
	if (strlen(name) > PW_WIRE_NAME_MAX)
		return pw_failf(err, PW_EUSAGE, "user name is too long");
	n = strcspn(p, "-");
	memcpy(u->user, p, n);
	u->user[n] = '\0';
	p += n;
	while (*p == '-') {
		const char	*key = ++p, *v;
		char		*dst;
		size_t		 kl = strcspn(key, "-"), vl;

		if (!is_control(key, kl))
			return pw_failf(err, PW_EUSAGE, "'%.*s': unknown "
			    "control in the user name (session, country, "
			    "strategy)", (int)kl, key);
		v = key + kl + (key[kl] == '-');
		/* A value runs to the next control: "strategy-least-used". */
		for (dash = v; (dash = strchr(dash, '-')) != NULL; dash++)
			if (is_control(dash + 1, strcspn(dash + 1, "-")))
				break;
		vl = dash != NULL ? (size_t)(dash - v) : strlen(v);
		if (key[kl] != '-' || vl == 0)
			return pw_failf(err, PW_EUSAGE, "%.*s: no value in the "
			    "user name", (int)kl, key);
		dst = key[0] == 's' && key[1] == 'e' ? u->session :
		    key[0] == 'c' ? u->country : u->strategy;
		if (dst[0] != '\0')
			return pw_failf(err, PW_EUSAGE, "%.*s: given twice in "
			    "the user name", (int)kl, key);
		if (dst == u->country) {
			char v2[8];
			if (vl != 2)
				return pw_failf(err, PW_EUSAGE, "country: "
				    "'%.*s': want a two-letter code",
				    (int)vl, v);
			memcpy(v2, v, 2);
			v2[2] = '\0';
			if (pw_country_check(v2, u->country, err) != 0)
				return PW_EUSAGE;
		} else {
			memcpy(dst, v, vl);
			dst[vl] = '\0';
		}
		p = v + vl;
	}
	return 0;
}
