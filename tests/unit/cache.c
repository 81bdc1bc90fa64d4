/*
 * cache.c -- unit tests for the cache (lib/cache.c): warming in batches
 * with added/updated/duplicate counts and ids, across inputs, pending
 * for a validating warm; export and its credentials; prune by TTL,
 * health and corruption; statistics and the hit/miss counters of
 * selection; cache.sources.
 */
#include "unit.h"

#define NOW	1700000000

struct fix {
	char		*dir;
	char		*path;
	struct pw_ctx	 ctx;
};

static int
setup(void **state)
{
	struct fix	*f = pw_xcalloc(1, sizeof *f);
	char		*xdg;

	f->dir = unit_tmp_new();
	f->path = unit_path(f->dir, "state.db");
	xdg = unit_path(f->dir, "config");
	setenv("XDG_CONFIG_HOME", xdg, 1);
	free(xdg);
	setenv("PW_NOW", "1700000000", 1);
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
	unsetenv("PW_NOW");
	return 0;
}

static void
count_reject(void *arg, long line, const char *why)
{
	(void)line;
	(void)why;
	(*(int *)arg)++;
}

/* Warm text as one input of w; its counts. */
static struct pw_warm_counts
warm(struct pw_warm *w, int fmt, const char *text, const struct pw_meta *m)
{
	struct pw_warm_counts	c;
	struct pw_meta		none = { NULL, NULL, NULL, -1, 0 };
	int			rejects = 0;

	pw_warm_input(w, fmt, m ? m : &none, count_reject, &rejects);
	assert_int_equal(pw_warm_feed(w, text, strlen(text)), 0);
	assert_int_equal(pw_warm_input_end(w, &c), 0);
	assert_int_equal(rejects, c.invalid);
	return c;
}

static int64_t
query_int(struct fix *f, const char *sql)
{
	char	*cmd = pw_xasprintf("sqlite3 '%s' \"%s\"", f->path, sql);
	FILE	*p = popen(cmd, "r");
	long long v = -1;

	if (p == NULL || fscanf(p, "%lld", &v) != 1)
		v = -1;
	if (p != NULL)
		pclose(p);
	free(cmd);
	return v;
}

static void
test_warm_counts_and_ids(void **state)
{
	struct fix		*f = *state;
	struct pw_warm		*w;
	struct pw_warm_counts	 c;
	const int64_t		*ids;
	size_t			 n;

	setenv("PW_CACHE__BATCH", "2", 1);
	pw_config_free(f->ctx.cfg);
	f->ctx.cfg = pw_config_new();
	assert_int_equal(pw_config_load_env(f->ctx.cfg, &f->ctx.err), 0);
	assert_int_equal(pw_config_load_state(&f->ctx), 0);
	unsetenv("PW_CACHE__BATCH");

	w = pw_warm_new(&f->ctx);
	c = warm(w, PW_FMT_TXT, "a.example:1\nb.example:2\na.example:1\n"
	    "ftp://x:1\nc.example:3\nb.example:2\n", NULL);
	assert_int_equal(c.records, 5);
	assert_int_equal(c.added, 3);
	assert_int_equal(c.duplicate, 2);
	assert_int_equal(c.invalid, 1);
	assert_int_equal(c.updated, 0);
	/* A second input of the same run: duplicates across inputs. */
	c = warm(w, PW_FMT_JSON, "[\"c.example:3\",\"d.example:4\"]", NULL);
	assert_int_equal(c.added, 1);
	assert_int_equal(c.duplicate, 1);
	ids = pw_warm_ids(w, &n);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], (int64_t)i + 1);
	assert_int_equal(pw_warm_finish(w), 0);
	pw_warm_free(w);

	/* A new run: what was there is updated, with a new expiry. */
	w = pw_warm_new(&f->ctx);
	{
		struct pw_meta m = { "src", "DE", NULL, 2, 60 };
		c = warm(w, PW_FMT_TXT, "b.example:2\ne.example:5\n", &m);
	}
	assert_int_equal(c.updated, 1);
	assert_int_equal(c.added, 1);
	ids = pw_warm_ids(w, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], 5);
	pw_warm_free(w);
	assert_int_equal(query_int(f, "SELECT expires_at FROM proxies "
	    "WHERE id = 2"), NOW + 60);
	assert_int_equal(query_int(f, "SELECT count(*) FROM proxies WHERE "
	    "source = 'src' AND country = 'DE' AND weight = 2"), 2);
	assert_int_equal(query_int(f, "SELECT value FROM meta WHERE key = "
	    "'last_warm'"), NOW);
}

