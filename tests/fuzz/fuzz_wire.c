/*
 * fuzz_wire.c -- libFuzzer target for the gateway's parsers (lib/wire.c).
 *
 * The input is given to every parser. Each must stay inside the bytes it
 * was given and report what it parsed consistently:
 *   - a request or response head ends where the parser says, its host
 *     and port are sane, and its offsets lie inside the head;
 *   - the body framing gives the same result fed whole and fed one byte
 *     at a time (the split never changes where a message ends);
 *   - the SOCKS5 parsers never claim more than they were given;
 *   - a user name either parses into sane controls or says why not.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/wire.h"

static void
die(const char *what)
{
	fprintf(stderr, "fuzz_wire: %s\n", what);
	abort();
}

static void
fuzz_request(const char *p, size_t n)
{
	struct pw_wire_req	r;
	int			k = pw_wire_request(p, n, &r);

	if (k <= 0)
		return;
	if ((size_t)k > n || r.head_len != (size_t)k)
		die("request head past the input");
	if (r.host[0] == '\0' || r.port < 1 || r.port > 65535)
		die("request host or port");
	if (r.target_off + r.target_len > r.head_len ||
	    r.auth_off + r.auth_len > r.head_len ||
	    r.pconn_off + r.pconn_len > r.head_len)
		die("request offsets past the head");
	if (!r.connect && (r.path_off < r.target_off ||
	    r.path_off > r.target_off + r.target_len))
		die("path outside the target");
	if (r.chunked && r.content_length >= 0)
		die("both chunked and a length");
}

static void
fuzz_response(const char *p, size_t n)
{
	struct pw_wire_resp	r;
	int			k = pw_wire_response(p, n, &r);

	if (k <= 0)
		return;
	if ((size_t)k > n || r.head_len != (size_t)k)
		die("response head past the input");
	if (r.status < 0 || r.status > 999)
		die("status out of range");
}

static void
fuzz_body(const char *p, size_t n, int chunked, int64_t len)
{
	struct pw_wire_body	a, b;
	ssize_t			ka, kb = 0;
	int			da, db = 0;

	pw_wire_body_init(&a, chunked, len);
	pw_wire_body_init(&b, chunked, len);
	ka = pw_wire_body_feed(&a, p, n, &da);
	db = pw_wire_body_done(&b);
	if (ka > (ssize_t)n)
		die("body took more than it was given");
	for (size_t i = 0; i < n && !db; i++) {
		ssize_t k = pw_wire_body_feed(&b, p + i, 1, &db);
		if (k < 0) {
			kb = -1;
			break;
		}
		kb += k;
		if (k == 0 && !db)
			break;
	}
	if ((ka < 0) != (kb < 0))
		die("body error depends on the split");
	if (ka >= 0 && (ka != kb || da != db))
		die("body end depends on the split");
}

static void
fuzz_socks(const unsigned char *p, size_t n)
{
	char		user[PW_WIRE_NAME_MAX + 1], pass[PW_WIRE_NAME_MAX + 1];
	char		host[PW_WIRE_NAME_MAX + 1];
	unsigned int	m;
	int		cmd, port, k;

	if ((k = pw_socks5_greeting(p, n, &m)) > (int)n)
		die("greeting past the input");
	if ((k = pw_socks5_auth(p, n, user, pass)) > (int)n)
		die("auth past the input");
	if ((k = pw_socks5_request(p, n, &cmd, host, &port)) > (int)n)
		die("request past the input");
	if (k > 0 && (port < 1 || port > 65535 || host[0] == '\0'))
		die("socks host or port");
}

static void
fuzz_user(const char *p, size_t n)
{
	struct pw_wire_user	u;
	struct pw_err		err;
	char			*s;

	s = pw_xstrndup(p, n);
	if (pw_wire_user(s, &u, &err) == 0) {
		if (u.country[0] != '\0' && (strlen(u.country) != 2 ||
		    u.country[0] < 'A' || u.country[0] > 'Z'))
			die("country not canonical");
	} else if (err.msg[0] == '\0')
		die("refused without a reason");
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data;

	if (size > 3 * PW_WIRE_HEAD_MAX)
		return 0;
	fuzz_request(p, size);
	fuzz_response(p, size);
	fuzz_body(p, size, 1, -1);
	fuzz_body(p, size, 0, size > 0 ? data[0] : 0);
	fuzz_socks(data, size);
	fuzz_user(p, size);
	return 0;
}
