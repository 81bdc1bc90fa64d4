/*
 * service.c -- unit tests for the client side of delegation (lib/service.c)
 * and its tables (lib/store.c): when a selection is delegated, breakers,
 * the cache, the outbox, and the fallback when no endpoint answers. The
 * service side is driven end to end by tests/cli/delegate.bats.
 */
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
	setenv("PW_SECRET_KEY", UNIT_KEY_HEX, 1);
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

static void
set(struct pw_ctx *ctx, const char *k, const char *v)
{
	struct pw_err	err = { 0 };

	if (pw_config_set_flag(ctx->cfg, k, v, &err) != 0)
		fail_msg("%s=%s: %s", k, v, err.msg);
}

static void
test_parse_ms(void **state)
{
	int64_t	ms = -1;

	(void)state;
	assert_int_equal(pw_parse_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(pw_parse_ms("0.5", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(pw_parse_ms("2s", &ms), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(pw_parse_ms(".25", &ms), 0);
	assert_int_equal(ms, 250);
	ms = 7;
	assert_int_equal(pw_parse_ms("", &ms), PW_EUSAGE);
	assert_int_equal(pw_parse_ms("-1", &ms), PW_EUSAGE);
	assert_int_equal(pw_parse_ms("5m", &ms), PW_EUSAGE);
	assert_int_equal(pw_parse_ms("1e12", &ms), PW_EUSAGE);
	assert_int_equal(pw_parse_ms("ms", &ms), PW_EUSAGE);
	/* The cap is 10^9 ms in either unit: 10^9 s once passed. */
	assert_int_equal(pw_parse_ms("22250250", &ms), PW_EUSAGE);
	assert_int_equal(pw_parse_ms("1000001s", &ms), PW_EUSAGE);
	assert_int_equal(ms, 7);
	assert_int_equal(pw_parse_ms("1000000s", &ms), 0);
	assert_int_equal(ms, 1000000000);
}

/* The answer of a service read over a plain socket. */
static void
test_answer_parse(void **state)
{
	static const char	ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2"
				    "\r\n\r\n{}junk";
	long			st = 0;
	size_t			off = 0, len = 0;

	(void)state;
	/* Whole once Content-Length bytes came; the junk is not body. */
	assert_int_equal(pw_service_answer_parse(ok, 39, 0, &st, &off, &len),
	    0);
	assert_int_equal(pw_service_answer_parse(ok, sizeof ok - 1, 0, &st,
	    &off, &len), 1);
	assert_int_equal(st, 200);
	assert_int_equal(off, 38);
	assert_int_equal(len, 2);
	/* Without a length, at the close. */
	assert_int_equal(pw_service_answer_parse("HTTP/1.0 503 x\r\n\r\nab",
	    20, 0, &st, &off, &len), 0);
	assert_int_equal(pw_service_answer_parse("HTTP/1.0 503 x\r\n\r\nab",
	    20, 1, &st, &off, &len), 1);
	assert_int_equal(st, 503);
	assert_int_equal(len, 2);
	/* Not an answer: a status that is not three digits. */
	assert_int_equal(pw_service_answer_parse("HTTP/1.1 2000 OK\r\n\r\n",
	    21, 1, &st, &off, &len), -1);
	assert_int_equal(pw_service_answer_parse("HTTP/1.1 -12 OK\r\n\r\n",
	    20, 1, &st, &off, &len), -1);
	assert_int_equal(pw_service_answer_parse("SSH-2.0\r\n\r\n", 11, 1,
	    &st, &off, &len), -1);
}

/* A service's offer: a huge id is refused, not cast. */
static void
test_offer_parse(void **state)
{
	static const char	huge[] = "{\"data\":{\"proxy_url\":"
	    "\"http://127.0.0.1:3128\",\"proxy_id\":1e300}}";
	static const char	good[] = "{\"data\":{\"proxy_url\":"
	    "\"http://u:p@127.0.0.1:3128\",\"proxy_id\":7,"
	    "\"ttl_seconds\":1e300,\"strategy\":\"random\"}}";
	struct pw_proxy		p;
	struct pw_err		err;
	char			*url = NULL, strat[16] = "", why[100];
	int64_t			ttl;

	(void)state;
	assert_int_equal(pw_cjson_init(&err), 0);
	assert_int_equal(pw_service_offer_parse(huge, sizeof huge - 1, &p,
	    &url, &ttl, strat, sizeof strat, why, sizeof why), -1);
	assert_string_equal(why, "answer has no usable proxy_url and proxy_id");
	assert_int_equal(pw_service_offer_parse(good, sizeof good - 1, &p,
	    &url, &ttl, strat, sizeof strat, why, sizeof why), 0);
	assert_int_equal(p.id, 7);
	assert_int_equal(ttl, 86400 * 365);
	assert_string_equal(strat, "random");
	assert_string_equal(url, "http://u:p@127.0.0.1:3128");
	pw_proxy_release(&p);
	pw_secret_free(url);
}

static void
test_delegable(void **state)
{
	struct fix	*f = *state;
	struct pw_pick	 pk;

	memset(&pk, 0, sizeof pk);
	pw_filter_init(&pk.filter);
	assert_false(pw_service_enabled(&f->ctx));
	assert_false(pw_service_delegable(&f->ctx, &pk));
	set(&f->ctx, "service.endpoints", "http://127.0.0.1:1");
	assert_true(pw_service_enabled(&f->ctx));
	assert_true(pw_service_delegable(&f->ctx, &pk));
	pk.filter.region = "eu";
	assert_true(pw_service_delegable(&f->ctx, &pk));
	pk.filter.country = "DE";
	assert_false(pw_service_delegable(&f->ctx, &pk));
	pk.filter.country = NULL;
	pk.strategy = "random";
	assert_false(pw_service_delegable(&f->ctx, &pk));
	pk.strategy = NULL;
	pk.session = "s";
	assert_false(pw_service_delegable(&f->ctx, &pk));
	pk.session = NULL;
	set(&f->ctx, "service.enabled", "false");
	assert_false(pw_service_delegable(&f->ctx, &pk));
	assert_string_equal(pw_path_name(PW_PATH_FALLBACK), "fallback");
}

static void
test_breaker_rows(void **state)
{
	struct fix		*f = *state;
	struct pw_store		*st = f->ctx.store;
	struct pw_breaker	 b = { 1, 1, 1 };
	struct pw_err		 err = { 0 };
	int			 won = -1;

	assert_int_equal(pw_store_begin(st, &err), 0);
	assert_int_equal(pw_store_breaker_get(st, "http://a", &b, &err), 0);
	assert_int_equal(b.state, PW_BREAKER_CLOSED);
	assert_int_equal(b.failures, 0);
	b.state = PW_BREAKER_OPEN;
	b.failures = 3;
	b.since_ms = 1000;
	assert_int_equal(pw_store_breaker_put(st, "http://a", &b, &err), 0);
	/* Opened at 1000: not claimable as of 999, claimable as of 1000. */
	assert_int_equal(pw_store_breaker_claim(st, "http://a", 999, 5000,
	    &won, &err), 0);
	assert_false(won);
	assert_int_equal(pw_store_breaker_claim(st, "http://a", 1000, 5000,
	    &won, &err), 0);
	assert_true(won);
	/* Half-open now, since 5000: a second claimant loses. */
	assert_int_equal(pw_store_breaker_claim(st, "http://a", 1000, 5001,
	    &won, &err), 0);
	assert_false(won);
	assert_int_equal(pw_store_breaker_get(st, "http://a", &b, &err), 0);
	assert_int_equal(b.state, PW_BREAKER_HALF_OPEN);
	assert_int_equal(b.since_ms, 5000);
	/* A closed one is never claimed. */
	assert_int_equal(pw_store_breaker_claim(st, "http://b", 1 << 30,
	    5000, &won, &err), 0);
	assert_false(won);
	assert_int_equal(pw_store_commit(st, &err), 0);
}

static void
test_outbox(void **state)
{
	struct fix		*f = *state;
	struct pw_outcome	*v = NULL;
	struct pw_err		 err = { 0 };
	size_t			 n = 0;
	int64_t			 depth = -1;

	set(&f->ctx, "service.outbox_max", "2");
	setenv("PW_NOW", "1800000000", 1);
	assert_int_equal(pw_service_report(&f->ctx, 5, 1, 12.5, NULL), 0);
	/*
	 * Another outcome of the same moment (another process's): two, for
	 * nothing tells them apart from one outcome given twice.
	 */
	assert_int_equal(pw_service_report(&f->ctx, 5, 1, 12.5, NULL), 0);
	assert_int_equal(pw_store_outbox_count(f->ctx.store, &depth, &err), 0);
	assert_int_equal(depth, 2);
	assert_int_equal(pw_service_report(&f->ctx, 5, 0, -1, "reset"), 0);
	assert_int_equal(pw_service_report(&f->ctx, 6, 0, -1, NULL), 0);
	/* Bounded: the oldest went. */
	assert_int_equal(pw_store_begin(f->ctx.store, &err), 0);
	assert_int_equal(pw_store_outbox_claim(f->ctx.store, 10, 1000, 2000,
	    &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].proxy_id, 5);
	assert_int_equal(v[0].success, 0);
	assert_string_equal(v[0].error, "reset");
	assert_int_equal(v[0].ts_ms, 1800000000000LL);
	assert_int_equal(v[1].proxy_id, 6);
	assert_null(v[1].error);
	assert_true(v[1].latency_ms < 0);
	/* Leased until 2000: another flush gets none of them before. */
	{
		struct pw_outcome	*w = NULL;
		size_t			 k = 9;

		assert_int_equal(pw_store_outbox_claim(f->ctx.store, 10, 1999,
		    3000, &w, &k, &err), 0);
		assert_int_equal(k, 0);
		pw_outcomes_free(w, k);
		assert_int_equal(pw_store_outbox_release(f->ctx.store, v + 1,
		    1, &err), 0);
		assert_int_equal(pw_store_outbox_claim(f->ctx.store, 10, 1999,
		    3000, &w, &k, &err), 0);
		assert_int_equal(k, 1);
		assert_int_equal(w[0].proxy_id, 6);
		pw_outcomes_free(w, k);
	}
	assert_int_equal(pw_store_outbox_delete(f->ctx.store, v, 1, &err), 0);
	assert_int_equal(pw_store_commit(f->ctx.store, &err), 0);
	pw_outcomes_free(v, n);
	assert_int_equal(pw_store_outbox_count(f->ctx.store, &depth, &err), 0);
	assert_int_equal(depth, 1);
	unsetenv("PW_NOW");
}

static void
test_cache_dropped_on_failure(void **state)
{
	struct fix		*f = *state;
	struct pw_store		*st = f->ctx.store;
	struct pw_svc_cached	 c, got;
	struct pw_err		 err = { 0 };
	int64_t			 id = 0;

	memset(&c, 0, sizeof c);
	c.proxy_id = 9;
	c.url = "http://10.0.0.9:3128";
	c.endpoint = "http://127.0.0.1:1";
	c.expires_at = pw_now() + 60;
	assert_int_equal(pw_store_begin(st, &err), 0);
	assert_int_equal(pw_store_svc_cache_put(st, "k", &c, &err), 0);
	assert_int_equal(pw_store_commit(st, &err), 0);
	assert_int_equal(pw_service_resolve(&f->ctx, "http://10.0.0.9:3128",
	    &id), 0);
	assert_int_equal(id, 9);
	assert_int_equal(pw_service_resolve(&f->ctx, "10", &id),
	    PW_ENOTFOUND);
	/* A success keeps the answer, a failure drops it. */
	assert_int_equal(pw_service_report(&f->ctx, 9, 1, 5, NULL), 0);
	assert_int_equal(pw_store_svc_cache_get(st, "k", &got, &err), 0);
	assert_int_equal(got.expires_at, c.expires_at);
	pw_svc_cached_release(&got);
	assert_int_equal(pw_service_report(&f->ctx, 9, 0, -1, NULL), 0);
	assert_int_equal(pw_store_svc_cache_get(st, "k", &got, &err), 0);
	assert_int_equal(got.expires_at, 0);
	pw_svc_cached_release(&got);
	/* Still known as the service's, for a later report. */
	assert_int_equal(pw_service_resolve(&f->ctx, "9", &id), 0);
}

/* The proxies handed out are known by id and URL; the oldest go. */
static void
test_handouts(void **state)
{
	struct fix		*f = *state;
	struct pw_store		*st = f->ctx.store;
	struct pw_svc_cached	 got;
	struct pw_err		 err = { 0 };
	char			*url = NULL;
	int64_t			 id = 0;

	assert_int_equal(pw_store_begin(st, &err), 0);
	assert_int_equal(pw_store_svc_handout(st, 1, "http://10.0.0.1:1",
	    "http://127.0.0.1:1", 2, &err), 0);
	assert_int_equal(pw_store_svc_handout(st, 2, "http://10.0.0.2:1",
	    "http://127.0.0.1:1", 2, &err), 0);
	assert_int_equal(pw_store_commit(st, &err), 0);
	assert_int_equal(pw_store_svc_cache_find(st, NULL, 1, &id, &url,
	    &err), 0);
	assert_int_equal(id, 1);
	assert_string_equal(url, "http://10.0.0.1:1");
	free(url);
	assert_int_equal(pw_service_resolve(&f->ctx, "http://10.0.0.2:1",
	    &id), 0);
	assert_int_equal(id, 2);
	/* Never an answer to reuse. */
	assert_int_equal(pw_store_svc_cache_get(st, "handout:1", &got, &err),
	    0);
	assert_int_equal(got.expires_at, 0);
	pw_svc_cached_release(&got);
	/* 1 again is the newest: 2 is the one to go when 3 comes. */
	assert_int_equal(pw_store_begin(st, &err), 0);
	assert_int_equal(pw_store_svc_handout(st, 1, "http://10.0.0.1:1",
	    "http://127.0.0.1:1", 2, &err), 0);
	assert_int_equal(pw_store_svc_handout(st, 3, "http://10.0.0.3:1",
	    "http://127.0.0.1:1", 2, &err), 0);
	assert_int_equal(pw_store_commit(st, &err), 0);
	assert_int_equal(pw_service_resolve(&f->ctx, "1", &id), 0);
	assert_int_equal(pw_service_resolve(&f->ctx, "3", &id), 0);
	assert_int_equal(pw_service_resolve(&f->ctx, "2", &id),
	    PW_ENOTFOUND);
}

static void
test_fallback_when_refused(void **state)
{
	struct fix		*f = *state;
	struct pw_addr		 a;
	struct pw_pick		 pk;
	struct pw_proxy		 p;
	struct pw_delegation	 d;
	struct pw_service_ask	 ask;
	struct pw_breaker	 b;
	struct pw_meta		 m = { NULL, NULL, NULL, -1, 0 };
	struct pw_err		 err = { 0 };
	int			 res;
	int64_t			 id, t0;

	assert_int_equal(pw_addr_parse("http://10.0.0.1:3128", &a, &err), 0);
	assert_int_equal(pw_pool_add(&f->ctx, &a, 1, &m, &res, &id), 0);
	pw_addr_release(&a);
	/* Nothing listens on port 1 of loopback: refused at once. */
	set(&f->ctx, "service.endpoints", "http://127.0.0.1:1");
	set(&f->ctx, "service.retries", "1");
	memset(&pk, 0, sizeof pk);
	memset(&ask, 0, sizeof ask);
	pw_filter_init(&pk.filter);
	t0 = pw_mono_ms();
	assert_int_equal(pw_service_next(&f->ctx, &ask, &pk, &p, &d), 0);
	assert_true(pw_mono_ms() - t0 < 1000);
	assert_int_equal(d.path, PW_PATH_FALLBACK);
	assert_int_equal(p.id, id);
	assert_non_null(strstr(d.why, "http://127.0.0.1:1: connect"));
	pw_proxy_release(&p);
	assert_int_equal(pw_store_breaker_get(f->ctx.store,
	    "http://127.0.0.1:1", &b, &err), 0);
	assert_int_equal(b.failures, 1);
	assert_int_equal(b.state, PW_BREAKER_CLOSED);
}

static void
test_flush_needs_a_service(void **state)
{
	struct fix		*f = *state;
	struct pw_flush_result	 fr;

	assert_int_equal(pw_service_flush(&f->ctx, 100, &fr), PW_EUSAGE);
	assert_string_equal(f->ctx.err.msg, "no service configured (set "
	    "service.endpoints)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_parse_ms),
		T(test_answer_parse),
		T(test_offer_parse),
		T(test_delegable),
		T(test_breaker_rows),
		T(test_outbox),
		T(test_cache_dropped_on_failure),
		T(test_handouts),
		T(test_fallback_when_refused),
		T(test_flush_needs_a_service),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
