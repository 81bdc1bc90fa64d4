/*
 * wire.c -- unit tests for the gateway's parsers (lib/wire.c): HTTP proxy
 * request heads, response heads, body framing, SOCKS5, user-name
 * controls and base64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/wire.h"

static int
req(const char *s, struct pw_wire_req *r)
{
	return pw_wire_request(s, strlen(s), r);
}

static void
test_connect(void **state)
{
	struct pw_wire_req	r;
	const char		*s = "CONNECT Example.org:443 HTTP/1.1\r\n"
	    "Host: example.org:443\r\n\r\n";

	assert_int_equal(req(s, &r), (int)strlen(s));
	assert_true(r.connect);
	assert_string_equal(r.host, "example.org");
	assert_int_equal(r.port, 443);
	assert_false(r.has_auth);
	assert_true(r.keep_alive);
	assert_int_equal(req("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n", &r), 31);
	assert_string_equal(r.host, "::1");
	assert_int_equal(r.port, 8443);
	/* A CONNECT needs a port, in range. */
	assert_int_equal(req("CONNECT example.org HTTP/1.1\r\n\r\n", &r),
	    -400);
	assert_int_equal(req("CONNECT a:70000 HTTP/1.1\r\n\r\n", &r), -400);
	assert_int_equal(req("CONNECT a:0 HTTP/1.1\r\n\r\n", &r), -400);
}

static void
test_absolute_form(void **state)
{
	struct pw_wire_req	r;
	const char		*s = "GET http://h.example:8080/a/b?c=1 "
	    "HTTP/1.1\r\nHost: h\r\n\r\n";

	assert_int_equal(req(s, &r), (int)strlen(s));
	assert_false(r.connect);
	assert_string_equal(r.host, "h.example");
	assert_int_equal(r.port, 8080);
	assert_int_equal(r.target_off, 4);
	assert_memory_equal(s + r.path_off, "/a/b?c=1 ", 9);
	assert_int_equal(req("GET http://h HTTP/1.1\r\n\r\n", &r), 25);
	assert_int_equal(r.port, 80);
	assert_int_equal(r.path_off, r.target_off + r.target_len);
	assert_int_equal(req("HEAD http://h/ HTTP/1.0\r\n\r\n", &r), 27);
	assert_true(r.head);
	assert_false(r.keep_alive);
	s = "GET http://h/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
	assert_int_equal(req(s, &r), (int)strlen(s));
	assert_true(r.keep_alive);
	s = "GET http://h/ HTTP/1.1\r\nProxy-Connection: close\r\n\r\n";
	assert_int_equal(req(s, &r), (int)strlen(s));
	assert_false(r.keep_alive);
	assert_int_equal(r.pconn_off, 24);
	assert_int_equal(r.pconn_len, strlen(s) - 24 - 2);
}

static void
test_refused_requests(void **state)
{
	struct pw_wire_req	r;
	char			big[PW_WIRE_HEAD_MAX + 10];

	assert_int_equal(req("GET https://h/ HTTP/1.1\r\n\r\n", &r), -501);
	assert_int_equal(req("GET /relative HTTP/1.1\r\n\r\n", &r), -400);
	assert_int_equal(req("GET http://u@h/ HTTP/1.1\r\n\r\n", &r), -400);
	assert_int_equal(req("GET http://h/ HTTP/2.0\r\n\r\n", &r), -400);
	assert_int_equal(req("GET http://h/ HTTP/1.1\r\nBad Name: x\r\n\r\n",
	    &r), -400);
	assert_int_equal(req("GET http://h/ HTTP/1.1\r\n folded\r\n\r\n", &r),
	    -400);
	/* Two readers must not disagree about where the body ends. */
	assert_int_equal(req("POST http://h/ HTTP/1.1\r\nContent-Length: 3\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", &r), -400);
	assert_int_equal(req("POST http://h/ HTTP/1.1\r\nContent-Length: 3\r\n"
	    "Content-Length: 4\r\n\r\n", &r), -400);
	assert_int_equal(req("POST http://h/ HTTP/1.1\r\nTransfer-Encoding: "
	    "gzip\r\n\r\n", &r), -400);
	assert_int_equal(req("POST http://h/ HTTP/1.1\r\nContent-Length: "
	    "-1\r\n\r\n", &r), -400);
	/*
	 * Lines that end in a bare LF: refused as soon as one has come, for
	 * the CRLF CRLF that ends a head never will.
	 */
	assert_int_equal(req("GET http://h/ HTTP/1.1\nHost: h\n\n", &r),
	    -400);
	assert_int_equal(req("GET http://h/ HTTP/1.1\n", &r), -400);
	assert_int_equal(req("GET http://h/ HTTP/1.1\r\nHost: h\n\r\n", &r),
	    -400);
	assert_int_equal(req("\n", &r), -400);
	assert_true(pw_wire_bare_lf("a\r\nb\n", 6));
	assert_false(pw_wire_bare_lf("a\r\nb\r\n", 7));
	assert_false(pw_wire_bare_lf("a\r", 2));
	/* Not complete yet, or too long to ever be. */
	assert_int_equal(req("GET http://h/ HTTP/1.1\r\nHost: h\r\n", &r), 0);
	assert_int_equal(req("GET http://h/ HTTP/1.1\r", &r), 0);
	memset(big, 'a', sizeof big);
	assert_int_equal(pw_wire_request(big, sizeof big, &r), -431);
}

