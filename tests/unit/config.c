/*
 * config.c -- unit tests for typed settings, their validation, the PW_*
 * environment, precedence and origins, and path resolution (lib/config.c).
 */
#include <ctype.h>

#include "unit.h"

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

/* A context with settings but no state file. */
static struct pw_ctx *
ctx_bare(struct fix *f)
{
	if (pw_open(&f->ctx, NULL, PW_OPEN_NONE) != 0)
		fail_msg("pw_open: %s", f->ctx.err.msg);
	return &f->ctx;
}

static struct pw_ctx *
ctx_state(struct fix *f)
{
	if (pw_open(&f->ctx, f->path, PW_OPEN_RW) != 0)
		fail_msg("pw_open: %s", f->ctx.err.msg);
	return &f->ctx;
}

/* key=value must pass; its stored form must be canon. */
static void
check_ok(const char *key, const char *value, const char *canon)
{
	struct pw_err	 err = { 0 };
	char		*got = NULL;

	if (pw_config_check(key, value, &got, &err) != 0)
		fail_msg("%s='%s': %s", key, value, err.msg);
	if (strcmp(got, canon) != 0)
		fail_msg("%s='%s': want '%s', got '%s'", key, value, canon,
		    got);
	free(got);
}

/* key=value must fail with PW_EUSAGE and exactly msg. */
static void
check_bad(const char *key, const char *value, const char *msg)
{
	struct pw_err	 err = { 0 };
	char		*got = (char *)&got;

	if (pw_config_check(key, value, &got, &err) != PW_EUSAGE)
		fail_msg("%s='%s': accepted", key, value);
	if (strcmp(err.msg, msg) != 0)
		fail_msg("%s='%s': want\n  %s\ngot\n  %s", key, value, msg,
		    err.msg);
	assert_ptr_equal(got, (char *)&got);
}

/* "fetch.timeout" -> "PW_FETCH__TIMEOUT"; caller frees. */
static char *
env_of(const char *key)
{
	struct pw_buf	b;

	pw_buf_init(&b);
	pw_buf_adds(&b, "PW_");
	for (const char *p = key; *p; p++) {
		if (*p == '.')
			pw_buf_adds(&b, "__");
		else
			pw_buf_addc(&b, (char)toupper((unsigned char)*p));
	}
	return pw_buf_detach(&b);
}

/* ------------------------------------------------------------ the table */

static void
test_key_table(void **state)
{
	const struct pw_config_key	*k = pw_config_keys();
	static const char *const types =
	    " int real duration enum string bool rate ";
	char				 t[32];
	int				 n = 0;

	for (; k->name != NULL; k++, n++) {
		assert_non_null(k->def);
		assert_non_null(k->help);
		assert_true(strlen(k->help) > 0);
		snprintf(t, sizeof t, " %s ", k->type);
		if (strstr(types, t) == NULL)
			fail_msg("%s: type '%s'", k->name, k->type);
		/* Names are unique. */
		for (const struct pw_config_key *o = pw_config_keys(); o < k;
		    o++)
			assert_string_not_equal(o->name, k->name);
		/* Every default passes its own check. */
		if (strcmp(k->name, "strategy.plugins") != 0)
			check_ok(k->name, k->def, k->def);
	}
	assert_true(n >= 10);
	/* The keys issue 2 and DESIGN.md name are there. */
	static const char *const must[] = {
		"strategy", "fetch.timeout", "health.concurrency",
		"cache.ttl", "serve.listen",
	};
	for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
		for (k = pw_config_keys(); k->name != NULL; k++)
			if (strcmp(k->name, must[i]) == 0)
				break;
		if (k->name == NULL)
			fail_msg("no key %s", must[i]);
	}
}

