/*
 * auth.c -- unit tests for lib/auth.c (and the API-key parts of crypto.c
 * and store.c): a key made, stored as its hash only, checked, listed and
 * revoked; bad names and tiers; nothing written by a refusal.
 */
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

	unit_env_clear();
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

static int
count_one(void *arg, const struct pw_apikey *k)
{
	(void)k;
	(*(int *)arg)++;
	return 0;
}

static void
test_new_key_and_hash(void **state)
{
	char		 a[PW_APIKEY_LEN + 1], b[PW_APIKEY_LEN + 1];
	unsigned char	 h1[PW_APIKEY_HASH_BYTES], h2[PW_APIKEY_HASH_BYTES];
	struct pw_err	 err;

	assert_int_equal(pw_crypto_apikey_new(a, &err), 0);
	assert_int_equal(pw_crypto_apikey_new(b, &err), 0);
	assert_int_equal(strlen(a), PW_APIKEY_LEN);
	assert_memory_equal(a, "pw_", 3);
	assert_int_equal(strspn(a + 3, "0123456789abcdef"), PW_APIKEY_LEN - 3);
	assert_string_not_equal(a, b);
	assert_int_equal(pw_crypto_apikey_hash(a, strlen(a), h1, &err), 0);
	assert_int_equal(pw_crypto_apikey_hash(a, strlen(a), h2, &err), 0);
	assert_true(pw_crypto_equal(h1, h2, sizeof h1));
	assert_int_equal(pw_crypto_apikey_hash(b, strlen(b), h2, &err), 0);
	assert_false(pw_crypto_equal(h1, h2, sizeof h1));
}

static void
test_add_check_remove(void **state)
{
	struct fix		*f = *state;
	struct pw_apikey	 k;
	char			*key = NULL, *other = NULL, *wal;
	unsigned char		*s;
	size_t			 len;
	int			 any = -1, n = 0;

	assert_int_equal(pw_apikey_any(&f->ctx, &any), 0);
	assert_int_equal(any, 0);
	assert_int_equal(pw_apikey_add(&f->ctx, "ci", "premium", &key), 0);
	assert_int_equal(pw_apikey_add(&f->ctx, "Web.App_2", NULL, &other), 0);
	assert_int_equal(pw_apikey_any(&f->ctx, &any), 0);
	assert_int_equal(any, 1);
	/* only the hash is in the file and its WAL */
	wal = pw_xasprintf("%s-wal", f->path);
	for (int i = 0; i < 2; i++) {
		s = unit_read(i ? wal : f->path, &len);
		assert_non_null(s);
		assert_false(unit_contains(s, len, key + 3));
		assert_false(unit_contains(s, len, other + 3));
		free(s);
	}
	free(wal);
	memset(&k, 0, sizeof k);
	assert_int_equal(pw_apikey_check(&f->ctx, key, strlen(key), &k), 0);
	assert_string_equal(k.name, "ci");
	assert_string_equal(k.tier, "premium");
	assert_true(k.id > 0);
	assert_int_equal(pw_apikey_check(&f->ctx, other, strlen(other), &k), 0);
	assert_string_equal(k.name, "Web.App_2");
	assert_string_equal(k.tier, PW_APIKEY_TIER_DEFAULT);
	/* the key alone: a prefix or more is not it */
	assert_int_equal(pw_apikey_check(&f->ctx, key, strlen(key) - 1, &k),
	    PW_ENOTFOUND);
	key[PW_APIKEY_LEN - 1] ^= 1;
	assert_int_equal(pw_apikey_check(&f->ctx, key, strlen(key), &k),
	    PW_ENOTFOUND);
	assert_string_equal(f->ctx.err.msg, "not a valid API key");
	assert_null(strstr(f->ctx.err.msg, key + 3));
	key[PW_APIKEY_LEN - 1] ^= 1;
	assert_int_equal(pw_apikey_check(&f->ctx, "nope", 4, &k), PW_ENOTFOUND);
	assert_int_equal(pw_apikey_each(&f->ctx, count_one, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(pw_apikey_remove(&f->ctx, "ci"), 0);
	assert_int_equal(pw_apikey_check(&f->ctx, key, strlen(key), &k),
	    PW_ENOTFOUND);
	assert_int_equal(pw_apikey_remove(&f->ctx, "ci"), PW_ENOTFOUND);
	assert_string_equal(f->ctx.err.msg, "'ci': no such key");
	pw_secret_free(key);
	pw_secret_free(other);
}

static void
test_refusals(void **state)
{
	struct fix	*f = *state;
	char		*key = NULL, *k2 = (char *)"untouched";
	char		 long_name[PW_APIKEY_NAME_MAX + 2];

	memset(long_name, 'a', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	assert_int_equal(pw_apikey_add(&f->ctx, "a b", NULL, &k2), PW_EUSAGE);
	assert_int_equal(pw_apikey_add(&f->ctx, "", NULL, &k2), PW_EUSAGE);
	assert_int_equal(pw_apikey_add(&f->ctx, long_name, NULL, &k2),
	    PW_EUSAGE);
	assert_int_equal(pw_apikey_add(&f->ctx, "x", "Gold", &k2), PW_EUSAGE);
	assert_int_equal(pw_apikey_add(&f->ctx, "x", "a.b", &k2), PW_EUSAGE);
	assert_string_equal(k2, "untouched");
	/* nothing was made: the file is not even there */
	assert_false(unit_exists(f->path));
	assert_int_equal(pw_apikey_remove(&f->ctx, "x"), PW_ENOTFOUND);
	assert_false(unit_exists(f->path));
	long_name[PW_APIKEY_NAME_MAX] = '\0';
	assert_int_equal(pw_apikey_add(&f->ctx, long_name, "t-1_x", &key), 0);
	pw_secret_free(key);
	assert_int_equal(pw_apikey_add(&f->ctx, long_name, NULL, &k2),
	    PW_EEXIST);
	assert_string_equal(k2, "untouched");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_new_key_and_hash),
		T(test_add_check_remove),
		T(test_refusals),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
