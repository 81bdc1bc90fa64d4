/*
 * err.c -- error values, logging callback and the small helpers every
 * module shares: allocation, growable buffers, number and time parsing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "internal.h"

static size_t	utf8_seq(const unsigned char *, size_t);
static int	utf8_control(const unsigned char *, size_t);

static pw_log_fn	*log_fn;
static void		*log_arg;
static int		 log_max = PW_LOG_WARN;

int
pw_failf(struct pw_err *err, int code, const char *fmt, ...)
{
	va_list	ap;

	if (err != NULL) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}

int
pw_err_prefix(struct pw_err *err, const char *fmt, ...)
{
	char	what[256], old[sizeof err->msg];
	va_list	ap;

	if (err == NULL)
		return PW_EFAIL;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	/* A long message is cut, never overrun. */
	if (snprintf(err->msg, sizeof err->msg, "%s: %.*s", what,
	    (int)(sizeof err->msg - 3 - strnlen(what, sizeof what)), old) < 0)
		err->msg[0] = '\0';
	return err->code;
}

void
pw_err_clear(struct pw_err *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}

void
pw_log_set(pw_log_fn *fn, void *arg, int max_level)
{
	log_fn = fn;
	log_arg = arg;
	log_max = max_level;
}

/* What this thread is doing (pw serve: the request), or NULL. */
static _Thread_local const char *log_context;

void
pw_log_context(const char *ctx)
{
	log_context = ctx;
}

/*
 * in as one line of a log, into out[n]: each control byte (C0, DEL, and
 * C1 as UTF-8 spells it) and each byte that is not valid UTF-8 as \xHH.
 * A message may quote what a client sent (pw serve logs each request's
 * path): a line break in it would forge a line, an escape sequence reach
 * the terminal. Cut short at a whole character.
 */
static void
log_line(const char *in, char *out, size_t n)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)in;
	size_t			 len = strlen(in), i = 0, o = 0, k;

	while (i < len) {
		k = utf8_seq(p + i, len - i);
		if (k == 0 || utf8_control(p + i, k)) {
			for (k = k == 2 ? 2 : 1; k > 0; k--, i++) {
				if (o + 4 >= n)
					goto out;
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[p[i] >> 4];
				out[o++] = hex[p[i] & 15];
			}
			continue;
		}
		if (o + k >= n)
			break;
		memcpy(out + o, p + i, k);
		o += k;
		i += k;
	}
out:
	out[o] = '\0';
}

void
pw_log(int level, const char *fmt, ...)
{
	char	msg[1024], line[2048];
	int	n = 0;
	va_list	ap;

	if (log_fn == NULL || level > log_max)
		return;
	if (log_context != NULL)
		n = snprintf(msg, sizeof msg, "%s: ", log_context);
	if (n < 0 || (size_t)n >= sizeof msg)
		n = 0;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof msg - n, fmt, ap);
	va_end(ap);
	/* Printable ASCII, the common case, goes as it is. */
	for (const char *c = msg; *c != '\0'; c++)
		if (*c < 0x20 || *c >= 0x7f) {
			log_line(msg, line, sizeof line);
			log_fn(log_arg, level, line);
			return;
		}
	log_fn(log_arg, level, msg);
}

/*
 * Allocation failure is not recoverable in a command-line tool; like git's
 * xmalloc we abort with a message rather than thread ENOMEM everywhere.
 */
static void
oom(void)
{
	static const char msg[] = "pw: out of memory\n";

	fwrite(msg, 1, sizeof msg - 1, stderr);
	abort();
}

