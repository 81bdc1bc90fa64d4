/*
 * proxy.c -- proxy URL parsing, normalisation, formatting and redaction.
 *
 * Accepted: [scheme://][user[:pass]@]host[:port][/]
 *   scheme  http https socks4 socks4a socks5 socks5h (any case)
 *   host    a name, an IPv4 address, or an IPv6 address in brackets
 *   port    1-65535; the scheme's default when absent
 * user and pass may be percent-encoded; they are kept decoded.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const struct {
	const char	*name;
	int		 port;
} schemes[PW_SCHEME_COUNT] = {
	[PW_HTTP] = { "http", 80 },
	[PW_HTTPS] = { "https", 443 },
	[PW_SOCKS4] = { "socks4", 1080 },
	[PW_SOCKS4A] = { "socks4a", 1080 },
	[PW_SOCKS5] = { "socks5", 1080 },
	[PW_SOCKS5H] = { "socks5h", 1080 },
};

const char *
pw_scheme_name(enum pw_scheme s)
{
	return (unsigned)s < PW_SCHEME_COUNT ? schemes[s].name : "?";
}

int
pw_scheme_default_port(enum pw_scheme s)
{
	return schemes[s].port;
}

int
pw_scheme_parse(const char *name, enum pw_scheme *out)
{
	for (int i = 0; i < PW_SCHEME_COUNT; i++) {
		if (strcasecmp(name, schemes[i].name) == 0) {
			*out = i;
			return 0;
		}
	}
	return PW_EUSAGE;
}

/*
 * Where a scheme's "://" is: only where nothing before it can be part of
 * user info, host or path, so "u:p@h/x://" has no scheme to hide behind.
 */
static const char *
scheme_end(const char *url)
{
	size_t	n = strcspn(url, ":/?#@");

	return strncmp(url + n, "://", 3) == 0 ? url + n : NULL;
}

/*
 * Mask the user info: everything from the authority's start to its last
 * '@'. The authority ends at the first character of stop.
 */
static char *
mask_userinfo(const char *url, const char *stop)
{
	const char	*auth, *end, *at = NULL, *p;
	struct pw_buf	 b;

	p = scheme_end(url);
	auth = p != NULL ? p + 3 : url;
	end = auth + strcspn(auth, stop);
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return pw_xstrdup(url);
	pw_buf_init(&b);
	pw_buf_add(&b, url, auth - url);
	pw_buf_adds(&b, memchr(auth, ':', at - auth) ? "***:***" : "***");
	pw_buf_adds(&b, at);
	return pw_buf_detach(&b);
}

/*
 * The input as it may appear in a message: password masked, control
 * characters escaped, long input cut. The input is malformed, so its
 * user info is taken to run to the last '@' of all: a password may hold
 * a '/', '?' or '#' that the user forgot to percent-encode.
 */
static char *
quote_input(const char *url)
{
	struct pw_buf	 b;
	char		*red = mask_userinfo(url, "");
	size_t		 n = 0;

	pw_buf_init(&b);
	for (const unsigned char *s = (unsigned char *)red; *s; s++, n++) {
		if (n == 96) {
			pw_buf_adds(&b, "...");
			break;
		}
		if (*s < 0x20 || *s == 0x7f)
			pw_buf_addf(&b, "\\x%02x", *s);
		else
			pw_buf_addc(&b, *s);
	}
	free(red);
	return pw_buf_detach(&b);
}

static int
bad(struct pw_err *err, const char *url, const char *why)
{
	char	*q = quote_input(url);

	pw_failf(err, PW_EUSAGE, "'%s': %s", q, why);
	free(q);
	return PW_EUSAGE;
}

