/*
 * view.c -- unit tests for pw serve's view of the pool (lib/view.c): the
 * same choices and the same stored counters as pw_pool_next and
 * pw_pool_report one request at a time, however the outcomes are batched
 * and whenever the view reloads; writes of others kept; removed proxies.
 */
#include <math.h>

#include "unit.h"
#include "../../lib/ratelimit.h"

#define NPROXIES	5

struct fix {
	char		*dir;
	char		*cli_path, *srv_path;
	struct pw_ctx	 cli;		/* one transaction a call */
	struct pw_ctx	 srv;		/* through the view */
	struct pw_view	*view;
};

static void
open_ctx(struct pw_ctx *ctx, const char *path)
{
	static const char *const urls[NPROXIES] = {
		"http://10.0.0.1:1", "http://10.0.0.2:2", "http://10.0.0.3:3",
		"http://10.0.0.4:4", "http://10.0.0.5:5",
	};
	struct pw_meta	m = { NULL, NULL, NULL, -1, 0 };
	struct pw_addr	a[NPROXIES];
	int		res[NPROXIES];
	int64_t		ids[NPROXIES];

	if (pw_open(ctx, path, PW_OPEN_RW) != 0)
		fail_msg("pw_open: %s", ctx->err.msg);
	for (int i = 0; i < NPROXIES; i++)
		assert_int_equal(pw_addr_parse(urls[i], &a[i], NULL), 0);
	assert_int_equal(pw_pool_add(ctx, a, NPROXIES, &m, res, ids), 0);
	for (int i = 0; i < NPROXIES; i++)
		pw_addr_release(&a[i]);
	assert_int_equal(pw_config_store(ctx, "pool.failure_threshold", "2"),
	    0);
	assert_int_equal(pw_config_store(ctx, "pool.cooldown", "0"), 0);
}

static int
setup(void **state)
{
	struct fix	*f = pw_xcalloc(1, sizeof *f);
	struct pw_err	 err;

	unit_env_clear();
	setenv("PW_NOW", "1700000000", 1);
	f->dir = unit_tmp_new();
	f->cli_path = unit_path(f->dir, "cli.db");
	f->srv_path = unit_path(f->dir, "srv.db");
	open_ctx(&f->cli, f->cli_path);
	open_ctx(&f->srv, f->srv_path);
	if (pw_view_open(f->srv_path, f->srv.cfg, 0, &f->view, &err) != 0)
		fail_msg("pw_view_open: %s", err.msg);
	f->srv.view = f->view;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	f->srv.view = NULL;
	pw_view_close(f->view);
	pw_close(&f->cli);
	pw_close(&f->srv);
	free(f->cli_path);
	free(f->srv_path);
	unit_tmp_free(f->dir);
	free(f);
	return 0;
}

/* Proxy id as ctx (without a view) reads it from its file. */
static void
get(struct pw_ctx *ctx, int64_t id, struct pw_proxy *p)
{
	struct pw_view	*v = ctx->view;

	ctx->view = NULL;
	if (pw_pool_get(ctx, id, 0, p) != 0)
		fail_msg("get %lld: %s", (long long)id, ctx->err.msg);
	ctx->view = v;
}

static void
same_counters(struct fix *f)
{
	for (int64_t id = 1; id <= NPROXIES; id++) {
		struct pw_proxy a, b;

		get(&f->cli, id, &a);
		get(&f->srv, id, &b);
		assert_int_equal(a.started, b.started);
		assert_int_equal(a.completed, b.completed);
		assert_int_equal(a.succeeded, b.succeeded);
		assert_int_equal(a.failed, b.failed);
		assert_int_equal(a.consec_fail, b.consec_fail);
		assert_int_equal(a.cooldown_until, b.cooldown_until);
		assert_int_equal(a.last_used, b.last_used);
		assert_int_equal(a.window_count, b.window_count);
		assert_int_equal(a.latency_ms < 0, b.latency_ms < 0);
		if (a.latency_ms >= 0)
			assert_true(fabs(a.latency_ms - b.latency_ms) <=
			    1e-9 * (1 + a.latency_ms));
		pw_proxy_release(&a);
		pw_proxy_release(&b);
	}
}

/*
 * Pick, and report an outcome drawn from a seeded generator, n times on
 * both sides; the server's side flushes and reloads at random moments.
 * Every choice must be the same, and the counters at the end.
 */