void *
pw_xmalloc(size_t n)
{
	void	*p = malloc(n ? n : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
pw_xcalloc(size_t n, size_t m)
{
	void	*p = calloc(n ? n : 1, m ? m : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
pw_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

char *
pw_xstrdup(const char *s)
{
	return pw_xstrndup(s, strlen(s));
}

char *
pw_xstrndup(const char *s, size_t n)
{
	char	*p = pw_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
pw_xasprintf(const char *fmt, ...)
{
	char	*p;
	va_list	ap;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		oom();
	va_end(ap);
	return p;
}

int64_t
pw_now(void)
{
	return pw_now_ms() / 1000;
}

/*
 * PW_NOW (seconds since the epoch) pins the clock, so tests of expiry and
 * cooldown need no sleeping. It is read once per process.
 */
int64_t
pw_now_ms(void)
{
	static int	 init;
	static int64_t	 pinned = -1;
	struct timespec	 ts;
	const char	*s;

	if (!init) {
		init = 1;
		if ((s = getenv("PW_NOW")) != NULL && *s != '\0')
			pinned = strtoll(s, NULL, 10) * 1000;
	}
	if (pinned >= 0)
		return pinned;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
pw_mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
pw_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
pw_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char		*end;
	long long	 v;

	if (s == NULL || *s == '\0' || *s == ' ')
		return PW_EUSAGE;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return PW_EUSAGE;
	*out = v;
	return 0;
}

int
pw_parse_double(const char *s, double min, double max, double *out)
{
	char	*end;
	double	 v;

	/* A decimal number: not the hex, "inf" or white space of strtod. */
	if (s == NULL || *s == '\0' || s[strspn(s, "0123456789.eE+-")] != '\0')
		return PW_EUSAGE;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
		return PW_EUSAGE;
	*out = v;
	return 0;
}

void
pw_fmt_double(char buf[32], double v)
{
	snprintf(buf, 32, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, 32, "%.17g", v);
}

int
pw_parse_duration(const char *s, int64_t *out)
{
	char		*end;
	long long	 v;
	int64_t		 mul = 1;

	if (s == NULL || *s < '0' || *s > '9')
		return PW_EUSAGE;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return PW_EUSAGE;
	if (*end != '\0') {
		switch (*end) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		default: return PW_EUSAGE;
		}
		if (end[1] != '\0')
			return PW_EUSAGE;
	}
	if (v > INT64_MAX / mul / 1000)
		return PW_EUSAGE;
	*out = v * mul;
	return 0;
}

int
pw_parse_ms(const char *s, int64_t *out)
{
	char	*end;
	double	 v;

	if (s == NULL || ((*s < '0' || *s > '9') && *s != '.'))
		return PW_EUSAGE;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s)
		return PW_EUSAGE;
	if (strcmp(end, "ms") == 0)
		;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		v *= 1000;
	else
		return PW_EUSAGE;
	/* The cap is on the result, whatever the unit (fuzz_config). */
	if (!(v >= 0 && v <= 1e9))
		return PW_EUSAGE;
	*out = (int64_t)(v + 0.5);
	return 0;
}

/*
 * An empty buffer points at this until it first grows (git's slopbuf):
 * so init allocates nothing, and detach need not allocate a new one.
 * It is never written to; cap 0 says the data is not ours.
 */
static char	buf_empty[1];

void
pw_buf_init(struct pw_buf *b)
{
	b->cap = 0;
	b->len = 0;
	b->data = buf_empty;
}

void
pw_buf_release(struct pw_buf *b)
{
	if (b->cap != 0)
		free(b->data);
	pw_buf_init(b);
}

void
pw_buf_reset(struct pw_buf *b)
{
	b->len = 0;
	if (b->cap != 0)
		b->data[0] = '\0';
}

void
pw_buf_grow(struct pw_buf *b, size_t n)
{
	size_t	cap = b->cap != 0 ? b->cap : 64;

	if (b->len + n + 1 <= b->cap)
		return;
	while (b->len + n + 1 > cap)
		cap *= 2;
	if (b->cap == 0) {
		b->data = pw_xmalloc(cap);
		b->data[0] = '\0';
	} else
		b->data = pw_xrealloc(b->data, cap);
	b->cap = cap;
}

/*
 * The length of the UTF-8 sequence at p[0..n), 1 to 4, or 0 when it is
 * not one. Valid as RFC 3629 has it: no overlong forms, no surrogates,
 * nothing past U+10FFFF, for a strict decoder at the other end accepts
 * no less.
 */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char	c = p[0], lo = 0x80, hi = 0xbf;
	size_t		k;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		k = 2;
		if (c == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (c == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 3;
		if (c == 0xf0)
			lo = 0x90;	/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;	/* past U+10FFFF */
	} else
		return 0;
	if (n <= k || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t j = 2; j <= k; j++)
		if ((p[j] & 0xc0) != 0x80)
			return 0;
	return k + 1;
}

/* Whether the character p[0..k) is a control: C0, DEL, or C1 (U+0080-9F). */
static int
utf8_control(const unsigned char *p, size_t k)
{
	return p[0] < 0x20 || p[0] == 0x7f ||
	    (k == 2 && p[0] == 0xc2 && p[1] < 0xa0);
}

/*
 * Is p[0..n) valid UTF-8 without NUL, so that JSON can carry it as text?
 * ASCII, most of what comes here, is taken eight bytes at a time.
 */
int
pw_utf8_text(const void *v, size_t n)
{
	const uint64_t		 ones = 0x0101010101010101u;
	const uint64_t		 highs = 0x8080808080808080u;
	const unsigned char	*p = v;
	size_t			 i = 0, k;

	while (i < n) {
		uint64_t w;

		/* No byte with its top bit set, and none zero. */
		if (n - i >= 8 && (memcpy(&w, p + i, 8), ((w | (w - ones)) &
		    highs) == 0)) {
			i += 8;
			continue;
		}
		if (p[i] == 0 || (k = utf8_seq(p + i, n - i)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

const char *
pw_label_why(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, k, n = strlen(s);
	int			 bad = 0;

	/* A control anywhere is said first, bad UTF-8 before it or not. */
	for (i = 0; i < n; i += k) {
		if ((k = utf8_seq(p + i, n - i)) == 0) {
			bad = 1;
			k = 1;
		} else if (utf8_control(p + i, k))
			return "contains a control character";
	}
	return bad ? "not valid UTF-8" : NULL;
}

int
pw_session_ok(const char *s)
{
	size_t	n = strlen(s);

	return n >= 1 && n <= 256 && pw_label_why(s) == NULL;
}

void
pw_buf_add(struct pw_buf *b, const void *p, size_t n)
{
	pw_buf_grow(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
pw_buf_adds(struct pw_buf *b, const char *s)
{
	pw_buf_add(b, s, strlen(s));
}

void
pw_buf_addc(struct pw_buf *b, char c)
{
	pw_buf_grow(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

void
pw_buf_addf(struct pw_buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		pw_buf_grow(b, n);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += n;
}

/*
 * Append s[0..n) as a JSON string: quoted, with '"', '\\' and the control
 * characters escaped, UTF-8 as it is, and each byte that is not part of
 * a valid sequence as U+FFFD: a header value in Latin-1 or a list's
 * stray byte must not make the whole document one no parser reads. A
 * run of plain bytes is copied at once.
 */
void
pw_buf_json(struct pw_buf *b, const char *s, size_t n)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)s, *e = p + n;
	const unsigned char	*run;
	char			 esc[6] = { '\\', 'u', '0', '0' };
	size_t			 k;

	pw_buf_grow(b, n + 2);
	b->data[b->len++] = '"';
	for (;;) {
		for (run = p; p < e; p += k) {
			if (*p < 0x80) {
				if (*p < 0x20 || *p == '"' || *p == '\\')
					break;
				k = 1;
			} else if ((k = utf8_seq(p, e - p)) == 0)
				break;
		}
		pw_buf_add(b, run, p - run);
		if (p == e)
			break;
		if (*p >= 0x80) {
			pw_buf_add(b, "\\ufffd", 6);
			p++;
			continue;
		}
		switch (*p) {
		case '"': pw_buf_add(b, "\\\"", 2); break;
		case '\\': pw_buf_add(b, "\\\\", 2); break;
		case '\b': pw_buf_add(b, "\\b", 2); break;
		case '\f': pw_buf_add(b, "\\f", 2); break;
		case '\n': pw_buf_add(b, "\\n", 2); break;
		case '\r': pw_buf_add(b, "\\r", 2); break;
		case '\t': pw_buf_add(b, "\\t", 2); break;
		default:
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			pw_buf_add(b, esc, 6);
		}
		p++;
	}
	pw_buf_addc(b, '"');
}

char *
pw_buf_detach(struct pw_buf *b)
{
	char	*p = b->cap != 0 ? b->data : pw_xstrdup("");

	pw_buf_init(b);
	return p;
}

char *
pw_dirname(const char *path)
{
	const char	*slash = strrchr(path, '/');

	if (slash == NULL)
		return pw_xstrdup(".");
	if (slash == path)
		return pw_xstrdup("/");
	return pw_xstrndup(path, slash - path);
}

/* mkdir -p; only the directories it creates get mode. */
int
pw_mkdirs(const char *dir, int mode, struct pw_err *err)
{
	char		*p, *s;
	struct stat	 sb;

	if (stat(dir, &sb) == 0) {
		if (S_ISDIR(sb.st_mode))
			return 0;
		return pw_failf(err, PW_EFAIL, "%s: not a directory", dir);
	}
	p = pw_xstrdup(dir);
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			int e = errno;
			pw_failf(err, PW_EFAIL,
			    "%s: cannot create directory: %s", p, strerror(e));
			free(p);
			return PW_EFAIL;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return 0;
}

/* ---------------------------------------------------- listen addresses */

/*
 * Parse "HOST:PORT" ("[::1]:8000" for IPv6) into an address; a host name
 * is looked up. PW_EUSAGE with the reason.
 */
int
pw_listen_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *sl,
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

int
pw_addr_is_loopback(const struct sockaddr_storage *ss)
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