/* Percent-decode [s, s+n); NULL when an escape is malformed or yields NUL. */
static char *
pct_decode(const char *s, size_t n)
{
	char	*out = pw_xmalloc(n + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= n) {
			free(out);
			return NULL;
		}
		int hi = pw_hex_digit((unsigned char)s[i + 1]);
		int lo = pw_hex_digit((unsigned char)s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = '\0';
	return out;
}

static int
valid_hostname(const char *h, size_t n)
{
	size_t	label = 0;

	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = h[i];
		if (c == '.') {
			if (label == 0 || h[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return h[n - 1] != '-';
}

static int
all_ipv4ish(const char *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)h[i]) && h[i] != '.')
			return 0;
	return 1;
}

int
pw_addr_parse(const char *url, struct pw_addr *a, struct pw_err *err)
{
	const char	*s, *p, *auth, *end, *at, *host, *hend, *colon;
	enum pw_scheme	 scheme = PW_HTTP;
	char		*user = NULL, *pass = NULL, *hostc = NULL;
	long		 port;

	if (url == NULL || *url == '\0')
		return pw_failf(err, PW_EUSAGE, "'': empty proxy URL");
	for (s = url; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return bad(err, url, "contains a control character");
		if (*s == ' ')
			return bad(err, url, "contains a space");
	}

	/* Scheme. */
	p = scheme_end(url);
	if (p != NULL) {
		char name[16];
		size_t n = p - url;
		if (n == 0)
			return bad(err, url, "missing scheme before ://");
		if (n >= sizeof name) {
			return bad(err, url, "unsupported scheme (use http, "
			    "https, socks4, socks4a, socks5 or socks5h)");
		}
		memcpy(name, url, n);
		name[n] = '\0';
		if (pw_scheme_parse(name, &scheme) != 0) {
			char why[96];
			snprintf(why, sizeof why,
			    "unsupported scheme '%s' (use http, https, "
			    "socks4, socks4a, socks5 or socks5h)", name);
			return bad(err, url, why);
		}
		auth = p + 3;
	} else
		auth = url;

	/* Authority ends at '/', '?' or '#'; only a lone '/' may follow. */
	end = auth + strcspn(auth, "/?#");
	if (*end != '\0' && strcmp(end, "/") != 0)
		return bad(err, url, "a proxy URL has no path, query or "
		    "fragment");
	if (end == auth)
		return bad(err, url, "missing host");

	/* Userinfo: up to the last '@' of the authority. */
	at = NULL;
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	host = auth;
	if (at != NULL) {
		const char *c = memchr(auth, ':', at - auth);
		const char *uend = c ? c : at;
		if (uend == auth)
			return bad(err, url, "empty user name");
		if ((user = pct_decode(auth, uend - auth)) == NULL)
			return bad(err, url, "bad percent-encoding in user "
			    "name");
		if (c != NULL && (pass = pct_decode(c + 1, at - c - 1)) ==
		    NULL) {
			pw_secret_free(user);
			return bad(err, url, "bad percent-encoding in "
			    "password");
		}
		host = at + 1;
	}

	/* Host: [v6] or name/v4, then an optional :port. */
	colon = NULL;
	if (*host == '[') {
		hend = memchr(host, ']', end - host);
		if (hend == NULL) {
			bad(err, url, "unterminated '[' in IPv6 address");
			goto fail;
		}
		char v6[INET6_ADDRSTRLEN + 1];
		unsigned char bin[16];
		size_t n = hend - host - 1;
		if (n == 0 || n >= sizeof v6) {
			bad(err, url, "bad IPv6 address");
			goto fail;
		}
		memcpy(v6, host + 1, n);
		v6[n] = '\0';
		if (inet_pton(AF_INET6, v6, bin) != 1) {
			bad(err, url, "bad IPv6 address");
			goto fail;
		}
		/* Print it back in the canonical (RFC 5952) form. */
		inet_ntop(AF_INET6, bin, v6, sizeof v6);
		hostc = pw_xstrdup(v6);
		if (hend + 1 < end) {
			if (hend[1] != ':') {
				bad(err, url, "junk after IPv6 address");
				goto fail;
			}
			colon = hend + 1;
		}
	} else {
		colon = memchr(host, ':', end - host);
		hend = colon ? colon : end;
		if (hend == host) {
			bad(err, url, "missing host");
			goto fail;
		}
		if (all_ipv4ish(host, hend - host)) {
			char v4[16];
			struct in_addr in;
			size_t n = hend - host;
			if (n >= sizeof v4 || (memcpy(v4, host, n), v4[n] = 0,
			    inet_pton(AF_INET, v4, &in) != 1)) {
				bad(err, url, "bad IPv4 address");
				goto fail;
			}
		} else if (!valid_hostname(host, hend - host)) {
			bad(err, url, "bad host name");
			goto fail;
		}
		hostc = pw_xstrndup(host, hend - host);
		for (char *c = hostc; *c; c++)
			*c = tolower((unsigned char)*c);
	}

	port = pw_scheme_default_port(scheme);
	if (colon != NULL) {
		const char *d = colon + 1;
		if (d == end) {
			bad(err, url, "missing port after ':'");
			goto fail;
		}
		port = 0;
		for (p = d; p < end; p++) {
			if (!isdigit((unsigned char)*p)) {
				bad(err, url, "port is not a number");
				goto fail;
			}
			if (port <= 65535)
				port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535) {
			bad(err, url, "port out of range (1-65535)");
			goto fail;
		}
	}

	a->scheme = scheme;
	a->host = hostc;
	a->port = (int)port;
	a->user = user;
	a->pass = pass;
	return 0;

fail:
	free(hostc);
	pw_secret_free(user);
	pw_secret_free(pass);
	return PW_EUSAGE;
}

void
pw_addr_release(struct pw_addr *a)
{
	if (a == NULL)
		return;
	free(a->host);
	pw_secret_free(a->user);
	pw_secret_free(a->pass);
	a->host = a->user = a->pass = NULL;
}

static void
pct_encode(struct pw_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = *s;
		if (isalnum(c) || strchr("-._~", c) != NULL)
			pw_buf_addc(b, c);
		else
			pw_buf_addf(b, "%%%02X", c);
	}
}

char *
pw_addr_format(const struct pw_addr *a, int creds)
{
	struct pw_buf	b;
	char		digits[10];
	size_t		i = sizeof digits;
	unsigned	port;
	int		v6;

	pw_buf_init(&b);
	pw_buf_adds(&b, pw_scheme_name(a->scheme));
	pw_buf_adds(&b, "://");
	if (creds != PW_CREDS_NONE && a->user != NULL) {
		if (creds == PW_CREDS_SHOW) {
			pct_encode(&b, a->user);
			if (a->pass != NULL) {
				pw_buf_addc(&b, ':');
				pct_encode(&b, a->pass);
			}
		} else
			pw_buf_adds(&b, a->pass != NULL ? "***:***" : "***");
		pw_buf_addc(&b, '@');
	}
	/* By hand, not printf: a warm formats every proxy of a list. */
	if ((v6 = strchr(a->host, ':') != NULL))
		pw_buf_addc(&b, '[');
	pw_buf_adds(&b, a->host);
	if (v6)
		pw_buf_addc(&b, ']');
	pw_buf_addc(&b, ':');
	port = (unsigned)a->port;
	do
		digits[--i] = (char)('0' + port % 10);
	while ((port /= 10) > 0 && i > 0);
	pw_buf_add(&b, digits + i, sizeof digits - i);
	return pw_buf_detach(&b);
}

char *
pw_redact_url(const char *url)
{
	return mask_userinfo(url, "/?#");
}