static void
run(struct fix *f, const char *strategy, int n, uint64_t seed)
{
	struct pw_rng	rng;
	struct pw_pick	pk;
	struct pw_err	err;

	pw_rng_seed(&rng, seed);
	memset(&pk, 0, sizeof pk);
	pw_filter_init(&pk.filter);
	pk.strategy = strategy;
	for (int i = 0; i < n; i++) {
		struct pw_proxy	a, b;
		uint64_t	x = pw_rng_next(&rng);
		int		outcome = (int)(x % 3), ra, rb;
		double		lat = (x >> 8) % 4 == 0 ? -1 :
				    (double)((x >> 16) % 1000) / 7.0;

		ra = pw_pool_next(&f->cli, &pk, &a);
		rb = pw_pool_next(&f->srv, &pk, &b);
		assert_int_equal(ra, rb);
		if (ra != 0)
			continue;
		assert_int_equal(a.id, b.id);
		assert_int_equal(pw_pool_report(&f->cli, a.id, outcome, lat),
		    0);
		assert_int_equal(pw_pool_report(&f->srv, b.id, outcome, lat),
		    0);
		pw_proxy_release(&a);
		pw_proxy_release(&b);
		if ((x >> 32) % 7 == 0)
			assert_int_equal(pw_view_flush(f->view, &err), 0);
		if ((x >> 40) % 23 == 0)
			assert_int_equal(pw_view_sync(f->view, 1, &err), 0);
	}
	assert_int_equal(pw_view_flush(f->view, &err), 0);
	same_counters(f);
}

static void
test_round_robin_batched_as_one_by_one(void **state)
{
	run(*state, "round-robin", 400, 1);
}

static void
test_least_used_batched_as_one_by_one(void **state)
{
	run(*state, "least-used", 400, 2);
}

static int
session_one(void *arg, const struct pw_session *ss)
{
	struct pw_session	*out = arg;

	*out = *ss;
	out->id = NULL;
	return 0;
}

static void
test_sticky_batched_as_one_by_one(void **state)
{
	struct fix	*f = *state;
	struct pw_pick		 pk;
	struct pw_proxy		 a, b;
	struct pw_session	 sa, sb;
	struct pw_err		 err;
	int64_t			 last = 0;

	memset(&pk, 0, sizeof pk);
	pw_filter_init(&pk.filter);
	pk.strategy = "sticky";
	pk.session = "s";
	/* At the 4th, the session's proxy is excluded: it moves. */
	for (int i = 0; i < 6; i++) {
		pk.exclude = i == 3 ? &last : NULL;
		pk.nexclude = i == 3;
		assert_int_equal(pw_pool_next(&f->cli, &pk, &a), 0);
		assert_int_equal(pw_pool_next(&f->srv, &pk, &b), 0);
		assert_int_equal(a.id, b.id);
		if (i == 2 || i == 3) {
			pw_pool_report(&f->cli, a.id, PW_REPORT_FAIL, -1);
			pw_pool_report(&f->srv, b.id, PW_REPORT_FAIL, -1);
		}
		last = a.id;
		pw_proxy_release(&a);
		pw_proxy_release(&b);
	}
	assert_int_equal(pw_view_flush(f->view, &err), 0);
	same_counters(f);
	memset(&sa, 0, sizeof sa);
	memset(&sb, 0, sizeof sb);
	assert_int_equal(pw_session_each(&f->cli, session_one, &sa), 0);
	assert_int_equal(pw_session_each(&f->srv, session_one, &sb), 0);
	assert_int_equal(sa.proxy_id, sb.proxy_id);
	assert_int_equal(sa.requests, sb.requests);
	assert_int_equal(sa.requests, 6);
	assert_int_equal(sa.failovers, sb.failovers);
	assert_int_equal(sa.failovers, 1);
	/* Each side reads the clock itself: a second may turn between. */
	assert_in_range(sa.expires_at - sb.expires_at + 1, 0, 2);
	assert_in_range(sa.created_at - sb.created_at + 1, 0, 2);
}