static void
test_proxy_authorization(void **state)
{
	struct pw_wire_req	 r;
	/* "me-session-1:pa:ss" */
	const char		*s = "CONNECT h:443 HTTP/1.1\r\n"
	    "Proxy-Authorization: Basic bWUtc2Vzc2lvbi0xOnBhOnNz\r\n\r\n";

	assert_int_equal(req(s, &r), (int)strlen(s));
	assert_true(r.has_auth);
	assert_string_equal(r.user, "me-session-1");
	assert_string_equal(r.pass, "pa:ss");
	assert_int_equal(r.auth_off, 24);
	assert_int_equal(r.auth_len, strlen(s) - 24 - 2);
	/* Not Basic, or not base64: no credentials (the gateway says 407). */
	s = "CONNECT h:1 HTTP/1.1\r\nProxy-Authorization: Bearer x\r\n\r\n";
	assert_int_equal(req(s, &r), (int)strlen(s));
	assert_false(r.has_auth);
	s = "CONNECT h:1 HTTP/1.1\r\nProxy-Authorization: Basic !!!\r\n\r\n";
	assert_int_equal(req(s, &r), (int)strlen(s));
	assert_false(r.has_auth);
}

static void
test_response(void **state)
{
	struct pw_wire_resp	r;
	const char		*s;

	s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
	assert_int_equal(pw_wire_response(s, strlen(s), &r), (int)strlen(s));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.content_length, 12);
	assert_false(r.chunked);
	assert_false(r.close);
	s = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n";
	assert_int_equal(pw_wire_response(s, strlen(s), &r), (int)strlen(s));
	assert_int_equal(r.status, 404);
	assert_true(r.chunked);
	assert_true(r.close);
	s = "HTTP/1.0 204\r\n\r\n";
	assert_int_equal(pw_wire_response(s, strlen(s), &r), (int)strlen(s));
	assert_true(r.close);
	assert_int_equal(pw_wire_response("HTTP/1.1 200 OK\r\n", 17, &r), 0);
	assert_int_equal(pw_wire_response("SSH-2.0-x\r\n\r\n", 13, &r), -1);
}

/* Feed s in pieces of step bytes; the bytes taken, and done. */
static size_t
feed(struct pw_wire_body *b, const char *s, size_t n, size_t step, int *done)
{
	size_t	off = 0;

	*done = 0;
	while (off < n && !*done) {
		size_t m = n - off < step ? n - off : step;
		ssize_t k = pw_wire_body_feed(b, s + off, m, done);
		assert_true(k >= 0);
		off += (size_t)k;
		if ((size_t)k < m)
			break;
	}
	return off;
}

static void
test_body_length(void **state)
{
	struct pw_wire_body	b;
	int			done;

	pw_wire_body_init(&b, 0, 5);
	assert_int_equal(feed(&b, "helloGET", 8, 3, &done), 5);
	assert_true(done);
	pw_wire_body_init(&b, 0, 0);
	assert_true(pw_wire_body_done(&b));
	pw_wire_body_init(&b, 0, -1);
	assert_true(b.until_close);
	assert_int_equal(feed(&b, "anything", 8, 8, &done), 8);
	assert_false(done);
}

static void
test_body_chunked(void **state)
{
	const char		*s = "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n"
	    "0\r\nTrailer: x\r\n\r\nNEXT";
	struct pw_wire_body	 b;
	int			 done;
	size_t			 body = strlen(s) - 4;

	for (size_t step = 1; step <= strlen(s); step++) {
		pw_wire_body_init(&b, 1, -1);
		assert_int_equal(feed(&b, s, strlen(s), step, &done), body);
		assert_true(done);
	}
	pw_wire_body_init(&b, 1, -1);
	assert_int_equal(feed(&b, "0\r\n\r\n", 5, 1, &done), 5);
	assert_true(done);
	/* Malformed: no size, no CRLF after the data, an overflow. */
	pw_wire_body_init(&b, 1, -1);
	assert_int_equal(pw_wire_body_feed(&b, "x\r\n", 3, &done), -1);
	pw_wire_body_init(&b, 1, -1);
	assert_int_equal(pw_wire_body_feed(&b, "1\r\nab", 5, &done), -1);
	pw_wire_body_init(&b, 1, -1);
	assert_int_equal(pw_wire_body_feed(&b, "fffffffffffffffff\r\n", 19,
	    &done), -1);
}