static void
test_defaults(void **state)
{
	struct pw_ctx			*ctx = ctx_bare(*state);
	const struct pw_config_key	*k;
	int				 origin;

	for (k = pw_config_keys(); k->name != NULL; k++) {
		origin = -1;
		assert_string_equal(pw_config_get(ctx, k->name, &origin),
		    k->def);
		assert_int_equal(origin, PW_ORIGIN_DEFAULT);
	}
	assert_string_equal(pw_config_get(ctx, "strategy", NULL),
	    "round-robin");
	assert_int_equal(pw_config_int(ctx, "fetch.timeout"), 30);
	assert_int_equal(pw_config_int(ctx, "pool.cooldown"), 300);
	assert_int_equal(pw_config_int(ctx, "fetch.retries"), 3);
	assert_int_equal(pw_config_int(ctx, "cache.ttl"), 0);
	assert_true(pw_config_double(ctx, "strategy.alpha") == 0.3);
	assert_string_equal(pw_config_get(ctx, "serve.listen", NULL),
	    "127.0.0.1:8000");
}

static void
test_origin_names(void **state)
{
	assert_string_equal(pw_origin_name(PW_ORIGIN_DEFAULT), "default");
	assert_string_equal(pw_origin_name(PW_ORIGIN_STATE), "state");
	assert_string_equal(pw_origin_name(PW_ORIGIN_ENV), "env");
	assert_string_equal(pw_origin_name(PW_ORIGIN_FLAG), "flag");
}

/* ---------------------------------------------------------- validation */

static void
test_int_values(void **state)
{
	check_ok("fetch.retries", "1", "1");
	check_ok("fetch.retries", "100", "100");
	check_ok("fetch.retries", "007", "7");
	check_ok("fetch.retries", "+5", "5");
	check_ok("health.concurrency", "10000", "10000");
	static const char *const bad[] = {
		"0", "101", "-1", "abc", "", "1.5", " 5", "5 ", "0x10", "1e2",
		"99999999999999999999",
	};
	char	msg[160];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(msg, sizeof msg, "fetch.retries: '%s': want an "
		    "integer from 1 to 100", bad[i]);
		check_bad("fetch.retries", bad[i], msg);
	}
	check_bad("health.concurrency", "10001", "health.concurrency: "
	    "'10001': want an integer from 1 to 10000");
}

static void
test_duration_values(void **state)
{
	check_ok("fetch.timeout", "1", "1");
	check_ok("fetch.timeout", "90", "90");
	check_ok("fetch.timeout", "90s", "90s");
	check_ok("fetch.timeout", "15m", "15m");
	check_ok("fetch.timeout", "1h", "1h");
	check_ok("fetch.timeout", "3600", "3600");
	check_ok("cache.ttl", "0", "0");
	check_ok("cache.ttl", "7d", "7d");
	check_ok("pool.cooldown", "0", "0");
	static const char *const bad[] = {
		"0", "3601", "2h", "1d", "-5", "", "5x", "5mm", "m", "1.5",
		" 5", "5 ", "15M",
	};
	char	msg[200];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(msg, sizeof msg, "fetch.timeout: '%s': want a "
		    "duration from 1s to 3600s (like 90, 90s, 15m, 2h, 7d)",
		    bad[i]);
		check_bad("fetch.timeout", bad[i], msg);
	}
	check_bad("cache.ttl", "366d", "cache.ttl: '366d': want a duration "
	    "from 0s to 31536000s (like 90, 90s, 15m, 2h, 7d)");
}

static void
test_real_values(void **state)
{
	check_ok("strategy.alpha", "0.5", "0.5");
	check_ok("strategy.alpha", "0.001", "0.001");
	check_ok("strategy.alpha", "0.999", "0.999");
	static const char *const bad[] = {
		"0", "1", "0.0009", "-0.5", "nan", "inf", "abc", "", " 0.5",
		"0.5x",
	};
	char	msg[160];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(msg, sizeof msg, "strategy.alpha: '%s': want a number "
		    "from 0.001 to 0.999", bad[i]);
		check_bad("strategy.alpha", bad[i], msg);
	}
}

static void
test_enum_values(void **state)
{
	check_ok("strategy.fallback", "random", "random");
	check_ok("strategy.fallback", "RANDOM", "random");
	check_ok("strategy.fallback", "none", "none");
	check_ok("strategy.fallback", "Least-Used", "least-used");
	check_bad("strategy.fallback", "bogus", "strategy.fallback: 'bogus': "
	    "want one of: none round-robin random weighted least-used");
	check_bad("strategy.fallback", "", "strategy.fallback: '': want one "
	    "of: none round-robin random weighted least-used");
	check_bad("strategy.fallback", "round", "strategy.fallback: 'round': "
	    "want one of: none round-robin random weighted least-used");
	check_bad("strategy.fallback", "random ", "strategy.fallback: "
	    "'random ': want one of: none round-robin random weighted "
	    "least-used");
}