/* Counters another connection adds meanwhile are added to. */
static void
test_flush_adds_to_what_others_wrote(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	 other;
	struct pw_proxy	 p;
	struct pw_err	 err;

	memset(&other, 0, sizeof other);
	assert_int_equal(pw_open(&other, f->srv_path, PW_OPEN_RW), 0);
	assert_int_equal(pw_pool_report(&f->srv, 1, PW_REPORT_OK, 10), 0);
	assert_int_equal(pw_pool_report(&f->srv, 1, PW_REPORT_OK, 20), 0);
	assert_int_equal(pw_pool_report(&other, 1, PW_REPORT_FAIL, -1), 0);
	/* The view sees the other's write, its own two still pending. */
	assert_int_equal(pw_view_sync(f->view, 0, &err), 0);
	assert_true(pw_view_pending(f->view) > 0);
	get(&f->srv, 1, &p);
	assert_int_equal(p.failed, 1);
	assert_int_equal(p.succeeded, 0);
	pw_proxy_release(&p);
	assert_int_equal(pw_view_flush(f->view, &err), 0);
	assert_int_equal(pw_view_pending(f->view), 0);
	get(&f->srv, 1, &p);
	assert_int_equal(p.failed, 1);
	assert_int_equal(p.succeeded, 2);
	assert_int_equal(p.completed, 3);
	pw_proxy_release(&p);
	pw_close(&other);
}

/* A proxy removed by another process: never chosen, its outcomes dropped. */
static void
test_removed_proxy(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	 other;
	struct pw_pick	 pk;
	struct pw_proxy	 p;
	struct pw_err	 err;
	int64_t		 id = 3;

	memset(&other, 0, sizeof other);
	assert_int_equal(pw_open(&other, f->srv_path, PW_OPEN_RW), 0);
	assert_int_equal(pw_pool_report(&f->srv, id, PW_REPORT_OK, 5), 0);
	assert_int_equal(pw_pool_remove(&other, &id, 1), 0);
	assert_int_equal(pw_view_sync(f->view, 0, &err), 0);
	assert_int_equal(pw_view_pending(f->view), 0);
	assert_int_equal(pw_pool_report(&f->srv, id, PW_REPORT_OK, 5), 0);
	memset(&pk, 0, sizeof pk);
	pw_filter_init(&pk.filter);
	for (int i = 0; i < 2 * NPROXIES; i++) {
		assert_int_equal(pw_pool_next(&f->srv, &pk, &p), 0);
		assert_int_not_equal(p.id, id);
		pw_proxy_release(&p);
	}
	assert_int_equal(pw_view_flush(f->view, &err), 0);
	pw_close(&other);
}

/*
 * What others commit reloads the view only when it changed the pool:
 * rate-limit counters do not; a proxy's outcome, a setting and the
 * view's own flush followed by another's change do.
 */
static void
test_reload_only_for_the_pool(void **state)
{
	struct fix		*f = *state;
	struct pw_ctx		 other;
	struct pw_err		 err;
	struct pw_rl_limit	 l = { 1000, 60000 };
	struct pw_rl_verdict	 v;
	const char		*key = "t:a:127.0.0.1";
	uint64_t		 gen = pw_view_generation(f->view);

	memset(&other, 0, sizeof other);
	assert_int_equal(pw_open(&other, f->srv_path, PW_OPEN_RW), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pw_store_rl_check(other.store, &key, &l, 1,
		    1000 + i, 1, NULL, &v, &err), 0);
	assert_true(v.allowed);
	assert_int_equal(pw_view_sync(f->view, 0, &err), 0);
	assert_int_equal(pw_view_generation(f->view), gen);
	assert_int_equal(pw_pool_report(&other, 2, PW_REPORT_OK, 5), 0);
	assert_int_equal(pw_view_sync(f->view, 0, &err), 0);
	assert_int_equal(pw_view_generation(f->view), ++gen);
	/* Its own flush is no change to load; another's after it is. */
	assert_int_equal(pw_pool_report(&f->srv, 1, PW_REPORT_OK, 5), 0);
	assert_int_equal(pw_view_flush(f->view, &err), 0);
	assert_int_equal(pw_store_rl_check(other.store, &key, &l, 1, 2000, 1,
	    NULL, &v, &err), 0);
	assert_int_equal(pw_view_sync(f->view, 0, &err), 0);
	assert_int_equal(pw_view_generation(f->view), gen);
	assert_int_equal(pw_config_store(&other, "pool.cooldown", "5"), 0);
	assert_int_equal(pw_view_sync(f->view, 0, &err), 0);
	assert_int_equal(pw_view_generation(f->view), ++gen);
	pw_close(&other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_round_robin_batched_as_one_by_one, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_least_used_batched_as_one_by_one, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sticky_batched_as_one_by_one, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_flush_adds_to_what_others_wrote, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removed_proxy, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reload_only_for_the_pool,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
