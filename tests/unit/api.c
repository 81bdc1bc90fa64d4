/*
 * api.c -- unit tests for the REST server's life cycle (lib/api.c and
 * lib/httpd.c): the listen address, refusals that leave nothing behind,
 * and a start, one request and a stop. Every endpoint is tested through
 * a real pw serve in tests/cli/serve.bats.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "unit.h"
#include "../../lib/httpd.h"

struct fix {
	char		*dir;
	char		*path;
	struct pw_ctx	 ctx;
};

static int
setup(void **state)
{
	struct fix	*f = pw_xcalloc(1, sizeof *f);

	f->dir = unit_tmp_new();
	f->path = unit_path(f->dir, "state.db");
	if (pw_open(&f->ctx, f->path, PW_OPEN_RW) != 0)
		fail_msg("pw_open: %s", f->ctx.err.msg);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	pw_close(&f->ctx);
	free(f->path);
	unit_tmp_free(f->dir);
	free(f);
	return 0;
}

/* A loopback port nobody listens on (the kernel's pick, let go). */
static int
free_port(void)
{
	struct sockaddr_in	sa;
	socklen_t		sl = sizeof sa;
	int			fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* One HTTP/1.0 exchange; the whole response, caller frees. */
static char *
http(int port, const char *request)
{
	struct sockaddr_in	sa;
	struct pw_buf		b;
	char			chunk[4096];
	ssize_t			n;
	int			fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(write(fd, request, strlen(request)),
	    (ssize_t)strlen(request));
	pw_buf_init(&b);
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		pw_buf_add(&b, chunk, n);
	close(fd);
	return pw_buf_detach(&b);
}

static void
test_bad_addresses(void **state)
{
	struct fix		*f = *state;
	struct pw_serve_opts	 o;
	struct pw_server	*s = NULL;
	static const char *const bad[] = {
		"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
		"127.0.0.1:65536", ":8000", "[::1:8000", "[::1]8000",
		"127.0.0.1:80x",
	};

	memset(&o, 0, sizeof o);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o.listen = bad[i];
		assert_int_equal(pw_serve_start(&f->ctx, f->path, &o, &s),
		    PW_EUSAGE);
		assert_null(s);
		assert_non_null(strstr(f->ctx.err.msg, "--listen: '"));
	}
	assert_int_equal(access(f->path, F_OK), -1);
}

static void
test_not_loopback(void **state)
{
	struct fix		*f = *state;
	struct pw_serve_opts	 o;
	struct pw_server	*s = NULL;

	memset(&o, 0, sizeof o);
	o.listen = "0.0.0.0:8000";
	assert_int_equal(pw_serve_start(&f->ctx, f->path, &o, &s), PW_EUSAGE);
	assert_non_null(strstr(f->ctx.err.msg, "not a loopback address"));
	o.listen = "[::]:8000";
	assert_int_equal(pw_serve_start(&f->ctx, f->path, &o, &s), PW_EUSAGE);
	assert_null(s);
	assert_int_equal(access(f->path, F_OK), -1);
}

/* With an API key, a non-loopback address needs no --insecure. */
static void
test_not_loopback_with_key(void **state)
{
	struct fix		*f = *state;
	struct pw_serve_opts	 o;
	struct pw_server	*s = NULL;
	char			*key = NULL, listen[32];

	assert_int_equal(pw_apikey_add(&f->ctx, "ci", NULL, &key), 0);
	pw_secret_free(key);
	memset(&o, 0, sizeof o);
	snprintf(listen, sizeof listen, "0.0.0.0:%d", free_port());
	o.listen = listen;
	assert_int_equal(pw_serve_start(&f->ctx, f->path, &o, &s), 0);
	pw_serve_stop(s, 1000);
}

/* The router, as pw __routes shows it: every path once per method. */
static void
test_routes(void **state)
{
	const char	*path, *method, *prev_m = NULL, *prev_p = NULL;
	int		 open, nopen = 0;
	size_t		 i;

	for (i = 0; (path = pw_serve_route(i, &method, &open)) != NULL; i++) {
		assert_true(path[0] == '/');
		assert_non_null(strstr("GET POST PUT DELETE", method));
		nopen += open;
		if (prev_p != NULL)
			assert_false(strcmp(prev_p, path) == 0 &&
			    strcmp(prev_m, method) == 0);
		prev_p = path;
		prev_m = method;
	}
	assert_true(i >= 18);
	assert_int_equal(nopen, 7);
	assert_null(pw_serve_route(i + 5, &method, &open));
}

static void
test_start_serve_stop(void **state)
{
	struct fix		*f = *state;
	struct pw_serve_opts	 o;
	struct pw_server	*s = NULL;
	char			 listen[32], *resp;
	int			 port = free_port();

	memset(&o, 0, sizeof o);
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	o.listen = listen;
	o.threads = 2;
	assert_int_equal(pw_serve_start(&f->ctx, f->path, &o, &s), 0);
	assert_non_null(s);
	assert_string_equal(pw_serve_address(s), listen);
	/* The state file is made at start, for every worker to see. */
	assert_int_equal(access(f->path, F_OK), 0);
	resp = http(port, "GET /api/v1/ready HTTP/1.0\r\n"
	    "X-Request-ID: unit-1\r\n\r\n");
	assert_true(strncmp(resp, "HTTP/1.0 200", 12) == 0 ||
	    strncmp(resp, "HTTP/1.1 200", 12) == 0);
	assert_non_null(strstr(resp, "\"ready\":true"));
	assert_non_null(strstr(resp, "\"request_id\":\"unit-1\""));
	free(resp);
	resp = http(port, "DELETE /api/v1/ready HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(resp, " 405 "));
	assert_non_null(strstr(resp, "\"code\":\"METHOD_NOT_ALLOWED\""));
	free(resp);
	pw_serve_stop(s, 1000);
	/* The port is let go. */
	assert_int_equal(pw_serve_start(&f->ctx, f->path, &o, &s), 0);
	pw_serve_stop(s, 1000);
	pw_serve_stop(NULL, 0);
}

/* What POST /api/v1/request makes of a target's header block. */
static void
test_headers_text(void **state)
{
	static const char	block[] =
	    "HTTP/1.1 301 Moved\r\nLocation: /a\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nCaf\xe9: b\xe9\r\n\r\n";
	static const char	tail[] =
	    "HTTP/1.1 302 Found\r\nX-B: 1\r\n\r\nHTTP/";
	struct pw_err		err;
	char			*t;

	(void)state;
	assert_int_equal(pw_cjson_init(&err), 0);
	t = pw_api_headers_text(block, sizeof block - 1);
	/*
	 * Found by fuzz_response: a name not in UTF-8 went out as it was.
	 * Each byte that is not is U+FFFD.
	 */
	assert_string_equal(t,
	    "{\"x-a\":\"1, 2\",\"caf\\ufffd\":\"b\\ufffd\"}");
	free(t);
	/* Found by fuzz_response: "HTTP/" at the very end starts a block. */
	t = pw_api_headers_text(tail, sizeof tail - 1);
	assert_string_equal(t, "{}");
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_bad_addresses),
		T(test_not_loopback),
		T(test_not_loopback_with_key),
		T(test_routes),
		T(test_start_serve_stop),
		T(test_headers_text),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
