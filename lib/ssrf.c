/*
 * ssrf.c -- which targets POST /api/v1/request may fetch: not an address
 * of the server's own host or networks (server-side request forgery).
 *
 * The host judged is the one libcurl connects to: the URL is read by
 * libcurl's own parser, never by one of ours. A target's host is
 * resolved here, and every address it resolves to must be allowed; a
 * literal address is judged as it is. IPv4 addresses
 * inside IPv6 ones (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64
 * 64:ff9b::/96, 6to4 2002::/16) are judged as the IPv4 address they
 * carry, so that no spelling of 127.0.0.1 gets through.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net.h"

static const char *const class_names[] = {
	[PW_ADDR_PUBLIC] = "public",
	[PW_ADDR_LOOPBACK] = "loopback",
	[PW_ADDR_PRIVATE] = "private",
	[PW_ADDR_SHARED] = "shared (carrier-grade NAT)",
	[PW_ADDR_LINK_LOCAL] = "link-local",
	[PW_ADDR_UNSPECIFIED] = "unspecified",
	[PW_ADDR_MULTICAST] = "multicast",
	[PW_ADDR_RESERVED] = "reserved",
};

const char *
pw_addr_class_name(int c)
{
	return c >= 0 && c < PW_ADDR_CLASS_COUNT ? class_names[c] : "unknown";
}

/* a (host order) is in net/bits. */
static int
in4(uint32_t a, uint32_t net, int bits)
{
	uint32_t	mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);

	return (a & mask) == (net & mask);
}

int
pw_addr_class4(const unsigned char b[4])
{
	uint32_t	a = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
			    (uint32_t)b[2] << 8 | b[3];

	if (in4(a, 0x00000000, 8))
		return PW_ADDR_UNSPECIFIED;		/* 0/8 "this host" */
	if (in4(a, 0x7f000000, 8))
		return PW_ADDR_LOOPBACK;
	if (in4(a, 0x0a000000, 8) || in4(a, 0xac100000, 12) ||
	    in4(a, 0xc0a80000, 16))
		return PW_ADDR_PRIVATE;
	if (in4(a, 0x64400000, 10))
		return PW_ADDR_SHARED;			/* 100.64/10 */
	if (in4(a, 0xa9fe0000, 16))
		return PW_ADDR_LINK_LOCAL;		/* 169.254/16 */
	if (in4(a, 0xe0000000, 4))
		return PW_ADDR_MULTICAST;
	/*
	 * 192.0.0/24, documentation (192.0.2/24, 198.51.100/24,
	 * 203.0.113/24, as 2001:db8::/32 below), benchmarking 198.18/15,
	 * 240/4 and broadcast.
	 */
	if (in4(a, 0xc0000000, 24) || in4(a, 0xc0000200, 24) ||
	    in4(a, 0xc6336400, 24) || in4(a, 0xcb007100, 24) ||
	    in4(a, 0xc6120000, 15) || in4(a, 0xf0000000, 4))
		return PW_ADDR_RESERVED;
	return PW_ADDR_PUBLIC;
}

int
pw_addr_class6(const unsigned char b[16])
{
	static const unsigned char zero[12];
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0xff, 0xff };
	static const unsigned char nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	int	i;

	if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
		return pw_addr_class4(b + 12);
	if (memcmp(b, zero, 12) == 0) {
		/* :: and ::1, else IPv4-compatible ::a.b.c.d */
		for (i = 12; i < 15 && b[i] == 0; i++)
			;
		if (i == 15 && b[15] == 0)
			return PW_ADDR_UNSPECIFIED;
		if (i == 15 && b[15] == 1)
			return PW_ADDR_LOOPBACK;
		return pw_addr_class4(b + 12);
	}
	if (b[0] == 0x20 && b[1] == 0x02)		/* 6to4 2002::/16 */
		return pw_addr_class4(b + 2);
	if ((b[0] & 0xfe) == 0xfc)			/* fc00::/7 */
		return PW_ADDR_PRIVATE;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)	/* fe80::/10 */
		return PW_ADDR_LINK_LOCAL;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)	/* fec0::/10 */
		return PW_ADDR_PRIVATE;
	if (b[0] == 0xff)
		return PW_ADDR_MULTICAST;
	/* Documentation 2001:db8::/32 and discard 100::/64. */
	if ((b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) ||
	    (b[0] == 0x01 && b[1] == 0x00 && memcmp(b + 2, zero, 6) == 0))
		return PW_ADDR_RESERVED;
	return PW_ADDR_PUBLIC;
}