static void
test_strategy_values(void **state)
{
	static const char *const builtin[] = {
		"round-robin", "random", "weighted", "least-used",
		"performance", "sticky", "geo",
	};

	for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
		check_ok("strategy", builtin[i], builtin[i]);
	check_ok("strategy", "ROUND-ROBIN", "round-robin");
	/* A name a plugin could have passes the check; its use is later. */
	check_ok("strategy", "my_plugin-2", "my_plugin-2");
	check_bad("strategy", "", "strategy: '': want one of: round-robin "
	    "random weighted least-used performance sticky geo");
	check_bad("strategy", "no spaces", "strategy: 'no spaces': want one "
	    "of: round-robin random weighted least-used performance sticky "
	    "geo");
	check_bad("strategy", "../evil", "strategy: '../evil': want one of: "
	    "round-robin random weighted least-used performance sticky geo");
	check_bad("strategy", "a23456789012345678901234567890123", "strategy: "
	    "'a23456789012345678901234567890123': want one of: round-robin "
	    "random weighted least-used performance sticky geo");
}

static void
test_bool_values(void **state)
{
	static const char *const yes[] = { "1", "true", "TRUE", "yes", "On" };
	static const char *const no[] = { "0", "false", "No", "off", "OFF" };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		check_ok("geo.fallback", yes[i], "true");
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		check_ok("geo.fallback", no[i], "false");
	check_bad("geo.fallback", "maybe", "geo.fallback: 'maybe': want true "
	    "or false");
	check_bad("geo.fallback", "", "geo.fallback: '': want true or false");
	check_bad("geo.fallback", "2", "geo.fallback: '2': want true or "
	    "false");
}

static void
test_string_values(void **state)
{
	check_ok("serve.listen", "0.0.0.0:9000", "0.0.0.0:9000");
	check_ok("serve.listen", "[::1]:8000", "[::1]:8000");
	check_bad("serve.listen", "a\nb", "serve.listen: value contains a "
	    "control character");
	check_bad("serve.listen", "\t", "serve.listen: value contains a "
	    "control character");
	/* Found by fuzz_config: a refusal quoted the byte as it came. */
	check_bad("fetch.rate_per_host", "010\001/s", "fetch.rate_per_host: "
	    "value contains a control character");
	check_bad("fetch.timeout", "\0339", "fetch.timeout: value contains "
	    "a control character");
	check_bad("strategy", "random\x7f", "strategy: value contains a "
	    "control character");
}

static char *
unknown_msg(const char *name)
{
	struct pw_buf	 b;

	pw_buf_init(&b);
	pw_buf_addf(&b, "'%s': unknown config key (valid: ", name);
	for (const struct pw_config_key *k = pw_config_keys(); k->name;
	    k++)
		pw_buf_addf(&b, "%s%s", k == pw_config_keys() ? "" : ", ",
		    k->name);
	pw_buf_addc(&b, ')');
	return pw_buf_detach(&b);
}

static void
test_unknown_key(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	*ctx = ctx_state(f);
	struct pw_err	 err = { 0 };
	char		*canon = (char *)&canon, *want;
	static const char *const names[] = {
		"nope", "", "Strategy", "fetch", "fetch.timeout.x",
		"fetch_timeout", "FETCH.TIMEOUT",
	};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		want = unknown_msg(names[i]);
		memset(&err, 0, sizeof err);
		assert_int_equal(pw_config_check(names[i], "1", &canon, &err),
		    PW_EUSAGE);
		assert_string_equal(err.msg, want);
		assert_ptr_equal(canon, (char *)&canon);
		memset(&err, 0, sizeof err);
		assert_int_equal(pw_config_set_flag(ctx->cfg, names[i], "1",
		    &err), PW_EUSAGE);
		assert_string_equal(err.msg, want);
		assert_int_equal(pw_config_store(ctx, names[i], "1"),
		    PW_EUSAGE);
		assert_string_equal(ctx->err.msg, want);
		assert_int_equal(pw_config_unstore(ctx, names[i]), PW_EUSAGE);
		assert_string_equal(ctx->err.msg, want);
		assert_null(pw_config_get(ctx, names[i], NULL));
		free(want);
	}
	/* The list names every key. */
	want = unknown_msg("x");
	for (const struct pw_config_key *k = pw_config_keys(); k->name; k++)
		assert_non_null(strstr(want, k->name));
	free(want);
}