/*
 * A validating warm stores what it adds pending, not what was there; a
 * statement that meets a known proxy leaves no gap in the ids.
 */
static void
test_warm_pending(void **state)
{
	struct fix		*f = *state;
	struct pw_warm		*w;
	struct pw_warm_counts	 c;
	const int64_t		*ids;
	size_t			 n;

	w = pw_warm_new(&f->ctx);
	c = warm(w, PW_FMT_TXT, "a.example:1\nb.example:2\n", NULL);
	assert_int_equal(c.added, 2);
	pw_warm_free(w);

	w = pw_warm_new(&f->ctx);
	pw_warm_pending(w, 1);
	c = warm(w, PW_FMT_TXT, "c.example:3\nb.example:2\nc.example:3\n"
	    "d.example:4\n", NULL);
	assert_int_equal(c.added, 2);
	assert_int_equal(c.updated, 1);
	assert_int_equal(c.duplicate, 1);
	ids = pw_warm_ids(w, &n);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 3);
	assert_int_equal(ids[1], 2);
	assert_int_equal(ids[2], 4);
	pw_warm_free(w);
	assert_int_equal(query_int(f, "SELECT count(*) FROM proxies WHERE "
	    "status = 'pending' AND id IN (3, 4)"), 2);
	assert_int_equal(query_int(f, "SELECT count(*) FROM proxies WHERE "
	    "status = 'unknown' AND id IN (1, 2)"), 2);
	assert_int_equal(query_int(f, "SELECT seq FROM sqlite_sequence "
	    "WHERE name = 'proxies'"), 4);
}

struct sink {
	struct pw_buf	b;
};

static int
sink_write(void *arg, const void *p, size_t n)
{
	pw_buf_add(&((struct sink *)arg)->b, p, n);
	return 0;
}