static void
test_socks5(void **state)
{
	const unsigned char	g[] = { 5, 2, 0, 2 }, a[] = { 1, 2, 'm', 'e',
	    3, 'p', 'w', 'd' };
	const unsigned char	v4[] = { 5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90 };
	const unsigned char	dn[] = { 5, 1, 0, 3, 9, 'l', 'o', 'c', 'a',
	    'l', 'h', 'o', 's', 't', 0, 80 };
	unsigned char		v6[22] = { 5, 1, 0, 4 };
	const unsigned char	bind[] = { 5, 2, 0, 1, 1, 2, 3, 4, 0, 80 };
	const unsigned char	bad[] = { 5, 1, 0, 9, 0 };
	char			user[PW_WIRE_NAME_MAX + 1];
	char			pass[PW_WIRE_NAME_MAX + 1];
	char			host[PW_WIRE_NAME_MAX + 1];
	unsigned int		m = 0;
	int			cmd, port;

	assert_int_equal(pw_socks5_greeting(g, 3, &m), 0);
	assert_int_equal(pw_socks5_greeting(g, 4, &m), 4);
	assert_int_equal(m, (1u << 0) | (1u << 2));
	assert_int_equal(pw_socks5_greeting((const unsigned char *)"\4\1", 2,
	    &m), -1);
	assert_int_equal(pw_socks5_auth(a, 7, user, pass), 0);
	assert_int_equal(pw_socks5_auth(a, 8, user, pass), 8);
	assert_string_equal(user, "me");
	assert_string_equal(pass, "pwd");
	assert_int_equal(pw_socks5_request(v4, sizeof v4, &cmd, host, &port),
	    10);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);
	assert_int_equal(pw_socks5_request(dn, sizeof dn - 1, &cmd, host,
	    &port), 0);
	assert_int_equal(pw_socks5_request(dn, sizeof dn, &cmd, host, &port),
	    16);
	assert_string_equal(host, "localhost");
	v6[19] = 1;
	v6[21] = 80;
	assert_int_equal(pw_socks5_request(v6, sizeof v6, &cmd, host, &port),
	    22);
	assert_string_equal(host, "::1");
	assert_int_equal(pw_socks5_request(bind, sizeof bind, &cmd, host,
	    &port), -7);
	assert_int_equal(pw_socks5_request(bad, sizeof bad, &cmd, host, &port),
	    -8);
}

static void
test_user_controls(void **state)
{
	struct pw_wire_user	u;
	struct pw_err		err;

	assert_int_equal(pw_wire_user("me", &u, &err), 0);
	assert_string_equal(u.user, "me");
	assert_string_equal(u.session, "");
	assert_int_equal(pw_wire_user("me-country-de-session-a-b-strategy-"
	    "least-used", &u, &err), 0);
	assert_string_equal(u.country, "DE");
	assert_string_equal(u.session, "a-b");
	assert_string_equal(u.strategy, "least-used");
	assert_int_equal(pw_wire_user("me-strategy-round-robin-country-us",
	    &u, &err), 0);
	assert_string_equal(u.strategy, "round-robin");
	assert_string_equal(u.country, "US");
	assert_int_equal(pw_wire_user("me-colour-red", &u, &err), PW_EUSAGE);
	assert_string_equal(err.msg, "'colour': unknown control in the user "
	    "name (session, country, strategy)");
	assert_int_equal(pw_wire_user("me-session-1-session-2", &u, &err),
	    PW_EUSAGE);
	assert_string_equal(err.msg, "session: given twice in the user name");
	assert_int_equal(pw_wire_user("me-session", &u, &err), PW_EUSAGE);
	assert_int_equal(pw_wire_user("me-country-zz9", &u, &err), PW_EUSAGE);
	assert_int_equal(pw_wire_user("me-country-", &u, &err), PW_EUSAGE);
}

static void
test_base64(void **state)
{
	struct pw_buf	b;

	pw_buf_init(&b);
	pw_wire_base64(&b, "u:p", 3);
	pw_buf_adds(&b, " ");
	pw_wire_base64(&b, "ab", 2);
	pw_buf_adds(&b, " ");
	pw_wire_base64(&b, "a", 1);
	assert_string_equal(b.data, "dTpw YWI= YQ==");
	pw_buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect),
		cmocka_unit_test(test_absolute_form),
		cmocka_unit_test(test_refused_requests),
		cmocka_unit_test(test_proxy_authorization),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_body_length),
		cmocka_unit_test(test_body_chunked),
		cmocka_unit_test(test_socks5),
		cmocka_unit_test(test_user_controls),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