/* ----------------------------------------------------------------- env */

static void
test_env_names(void **state)
{
	struct fix			*f = *state;
	const struct pw_config_key	*k;
	char				*name;
	int				 origin;

	/* Every key has its variable: dots become "__". */
	for (k = pw_config_keys(); k->name != NULL; k++) {
		name = env_of(k->name);
		setenv(name, k->def, 1);
		free(name);
	}
	ctx_bare(f);
	for (k = pw_config_keys(); k->name != NULL; k++) {
		origin = -1;
		pw_config_get(&f->ctx, k->name, &origin);
		if (origin != PW_ORIGIN_ENV)
			fail_msg("%s: origin %d", k->name, origin);
	}
}

static void
test_env_value(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	*ctx;
	int		 origin;

	setenv("PW_FETCH__TIMEOUT", "15m", 1);
	setenv("PW_STRATEGY", "Random", 1);
	setenv("PW_GEO__FALLBACK", "yes", 1);
	/* Near misses are not settings. */
	setenv("PW_FETCH_TIMEOUT", "1", 1);
	setenv("PW_fetch__retries", "1", 1);
	setenv("PW_FETCH.RETRIES", "1", 1);
	ctx = ctx_bare(f);
	assert_string_equal(pw_config_get(ctx, "fetch.timeout", &origin),
	    "15m");
	assert_int_equal(origin, PW_ORIGIN_ENV);
	assert_int_equal(pw_config_int(ctx, "fetch.timeout"), 900);
	/* The stored form is the canonical one. */
	assert_string_equal(pw_config_get(ctx, "strategy", &origin),
	    "random");
	assert_int_equal(origin, PW_ORIGIN_ENV);
	assert_string_equal(pw_config_get(ctx, "geo.fallback", NULL), "true");
	assert_int_equal(pw_config_int(ctx, "geo.fallback"), 1);
	assert_string_equal(pw_config_get(ctx, "fetch.retries", &origin), "3");
	assert_int_equal(origin, PW_ORIGIN_DEFAULT);
}

static void
test_env_bad_value(void **state)
{
	struct pw_config	*c = pw_config_new();
	struct pw_err		 err = { 0 };

	setenv("PW_FETCH__RETRIES", "0", 1);
	assert_int_equal(pw_config_load_env(c, &err), PW_EUSAGE);
	assert_string_equal(err.msg, "PW_FETCH__RETRIES: fetch.retries: '0': "
	    "want an integer from 1 to 100");
	pw_config_free(c);

	/* Empty is a value, and not a valid one. */
	c = pw_config_new();
	setenv("PW_FETCH__RETRIES", "", 1);
	assert_int_equal(pw_config_load_env(c, &err), PW_EUSAGE);
	assert_string_equal(err.msg, "PW_FETCH__RETRIES: fetch.retries: '': "
	    "want an integer from 1 to 100");
	pw_config_free(c);
	pw_config_free(NULL);
}

static void
test_open_fails_on_bad_env(void **state)
{
	struct fix	*f = *state;

	setenv("PW_STRATEGY__ALPHA", "2", 1);
	assert_int_equal(pw_open(&f->ctx, f->path, PW_OPEN_RW), PW_EUSAGE);
	assert_string_equal(f->ctx.err.msg, "PW_STRATEGY__ALPHA: "
	    "strategy.alpha: '2': want a number from 0.001 to 0.999");
	/* Settings are read before the state file is touched. */
	assert_false(unit_exists(f->path));
}

/* ---------------------------------------------------------- precedence */

static void
check_get(struct pw_ctx *ctx, const char *key, const char *want, int origin)
{
	int		 o = -1;
	const char	*v = pw_config_get(ctx, key, &o);

	if (strcmp(v, want) != 0 || o != origin)
		fail_msg("%s: want '%s' (%s), got '%s' (%s)", key, want,
		    pw_origin_name(origin), v, o >= 0 ? pw_origin_name(o) :
		    "?");
}