int
pw_addr_forbidden(int c, int allow_private)
{
	switch (c) {
	case PW_ADDR_PUBLIC:
		return 0;
	case PW_ADDR_LOOPBACK:
	case PW_ADDR_PRIVATE:
	case PW_ADDR_SHARED:
	case PW_ADDR_LINK_LOCAL:
		return !allow_private;
	default:
		/* Never a web server, whoever asks. */
		return 1;
	}
}

/*
 * The host of an http(s) URL into host[n], as libcurl reads it when it
 * fetches the URL: its own parser, with the flags CURLOPT_URL uses, so
 * that the host judged is the host connected to, whatever the URL's
 * user information, backslashes or encodings would make another parser
 * read (RFC 3986 and browsers end the host elsewhere). Brackets of an
 * IPv6 literal removed; percent-encoding and dotted-decimal forms
 * already undone by libcurl. 0; PW_EUSAGE, with why in err, when libcurl
 * would not fetch the URL; 1 when the host cannot be judged here.
 */
static int
url_host(const char *url, char *host, size_t n, struct pw_err *err)
{
	CURLU		*u;
	CURLUcode	 uc;
	char		*h = NULL, *red;
	size_t		 len;
	int		 r = 0;

	if ((r = pw_net_init_lazy(err)) != 0)
		return r;
	if ((u = curl_url()) == NULL)
		return pw_failf(err, PW_ENOMEM, "out of memory");
	if ((uc = curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME |
	    CURLU_NON_SUPPORT_SCHEME)) != CURLUE_OK ||
	    (uc = curl_url_get(u, CURLUPART_HOST, &h, 0)) != CURLUE_OK) {
		/* A password in the URL stays out of the message. */
		red = pw_redact_url(url);
		r = pw_failf(err, PW_EUSAGE, "'%.200s': %s", red,
		    uc == CURLUE_NO_HOST ? "no host in the URL" :
		    curl_url_strerror(uc));
		free(red);
		goto out;
	}
	len = strlen(h);
	if (len > 2 && h[0] == '[' && h[len - 1] == ']')
		memmove(h, h + 1, len -= 2);
	if (len == 0 || len >= n) {
		r = pw_failf(err, PW_EUSAGE, "a host name of %zu bytes", len);
		goto out;
	}
	/*
	 * libcurl turns a name of other characters into its xn-- form
	 * with rules of its own (IDNA, UTS #46): judge that form, or none.
	 */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)h[i] >= 0x80) {
			pw_failf(err, PW_EFAIL, "a host name that is not ASCII "
			    "(give its xn-- form)");
			r = 1;
			goto out;
		}
	memcpy(host, h, len);
	host[len] = '\0';
out:
	curl_free(h);
	curl_url_cleanup(u);
	return r;
}

int
pw_ssrf_check(const char *url, int allow_private, struct pw_err *err)
{
	struct addrinfo	 hints, *ai = NULL, *p;
	char		 host[256], shown[INET6_ADDRSTRLEN];
	int		 e, c;

	if ((e = url_host(url, host, sizeof host, err)) != 0)
		return e;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, NULL, &hints, &ai)) != 0)
		return pw_failf(err, PW_ETARGET, "%s: cannot resolve: %s", host,
		    gai_strerror(e));
	for (p = ai; p != NULL; p = p->ai_next) {
		if (p->ai_family == AF_INET) {
			const struct in_addr *a4 =
			    &((struct sockaddr_in *)p->ai_addr)->sin_addr;
			c = pw_addr_class4((const unsigned char *)a4);
			inet_ntop(AF_INET, a4, shown, sizeof shown);
		} else if (p->ai_family == AF_INET6) {
			const struct in6_addr *a6 =
			    &((struct sockaddr_in6 *)p->ai_addr)->sin6_addr;
			c = pw_addr_class6(a6->s6_addr);
			inet_ntop(AF_INET6, a6, shown, sizeof shown);
		} else
			continue;
		if (pw_addr_forbidden(c, allow_private)) {
			const char *name = pw_addr_class_name(c);
			const char *a = strchr("aeiou", *name) ? "an" : "a";

			if (strcmp(host, shown) == 0)
				pw_failf(err, PW_EFAIL, "%s is %s %s address",
				    host, a, name);
			else
				pw_failf(err, PW_EFAIL, "%s resolves to %s, "
				    "%s %s address", host, shown, a, name);
			freeaddrinfo(ai);
			return 1;
		}
	}
	freeaddrinfo(ai);
	return 0;
}
