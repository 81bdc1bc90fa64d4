/*
 * fuzz_ratelimit.c -- libFuzzer target for what the rate limiter reads
 * from outside: its JSON configuration (lib/api.c), a Redis URL, a rate
 * ("10/s"), networks, and the client address behind trusted proxies
 * (lib/ratelimit.c).
 *
 * The first byte chooses the parser; the rest is its input. Properties:
 *   - the configuration parses or fails with a one-line message; when it
 *     parses it passes pw_rl_config_check and every limit is in range;
 *   - a Redis URL's password never appears in an error;
 *   - a rate that parses has a limit from 1 to 10^9 and a window from
 *     1 s to a day;
 *   - the client address behind X-Forwarded-For is printable and fits.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/ratelimit.h"

#define MARK	"Zq9xPASSWORDx"

static void
die(const char *what, const char *in)
{
	fprintf(stderr, "fuzz_ratelimit: %s\n  input: '%s'\n", what, in);
	abort();
}

static void
one_line(const char *msg, const char *in)
{
	if (*msg == '\0')
		die("empty message", in);
	for (const char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			die("message of several lines", in);
}

static void
config(const char *data, size_t n, const char *in)
{
	struct pw_rl_config	c;
	struct pw_err		err = { 0, "" };

	if (pw_rl_config_parse(data, n, &c, &err) != 0) {
		one_line(err.msg, in);
		return;
	}
	if (pw_rl_config_check(&c, &err) != 0)
		die("parsed, but the check refuses it", in);
	for (size_t i = 0; i < c.ntiers; i++)
		if (c.tiers[i].lim.limit < 0 || c.tiers[i].lim.window_ms < 1000)
			die("a tier out of range", in);
	for (size_t i = 0; i < c.nendpoints; i++)
		if (c.endpoints[i].lim.limit < 0 ||
		    c.endpoints[i].lim.window_ms < 1000)
			die("an endpoint out of range", in);
	pw_rl_config_release(&c);
}

static void
redis_url(const char *in)
{
	struct pw_rl_opts	 o = { .backend = PW_RL_REDIS };
	struct pw_rl		*rl;
	struct pw_err		 err = { 0, "" };
	char			*url;

	url = pw_xasprintf("redis://u:%s@%s", MARK, in);
	o.redis_url = url;
	if (pw_rl_new(&o, &rl, &err) == 0)
		pw_rl_free(rl);
	else if (strstr(err.msg, MARK) != NULL)
		die("the password in an error", in);
	(void)pw_rl_redis_url_ok(in);
	free(url);
}

static void
rate(const char *in)
{
	int64_t	l, w;

	if (pw_parse_rate(in, &l, &w) != 0)
		return;
	if (l == 0 ? w != 0 : (l < 1 || l > 1000000000 || w < 1000 ||
	    w > 86400000))
		die("a rate out of range", in);
}

static void
client(const char *in)
{
	struct pw_rl_config	c;
	struct pw_rl_net	n;
	struct sockaddr_in	peer = { .sin_family = AF_INET };
	char			buf[64];
	const char		*nul = in + strlen(in);

	(void)pw_rl_net_parse(in, &n);
	pw_rl_config_default(&c);
	c.trusted = pw_xcalloc(1, sizeof *c.trusted);
	pw_rl_net_parse("127.0.0.0/8", &c.trusted[0]);
	c.ntrusted = 1;
	peer.sin_addr.s_addr = htonl(0x7f000001);
	pw_rl_client(&c, (struct sockaddr *)&peer, in, nul, buf, sizeof buf);
	if (strlen(buf) >= sizeof buf)
		die("an address that does not fit", in);
	for (const char *p = buf; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			die("an address that is not printable", in);
	(void)pw_rl_config_whitelisted(&c, in, buf);
	pw_rl_config_release(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*in;

	if (size < 1)
		return 0;
	in = pw_xstrndup((const char *)data + 1, size - 1);
	switch (data[0] % 4) {
	case 0:
		config((const char *)data + 1, size - 1, in);
		break;
	case 1:
		redis_url(in);
		break;
	case 2:
		rate(in);
		break;
	case 3:
		client(in);
		break;
	}
	free(in);
	return 0;
}