static void
test_precedence(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	*ctx = ctx_state(f);
	struct pw_err	 err = { 0 };

	check_get(ctx, "fetch.retries", "3", PW_ORIGIN_DEFAULT);
	assert_int_equal(pw_config_store(ctx, "fetch.retries", "5"), 0);
	check_get(ctx, "fetch.retries", "5", PW_ORIGIN_STATE);
	setenv("PW_FETCH__RETRIES", "6", 1);
	assert_int_equal(pw_config_load_env(ctx->cfg, &err), 0);
	check_get(ctx, "fetch.retries", "6", PW_ORIGIN_ENV);
	assert_int_equal(pw_config_set_flag(ctx->cfg, "fetch.retries", "7",
	    &err), 0);
	check_get(ctx, "fetch.retries", "7", PW_ORIGIN_FLAG);
	assert_int_equal(pw_config_int(ctx, "fetch.retries"), 7);
	/* A lower layer changing does not show through a higher one. */
	assert_int_equal(pw_config_store(ctx, "fetch.retries", "8"), 0);
	check_get(ctx, "fetch.retries", "7", PW_ORIGIN_FLAG);
	/* Other keys are untouched. */
	check_get(ctx, "fetch.timeout", "30", PW_ORIGIN_DEFAULT);
	/* A bad flag value leaves the flag layer as it was. */
	assert_int_equal(pw_config_set_flag(ctx->cfg, "fetch.retries", "0",
	    &err), PW_EUSAGE);
	check_get(ctx, "fetch.retries", "7", PW_ORIGIN_FLAG);
}

static void
test_state_layer_persists(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	*ctx = ctx_state(f);

	assert_int_equal(pw_config_store(ctx, "strategy", "WEIGHTED"), 0);
	assert_int_equal(pw_config_store(ctx, "cache.ttl", "2h"), 0);
	pw_close(ctx);

	/* Read back from the file by a new context. */
	ctx = ctx_state(f);
	check_get(ctx, "strategy", "weighted", PW_ORIGIN_STATE);
	check_get(ctx, "cache.ttl", "2h", PW_ORIGIN_STATE);
	assert_int_equal(pw_config_int(ctx, "cache.ttl"), 7200);
	/* The environment beats it; the flag beats both. */
	pw_close(ctx);
	setenv("PW_STRATEGY", "random", 1);
	ctx = ctx_state(f);
	check_get(ctx, "strategy", "random", PW_ORIGIN_ENV);
	check_get(ctx, "cache.ttl", "2h", PW_ORIGIN_STATE);

	/* Unset: the state layer is gone, the environment remains. */
	assert_int_equal(pw_config_unstore(ctx, "strategy"), 0);
	assert_int_equal(pw_config_unstore(ctx, "cache.ttl"), 0);
	assert_int_equal(pw_config_unstore(ctx, "cache.ttl"), 0);
	check_get(ctx, "cache.ttl", "0", PW_ORIGIN_DEFAULT);
	pw_close(ctx);
	unsetenv("PW_STRATEGY");
	ctx = ctx_state(f);
	check_get(ctx, "strategy", "round-robin", PW_ORIGIN_DEFAULT);
	check_get(ctx, "cache.ttl", "0", PW_ORIGIN_DEFAULT);
}

struct kv_count {
	int	n;
};

static int
kv_count(void *arg, const char *k, const char *v)
{
	(void)k;
	(void)v;
	((struct kv_count *)arg)->n++;
	return 0;
}

static void
test_store_refuses_bad_value(void **state)
{
	struct fix		*f = *state;
	struct pw_ctx		*ctx = ctx_state(f);
	struct pw_err		 err = { 0 };
	struct kv_count		 kc = { 0 };

	assert_int_equal(pw_config_store(ctx, "fetch.retries", "101"),
	    PW_EUSAGE);
	assert_string_equal(ctx->err.msg, "fetch.retries: '101': want an "
	    "integer from 1 to 100");
	assert_int_equal(pw_config_store(ctx, "strategy", "nosuch"),
	    PW_EUSAGE);
	assert_string_equal(ctx->err.msg, "strategy: 'nosuch': unknown "
	    "strategy (want one of: round-robin random weighted least-used "
	    "performance sticky geo, or a plugin's name)");
	check_get(ctx, "fetch.retries", "3", PW_ORIGIN_DEFAULT);
	check_get(ctx, "strategy", "round-robin", PW_ORIGIN_DEFAULT);
	/* Nothing reached the file. */
	assert_int_equal(pw_store_config_each(ctx->store, kv_count, &kc,
	    &err), 0);
	assert_int_equal(kc.n, 0);
}