static void
test_export(void **state)
{
	struct fix	*f = *state;
	struct pw_warm	*w = pw_warm_new(&f->ctx);
	struct sink	 s;
	int64_t		 n;

	warm(w, PW_FMT_CSV, "url,region\nsocks5://al:s3cret@h:1,r\n"
	    "http://g:2,\n", NULL);
	pw_warm_free(w);
	pw_buf_init(&s.b);
	assert_int_equal(pw_cache_export(&f->ctx, PW_FMT_CSV, 0, sink_write,
	    &s, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(s.b.data, "url,country,region,source,weight,"
	    "expires_at\nsocks5://h:1,,r,,,\nhttp://g:2,,,,,\n");
	pw_buf_reset(&s.b);
	assert_int_equal(pw_cache_export(&f->ctx, PW_FMT_JSONL, 1,
	    sink_write, &s, &n), 0);
	assert_string_equal(s.b.data, "{\"url\":\"socks5://al:s3cret@h:1\","
	    "\"region\":\"r\"}\n{\"url\":\"http://g:2\"}\n");
	pw_buf_release(&s.b);
}

static void
test_prune_and_stats(void **state)
{
	struct fix		*f = *state;
	struct pw_warm		*w = pw_warm_new(&f->ctx);
	struct pw_meta		 m = { NULL, NULL, NULL, -1, 10 };
	struct pw_cache_stats	 st;
	struct pw_pick		 pk;
	struct pw_proxy		 p;
	int64_t			 removed[PW_EVICT_COUNT];

	/* a and b expired a second ago, c and d never expire. */
	warm(w, PW_FMT_JSONL, "{\"url\":\"a:1\",\"expires_at\":1699999999}\n"
	    "{\"url\":\"b:2\",\"expires_at\":1699999999}\n", &m);
	m.ttl = 0;
	warm(w, PW_FMT_TXT, "c:3\nd:4\n", &m);
	pw_warm_free(w);
	memset(&pk, 0, sizeof pk);
	pw_filter_init(&pk.filter);
	pk.strategy = "round-robin";
	for (int i = 0; i < 5; i++) {
		assert_int_equal(pw_pool_next(&f->ctx, &pk, &p), 0);
		assert_true(p.id == 3 || p.id == 4);
		pw_proxy_release(&p);
	}
	{
		char *sql = pw_xasprintf("sqlite3 '%s' \"UPDATE proxies SET "
		    "status = 'unhealthy' WHERE id = 4\"", f->path);
		assert_int_equal(system(sql), 0);
		free(sql);
	}
	pk.strategy = "round-robin";
	assert_int_equal(pw_pool_next(&f->ctx, &pk, &p), 0);
	assert_int_equal(p.id, 3);
	pw_proxy_release(&p);
	assert_int_equal(pw_cache_stats(&f->ctx, &st), 0);
	assert_int_equal(st.total, 4);
	assert_int_equal(st.expired, 2);
	assert_int_equal(st.by_status[PW_UNHEALTHY], 1);
	assert_int_equal(st.hits, 6);
	assert_int_equal(st.misses, 0);
	assert_true(st.file_bytes > 0);
	pw_cache_stats_release(&st);
	assert_int_equal(pw_cache_prune(&f->ctx, removed), 0);
	assert_int_equal(removed[PW_EVICT_TTL], 2);
	assert_int_equal(removed[PW_EVICT_HEALTH], 1);
	assert_int_equal(removed[PW_EVICT_CORRUPTION], 0);
	assert_int_equal(pw_cache_stats(&f->ctx, &st), 0);
	assert_int_equal(st.total, 1);
	assert_int_equal(st.evictions[PW_EVICT_TTL], 2);
	assert_int_equal(st.evictions[PW_EVICT_HEALTH], 1);
	pw_cache_stats_release(&st);
	/* A miss is counted too. */
	pk.filter.country = "FR";
	assert_int_equal(pw_pool_next(&f->ctx, &pk, &p), PW_ENOPROXY);
	assert_non_null(strstr(f->ctx.err.msg, "no eligible proxy"));
	assert_int_equal(pw_cache_stats(&f->ctx, &st), 0);
	assert_int_equal(st.misses, 1);
	pw_cache_stats_release(&st);
}

static void
test_sources(void **state)
{
	struct pw_source	*s;
	struct pw_err		 err = { 0 };
	size_t			 n;

	(void)state;
	assert_int_equal(pw_sources_parse("http://h/a.txt, https://u:p@h/b"
	    "?x=1 json mine\n# c\n\nhttp://h/c.csv", &s, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(s[0].name, "h/a.txt");
	assert_int_equal(s[0].format, PW_FMT_TXT);
	assert_string_equal(s[1].name, "mine");
	assert_int_equal(s[1].format, PW_FMT_JSON);
	assert_string_equal(s[2].name, "h/c.csv");
	assert_int_equal(s[2].format, PW_FMT_CSV);
	pw_sources_free(s, n);
	assert_int_equal(pw_sources_parse("ftp://h/a", &s, &n, &err),
	    PW_EUSAGE);
	assert_int_equal(pw_sources_parse("http://h/a a b c", &s, &n, &err),
	    PW_EUSAGE);
	assert_int_equal(pw_sources_parse(" , ", &s, &n, &err), PW_EUSAGE);
	assert_string_equal(err.msg, "cache.sources: cache.sources lists no "
	    "source");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_warm_counts_and_ids,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_warm_pending, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_and_stats, setup,
		    teardown),
		cmocka_unit_test(test_sources),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
