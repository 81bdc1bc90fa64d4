/*
 * health.c -- unit tests for the health checks (lib/health.c): option
 * checks that change nothing, selection by age, the failure threshold,
 * eviction and its counter, the run lock, proxies gone before their
 * check, and how selection ranks degraded proxies.
 *
 * Every proxy here is a loopback address where nothing listens, so each
 * check fails at once with a refused connection; checks that pass are
 * tested with real peers in tests/cli/health.bats.
 */
#include <sys/file.h>

#include "unit.h"

#define NOW	1700000000
#define JUDGE	"http://127.0.0.1:1/echo"

struct fix {
	char		*dir;
	char		*path;
	struct pw_ctx	 ctx;
	int		 results;
	int		 failed;
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

static const struct pw_meta no_meta = { NULL, NULL, NULL, -1, 0 };

/* Add n refused proxies 127.0.0.1:1, :2, ...; ids from 1. */
static void
add_dead(struct pw_ctx *ctx, int n)
{
	struct pw_addr	*a = pw_xcalloc(n, sizeof *a);
	int		*res = pw_xcalloc(n, sizeof *res);
	int64_t		*ids = pw_xcalloc(n, sizeof *ids);

	for (int i = 0; i < n; i++) {
		char *u = pw_xasprintf("http://127.0.0.1:%d", i + 1);
		if (pw_addr_parse(u, &a[i], NULL) != 0)
			fail_msg("parse %s", u);
		free(u);
	}
	if (pw_pool_add(ctx, a, n, &no_meta, res, ids) != 0)
		fail_msg("add: %s", ctx->err.msg);
	for (int i = 0; i < n; i++)
		pw_addr_release(&a[i]);
	free(a);
	free(res);
	free(ids);
}

static int
count_result(void *arg, const struct pw_health_result *r)
{
	struct fix	*f = arg;

	f->results++;
	f->failed += !r->ok;
	assert_non_null(r->error);
	assert_null(r->anonymity);
	assert_true(r->latency_ms < 0);
	assert_string_equal(r->judge, JUDGE);
	return 0;
}

static void
opts(struct fix *f, struct pw_health_opts *o)
{
	static const char *const judge[] = { JUDGE };

	pw_health_opts_init(o);
	o->urls = judge;
	o->nurls = 1;
	o->timeout_ms = 2000;
	o->on_result = count_result;
	o->arg = f;
}

/* Select every proxy, then run. */
static int
run_all(struct fix *f, const struct pw_health_opts *o,
    struct pw_health_summary *s)
{
	int64_t	*ids = NULL;
	size_t	 n = 0;
	int	 r;