static void
test_store_many(void **state)
{
	struct fix		*f = *state;
	struct pw_ctx		*ctx = ctx_state(f);
	struct pw_err		 err = { 0 };
	struct kv_count		 kc = { 0 };
	const char		*names[] = { "health.concurrency", "strategy",
				    "ratelimit.redis_url", "service.key" };
	const char		*values[] = { "7", "random",
				    "redis://:pw123@127.0.0.1:6379/0", "x" };
	size_t			 bad;

	/* A secret, refused: nothing else is stored either. */
	assert_int_equal(pw_config_store_many(ctx, names, values, 3, &bad),
	    PW_EUSAGE);
	assert_int_equal(bad, 2);
	assert_string_equal(ctx->err.msg, "ratelimit.redis_url: a password "
	    "is not kept in the state file; give this URL in "
	    "$PW_RATELIMIT__REDIS_URL");
	assert_int_equal(pw_config_store_many(ctx, names + 1, values + 1, 3,
	    &bad), PW_EUSAGE);
	assert_int_equal(bad, 1);
	names[3] = "strategy";
	values[3] = "nosuch";
	assert_int_equal(pw_config_store_many(ctx, names + 3, values + 3, 1,
	    &bad), PW_EUSAGE);
	assert_int_equal(bad, 0);
	check_get(ctx, "health.concurrency", "100", PW_ORIGIN_DEFAULT);
	assert_int_equal(pw_store_config_each(ctx->store, kv_count, &kc,
	    &err), 0);
	assert_int_equal(kc.n, 0);
	/* Good ones: all at once; NULL unsets. */
	assert_int_equal(pw_config_store_many(ctx, names, values, 2, &bad), 0);
	check_get(ctx, "health.concurrency", "7", PW_ORIGIN_STATE);
	check_get(ctx, "strategy", "random", PW_ORIGIN_STATE);
	values[0] = NULL;
	assert_int_equal(pw_config_store_many(ctx, names, values, 1, &bad), 0);
	check_get(ctx, "health.concurrency", "100", PW_ORIGIN_DEFAULT);
	pw_close(ctx);
	ctx = ctx_state(f);
	check_get(ctx, "strategy", "random", PW_ORIGIN_STATE);
	check_get(ctx, "health.concurrency", "100", PW_ORIGIN_DEFAULT);
}

static void
test_hand_edited_state(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	*ctx = ctx_state(f);
	struct pw_err	 err = { 0 };

	/* Values that never passed a check fall back to the default. */
	assert_int_equal(pw_store_config_put(ctx->store, "fetch.retries",
	    "lots", &err), 0);
	assert_int_equal(pw_store_config_put(ctx->store, "fetch.timeout",
	    "soon", &err), 0);
	assert_int_equal(pw_store_config_put(ctx->store, "strategy.alpha",
	    "big", &err), 0);
	/* A key from a newer pw is kept and ignored. */
	assert_int_equal(pw_store_config_put(ctx->store, "future.key", "1",
	    &err), 0);
	pw_close(ctx);
	ctx = ctx_state(f);
	assert_int_equal(pw_config_int(ctx, "fetch.retries"), 3);
	assert_int_equal(pw_config_int(ctx, "fetch.timeout"), 30);
	assert_true(pw_config_double(ctx, "strategy.alpha") == 0.3);
	assert_null(pw_config_get(ctx, "future.key", NULL));
}

/* --------------------------------------------------------------- paths */

static void
test_state_path(void **state)
{
	struct fix	*f = *state;
	char		*p, *want;
	const char	*home = getenv("HOME");

	want = pw_xasprintf("%s/.local/state/pw/state.db", home);
	p = pw_config_state_path(NULL);
	assert_string_equal(p, want);
	free(p);
	free(want);
	p = pw_config_state_path("");
	want = pw_xasprintf("%s/.local/state/pw/state.db", home);
	assert_string_equal(p, want);
	free(p);
	free(want);

	/* XDG_STATE_HOME counts only when absolute. */
	setenv("XDG_STATE_HOME", "relative/dir", 1);
	p = pw_config_state_path(NULL);
	want = pw_xasprintf("%s/.local/state/pw/state.db", home);
	assert_string_equal(p, want);
	free(p);
	free(want);
	setenv("XDG_STATE_HOME", f->dir, 1);
	p = pw_config_state_path(NULL);
	want = pw_xasprintf("%s/pw/state.db", f->dir);
	assert_string_equal(p, want);
	free(p);
	free(want);

	/* $PW_STATE beats XDG; an empty one does not count. */
	setenv("PW_STATE", "", 1);
	p = pw_config_state_path(NULL);
	want = pw_xasprintf("%s/pw/state.db", f->dir);
	assert_string_equal(p, want);
	free(p);
	free(want);
	setenv("PW_STATE", "/env/state.db", 1);
	p = pw_config_state_path(NULL);
	assert_string_equal(p, "/env/state.db");
	free(p);

	/* The flag beats everything. */
	p = pw_config_state_path("flag.db");
	assert_string_equal(p, "flag.db");
	free(p);
}

static void
test_state_path_without_home(void **state)
{
	char	*p;

	unsetenv("HOME");
	p = pw_config_state_path(NULL);
	assert_string_equal(p, "./.local/state/pw/state.db");
	free(p);
	setenv("HOME", "", 1);
	p = pw_config_key_path();
	assert_string_equal(p, "./.config/pw/key");
	free(p);
}

static void
test_key_path_and_secret(void **state)
{
	struct fix	*f = *state;
	char		*p, *want;

	want = pw_xasprintf("%s/.config/pw/key", getenv("HOME"));
	p = pw_config_key_path();
	assert_string_equal(p, want);
	free(p);
	free(want);
	setenv("XDG_CONFIG_HOME", f->dir, 1);
	p = pw_config_key_path();
	want = pw_xasprintf("%s/pw/key", f->dir);
	assert_string_equal(p, want);
	free(p);
	free(want);

	assert_null(pw_config_secret_hex());
	setenv("PW_SECRET_KEY", "", 1);
	assert_null(pw_config_secret_hex());
	setenv("PW_SECRET_KEY", "abcd", 1);
	assert_string_equal(pw_config_secret_hex(), "abcd");
}

/* A copy for another thread's context: every layer, owned apart. */
static void
test_dup(void **state)
{
	struct fix		*f = *state;
	struct pw_ctx		*ctx = ctx_state(f), other;
	struct pw_config	*copy;

	assert_int_equal(pw_config_store(ctx, "fetch.retries", "5"), 0);
	assert_int_equal(pw_config_set_flag(ctx->cfg, "strategy", "random",
	    &ctx->err), 0);
	copy = pw_config_dup(ctx->cfg);
	memset(&other, 0, sizeof other);
	other.cfg = copy;
	assert_string_equal(pw_config_get(&other, "strategy", NULL), "random");
	assert_int_equal(pw_config_int(&other, "fetch.retries"), 5);
	/* Changing one leaves the other alone. */
	assert_int_equal(pw_config_set_flag(ctx->cfg, "strategy", "weighted",
	    &ctx->err), 0);
	assert_string_equal(pw_config_get(&other, "strategy", NULL), "random");
	pw_config_free(copy);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_key_table),
		T(test_defaults),
		T(test_origin_names),
		T(test_int_values),
		T(test_duration_values),
		T(test_real_values),
		T(test_enum_values),
		T(test_strategy_values),
		T(test_bool_values),
		T(test_string_values),
		T(test_unknown_key),
		T(test_env_names),
		T(test_env_value),
		T(test_env_bad_value),
		T(test_open_fails_on_bad_env),
		T(test_precedence),
		T(test_state_layer_persists),
		T(test_store_refuses_bad_value),
		T(test_store_many),
		T(test_hand_edited_state),
		T(test_state_path),
		T(test_state_path_without_home),
		T(test_key_path_and_secret),
		T(test_dup),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