	if (pw_health_select(&f->ctx, NULL, 0, &ids, &n) != 0)
		fail_msg("select: %s", f->ctx.err.msg);
	r = pw_health_run(&f->ctx, o, ids, n, s);
	free(ids);
	return r;
}

static char *
dump(struct fix *f)
{
	char	*cmd = pw_xasprintf("sqlite3 -readonly '%s' .dump", f->path);
	FILE	*p = popen(cmd, "r");
	struct pw_buf	 b;
	char	 chunk[4096];
	size_t	 n;

	pw_buf_init(&b);
	while (p != NULL && (n = fread(chunk, 1, sizeof chunk, p)) > 0)
		pw_buf_add(&b, chunk, n);
	if (p != NULL)
		pclose(p);
	free(cmd);
	return pw_buf_detach(&b);
}

static void
status_of(struct fix *f, int64_t id, int want_status, int64_t want_consec)
{
	struct pw_proxy	p;

	if (pw_pool_get(&f->ctx, id, 0, &p) != 0)
		fail_msg("get %lld: %s", (long long)id, f->ctx.err.msg);
	assert_int_equal(p.status, want_status);
	assert_int_equal(p.consec_fail, want_consec);
	assert_int_equal(p.last_checked, NOW);
	pw_proxy_release(&p);
}

static void
test_bad_options_change_nothing(void **state)
{
	struct fix			*f = *state;
	struct pw_health_opts		 o;
	struct pw_health_summary	 s;
	static const char *const	 ftp[] = { "ftp://127.0.0.1/" };
	char				*before, *after;

	add_dead(&f->ctx, 2);
	before = dump(f);

	pw_health_opts_init(&o);
	assert_int_equal(run_all(f, &o, &s), PW_EUSAGE);
	assert_string_equal(f->ctx.err.msg, "no judge URL (set health.url "
	    "or health.urls, or give --url)");

	o.urls = ftp;
	o.nurls = 1;
	assert_int_equal(run_all(f, &o, &s), PW_EUSAGE);
	assert_string_equal(f->ctx.err.msg, "judge 'ftp://127.0.0.1/': want "
	    "an http:// or https:// URL");

	opts(f, &o);
	o.expect_body = "([unclosed";
	assert_int_equal(run_all(f, &o, &s), PW_EUSAGE);
	assert_true(strncmp(f->ctx.err.msg, "expected body '([unclosed': ",
	    28) == 0);

	opts(f, &o);
	o.expect_status = 42;
	assert_int_equal(run_all(f, &o, &s), PW_EUSAGE);

	assert_int_equal(f->results, 0);
	after = dump(f);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void
test_threshold(void **state)
{
	struct fix			*f = *state;
	struct pw_health_opts		 o;
	struct pw_health_summary	 s;

	add_dead(&f->ctx, 3);
	opts(f, &o);
	for (int run = 1; run <= 4; run++) {
		memset(&s, 0, sizeof s);
		assert_int_equal(run_all(f, &o, &s), 0);
		assert_int_equal(s.total, 3);
		assert_int_equal(s.checked, 3);
		assert_int_equal(s.healthy, 0);
		assert_int_equal(s.degraded, run < 3 ? 3 : 0);
		assert_int_equal(s.unhealthy, run < 3 ? 0 : 3);
		assert_int_equal(s.evicted, 0);
		assert_true(s.p50_ms < 0 && s.p95_ms < 0);
		for (int64_t id = 1; id <= 3; id++)
			status_of(f, id, run < 3 ? PW_DEGRADED : PW_UNHEALTHY,
			    run);
	}
	assert_int_equal(f->results, 12);
	assert_int_equal(f->failed, 12);
}

static void
test_evict_counts(void **state)
{
	struct fix			*f = *state;
	struct pw_health_opts		 o;
	struct pw_health_summary	 s;
	int64_t				*ids = NULL;
	size_t				 n = 0;

	add_dead(&f->ctx, 4);
	if (pw_config_set_flag(f->ctx.cfg, "health.failure_threshold", "1",
	    &f->ctx.err) != 0)
		fail_msg("%s", f->ctx.err.msg);
	opts(f, &o);
	o.evict = 1;
	assert_int_equal(run_all(f, &o, &s), 0);
	assert_int_equal(s.checked, 4);
	assert_int_equal(s.unhealthy, 4);
	assert_int_equal(s.evicted, 4);
	assert_int_equal(pw_health_select(&f->ctx, NULL, 0, &ids, &n), 0);
	assert_int_equal(n, 0);
	free(ids);
	{
		char *d = dump(f);
		assert_non_null(strstr(d, "'evict.health',4)"));
		assert_non_null(strstr(d, "'last_health',1700000000)"));
		assert_non_null(strstr(d, "'health.last_checked',4)"));
		free(d);
	}
}

static void
test_select_older_than(void **state)
{
	struct fix			*f = *state;
	struct pw_health_opts		 o;
	struct pw_health_summary	 s;
	struct pw_filter		 flt;
	int64_t				*ids = NULL, one = 2;
	size_t				 n = 0;

	add_dead(&f->ctx, 3);
	opts(f, &o);
	assert_int_equal(pw_health_run(&f->ctx, &o, &one, 1, &s), 0);
	/* Never checked, or checked before the age: 1 and 3. */
	assert_int_equal(pw_health_select(&f->ctx, NULL, 600, &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 3);
	free(ids);
	pw_filter_init(&flt);
	flt.status = PW_DEGRADED;
	assert_int_equal(pw_health_select(&f->ctx, &flt, 0, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 2);
	free(ids);
}

static void
test_gone_ids_are_skipped(void **state)
{
	struct fix			*f = *state;
	struct pw_health_opts		 o;
	struct pw_health_summary	 s;
	int64_t				 ids[] = { 1, 77, 2 };

	add_dead(&f->ctx, 2);
	opts(f, &o);
	assert_int_equal(pw_health_run(&f->ctx, &o, ids, 3, &s), 0);
	assert_int_equal(s.total, 3);
	assert_int_equal(s.checked, 2);
	assert_int_equal(s.gone, 1);
	assert_int_equal(f->results, 2);
}

static void
test_lock(void **state)
{
	struct fix			*f = *state;
	struct pw_health_opts		 o;
	struct pw_health_summary	 s;
	char				*lock, *want;
	int				 fd;

	add_dead(&f->ctx, 1);
	lock = pw_xasprintf("%s.health.lock", f->path);
	/* Another holder: an open file description of its own. */
	fd = open(lock, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "4242\n", 5), 5);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	opts(f, &o);
	o.lock = PW_HEALTH_LOCK_TRY;
	assert_int_equal(run_all(f, &o, &s), PW_EBUSY);
	want = pw_xasprintf("another health check is running on %s (pid "
	    "4242)", f->path);
	assert_string_equal(f->ctx.err.msg, want);
	assert_int_equal(f->results, 0);
	/* No lock asked for: it runs. Released: it runs with the lock. */
	o.lock = PW_HEALTH_LOCK_NONE;
	assert_int_equal(run_all(f, &o, &s), 0);
	close(fd);
	o.lock = PW_HEALTH_LOCK_TRY;
	assert_int_equal(run_all(f, &o, &s), 0);
	assert_int_equal(f->results, 2);
	free(want);
	free(lock);
}

static void
test_lock_api(void **state)
{
	struct fix			*f = *state;
	struct pw_health_lock		*l1 = NULL, *l2 = NULL;
	struct pw_health_opts		 o;
	struct pw_health_summary	 s;
	char				*want;

	add_dead(&f->ctx, 1);
	assert_int_equal(pw_health_lock(&f->ctx, PW_HEALTH_LOCK_TRY, &l1), 0);
	/* Held: by this process, which the message names. */
	assert_int_equal(pw_health_lock(&f->ctx, PW_HEALTH_LOCK_TRY, &l2),
	    PW_EBUSY);
	assert_null(l2);
	want = pw_xasprintf("another health check is running on %s (pid "
	    "%ld)", f->path, (long)getpid());
	assert_string_equal(f->ctx.err.msg, want);
	opts(f, &o);
	o.lock = PW_HEALTH_LOCK_TRY;
	assert_int_equal(run_all(f, &o, &s), PW_EBUSY);
	/* The holder runs without asking again. */
	o.lock = PW_HEALTH_LOCK_NONE;
	assert_int_equal(run_all(f, &o, &s), 0);
	pw_health_unlock(l1);
	pw_health_unlock(NULL);
	assert_int_equal(pw_health_lock(&f->ctx, PW_HEALTH_LOCK_WAIT, &l2), 0);
	pw_health_unlock(l2);
	free(want);
}

static void
test_degraded_ranked_down(void **state)
{
	struct fix			*f = *state;
	struct pw_health_opts		 o;
	struct pw_health_summary	 s;
	struct pw_pick			 pk;
	struct pw_proxy			 p;
	int64_t				 one = 1;

	add_dead(&f->ctx, 3);
	opts(f, &o);
	assert_int_equal(pw_health_run(&f->ctx, &o, &one, 1, &s), 0);
	memset(&pk, 0, sizeof pk);
	pw_filter_init(&pk.filter);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(pw_pool_next(&f->ctx, &pk, &p), 0);
		assert_true(p.id == 2 || p.id == 3);
		pw_proxy_release(&p);
	}
	pk.filter.status = PW_DEGRADED;
	assert_int_equal(pw_pool_next(&f->ctx, &pk, &p), 0);
	assert_int_equal(p.id, 1);
	pw_proxy_release(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_bad_options_change_nothing),
		T(test_threshold),
		T(test_evict_counts),
		T(test_select_older_than),
		T(test_gone_ids_are_skipped),
		T(test_lock),
		T(test_lock_api),
		T(test_degraded_ranked_down),
#undef T
	};

	setenv("PW_NOW", "1700000000", 1);
	(void)pw_now();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
