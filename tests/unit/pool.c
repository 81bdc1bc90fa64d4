/*
 * pool.c -- unit tests for the proxy pool (lib/pool.c): add, duplicates,
 * resolve, remove, clear, get, each, set, filters, metadata, credentials,
 * country codes and status names.
 */
#include "unit.h"

#define NOW	1700000000

struct fix {
	char		*dir;
	char		*path;
	char		*keyfile;
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
	f->keyfile = unit_path(xdg, "pw/key");
	free(xdg);
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
	free(f->keyfile);
	free(f->path);
	unit_tmp_free(f->dir);
	free(f);
	return 0;
}

static const struct pw_meta no_meta = { NULL, NULL, NULL, -1, 0 };

/* Add the URLs in one call; results and ids into the arrays given. */
static int
add_urls(struct pw_ctx *ctx, const char *const *urls, size_t n,
    const struct pw_meta *m, int *res, int64_t *ids)
{
	struct pw_addr	*a = pw_xcalloc(n, sizeof *a);
	int		 r;

	for (size_t i = 0; i < n; i++)
		if (pw_addr_parse(urls[i], &a[i], NULL) != 0)
			fail_msg("parse '%s'", urls[i]);
	r = pw_pool_add(ctx, a, n, m, res, ids);
	for (size_t i = 0; i < n; i++)
		pw_addr_release(&a[i]);
	free(a);
	return r;
}

/* Add one URL, which must be new; its id. */
static int64_t
add1(struct pw_ctx *ctx, const char *url, const struct pw_meta *m)
{
	int	res = -1;
	int64_t	id = -1;

	if (add_urls(ctx, &url, 1, m ? m : &no_meta, &res, &id) != 0)
		fail_msg("add '%s': %s", url, ctx->err.msg);
	assert_int_equal(res, PW_ADDED);
	assert_true(id > 0);
	return id;
}

static int
count_fn(void *arg, const struct pw_proxy *p)
{
	(void)p;
	(*(int *)arg)++;
	return 0;
}

static int
count(struct pw_ctx *ctx, const struct pw_filter *flt)
{
	int	n = 0;

	if (pw_pool_each(ctx, flt, 0, count_fn, &n) != 0)
		fail_msg("each: %s", ctx->err.msg);
	return n;
}

/* The proxy's URL as pw shows it with creds mode m; caller frees. */
static char *
url_of(struct pw_ctx *ctx, int64_t id, int secrets, int m)
{
	struct pw_proxy	 p;
	char		*s;

	if (pw_pool_get(ctx, id, secrets, &p) != 0)
		fail_msg("get %lld: %s", (long long)id, ctx->err.msg);
	s = pw_addr_format(&p.addr, m);
	pw_proxy_release(&p);
	return s;
}

/* ------------------------------------------------------------------ add */

static void
test_add_and_get(void **state)
{
	struct fix	*f = *state;
	struct pw_proxy	 p;
	struct pw_meta	 m = { "list.txt", "DE", "Berlin", 2.5, 3600 };
	int64_t		 id;

	id = add1(&f->ctx, "SOCKS5://Proxy.Example:1080/", &m);
	assert_int_equal(pw_pool_get(&f->ctx, id, 0, &p), 0);
	assert_int_equal(p.id, id);
	assert_int_equal(p.addr.scheme, PW_SOCKS5);
	assert_string_equal(p.addr.host, "proxy.example");
	assert_int_equal(p.addr.port, 1080);
	assert_null(p.addr.user);
	assert_null(p.addr.pass);
	assert_int_equal(p.has_creds, 0);
	assert_string_equal(p.source, "list.txt");
	assert_string_equal(p.country, "DE");
	assert_string_equal(p.region, "Berlin");
	assert_true(p.weight == 2.5);
	assert_int_equal(p.status, PW_UNKNOWN);
	assert_null(p.anonymity);
	assert_int_equal(p.added_at, NOW);
	assert_int_equal(p.updated_at, NOW);
	assert_int_equal(p.expires_at, NOW + 3600);
	assert_int_equal(p.started, 0);
	assert_int_equal(p.succeeded, 0);
	assert_int_equal(p.failed, 0);
	assert_true(p.latency_ms < 0);
	pw_proxy_release(&p);
	assert_null(p.source);
	assert_null(p.addr.host);
}

static void
test_add_without_meta(void **state)
{
	struct fix	*f = *state;
	struct pw_proxy	 p;
	int64_t		 id = add1(&f->ctx, "h:1", NULL);

	assert_int_equal(pw_pool_get(&f->ctx, id, 0, &p), 0);
	assert_null(p.source);
	assert_null(p.country);
	assert_null(p.region);
	assert_true(p.weight < 0);
	assert_int_equal(p.expires_at, 0);
	pw_proxy_release(&p);
}

static void
test_add_batch(void **state)
{
	static const char *const urls[] = {
		"http://a:1", "https://b:2", "socks4://c:3", "socks4a://d:4",
		"socks5://e:5", "socks5h://f:6", "[::1]:7", "10.0.0.1:8",
	};
	struct fix	*f = *state;
	int		 res[8];
	int64_t		 ids[8];
	char		*s;

	assert_int_equal(add_urls(&f->ctx, urls, 8, &no_meta, res, ids), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(res[i], PW_ADDED);
		if (i > 0)
			assert_true(ids[i] > ids[i - 1]);
	}
	assert_int_equal(count(&f->ctx, NULL), 8);
	s = url_of(&f->ctx, ids[6], 0, PW_CREDS_MASK);
	assert_string_equal(s, "http://[::1]:7");
	free(s);
	/* No credentials anywhere: no key file was made. */
	assert_false(unit_exists(f->keyfile));
	assert_null(f->ctx.key);
}

static void
test_add_duplicates(void **state)
{
	static const char *const urls[] = {
		"http://example.com:80", "HTTP://EXAMPLE.COM/", "example.com",
		"https://example.com", "example.com:8080", "example.com:80",
	};
	struct fix	*f = *state;
	int		 res[6];
	int64_t		 ids[6];

	/* Spellings of one proxy inside one batch: the first wins. */
	assert_int_equal(add_urls(&f->ctx, urls, 6, &no_meta, res, ids), 0);
	assert_int_equal(res[0], PW_ADDED);
	assert_int_equal(res[1], PW_DUPLICATE);
	assert_int_equal(ids[1], ids[0]);
	assert_int_equal(res[2], PW_DUPLICATE);
	assert_int_equal(ids[2], ids[0]);
	assert_int_equal(res[3], PW_ADDED);
	assert_int_equal(res[4], PW_ADDED);
	assert_int_equal(res[5], PW_DUPLICATE);
	assert_int_equal(ids[5], ids[0]);
	assert_int_equal(count(&f->ctx, NULL), 3);

	/* And across batches. */
	assert_int_equal(add_urls(&f->ctx, &urls[4], 1, &no_meta, res, ids),
	    0);
	assert_int_equal(res[0], PW_DUPLICATE);
	assert_int_equal(count(&f->ctx, NULL), 3);
}

static void
test_duplicate_keeps_first_metadata(void **state)
{
	struct fix	*f = *state;
	struct pw_meta	 m1 = { "first", "FR", NULL, 1, 0 };
	struct pw_meta	 m2 = { "second", "DE", "x", 9, 60 };
	struct pw_proxy	 p;
	const char	*url = "h:1";
	int		 res;
	int64_t		 id1, id2;

	id1 = add1(&f->ctx, url, &m1);
	assert_int_equal(add_urls(&f->ctx, &url, 1, &m2, &res, &id2), 0);
	assert_int_equal(res, PW_DUPLICATE);
	assert_int_equal(id2, id1);
	assert_int_equal(pw_pool_get(&f->ctx, id1, 0, &p), 0);
	assert_string_equal(p.source, "first");
	assert_string_equal(p.country, "FR");
	assert_null(p.region);
	assert_int_equal(p.expires_at, 0);
	pw_proxy_release(&p);
}

/* ---------------------------------------------------------- credentials */

static void
test_add_with_credentials(void **state)
{
	struct fix	*f = *state;
	struct pw_proxy	 p;
	int64_t		 id;
	char		*s;

	id = add1(&f->ctx, "socks5h://alice:p%40ss%3Aw@h:1080", NULL);
	/* The key file was made on first need, 0600. */
	assert_int_equal(unit_mode(f->keyfile), 0600);

	assert_int_equal(pw_pool_get(&f->ctx, id, 0, &p), 0);
	assert_int_equal(p.has_creds, 1);
	assert_null(p.addr.user);
	assert_null(p.addr.pass);
	pw_proxy_release(&p);

	assert_int_equal(pw_pool_get(&f->ctx, id, 1, &p), 0);
	assert_int_equal(p.has_creds, 1);
	assert_string_equal(p.addr.user, "alice");
	assert_string_equal(p.addr.pass, "p@ss:w");
	pw_proxy_release(&p);

	s = url_of(&f->ctx, id, 1, PW_CREDS_SHOW);
	assert_string_equal(s, "socks5h://alice:p%40ss%3Aw@h:1080");
	free(s);
	s = url_of(&f->ctx, id, 1, PW_CREDS_MASK);
	assert_string_equal(s, "socks5h://***:***@h:1080");
	free(s);

	/* A new process with the same key file reads them back. */
	pw_close(&f->ctx);
	assert_int_equal(pw_open(&f->ctx, f->path, PW_OPEN_RO), 0);
	s = url_of(&f->ctx, id, 1, PW_CREDS_SHOW);
	assert_string_equal(s, "socks5h://alice:p%40ss%3Aw@h:1080");
	free(s);
}

static void
test_user_only_credentials(void **state)
{
	struct fix	*f = *state;
	int64_t		 id = add1(&f->ctx, "http://token@h:1", NULL);
	char		*s = url_of(&f->ctx, id, 1, PW_CREDS_SHOW);

	assert_string_equal(s, "http://token@h:1");
	free(s);
}

static void
test_credential_identity(void **state)
{
	static const char *const urls[] = {
		"http://h:1",			/* no user */
		"http://alice:one@h:1",		/* a user */
		"http://bob:one@h:1",		/* another user, proxy */
		"http://alice:two@h:1",		/* same user: a new password */
		"http://alice@h:1",		/* same user, no password */
		"http://Alice:one@h:1",		/* user names are exact */
	};
	struct fix	*f = *state;
	int		 res[6];
	int64_t		 ids[6];
	char		*s;

	assert_int_equal(add_urls(&f->ctx, urls, 6, &no_meta, res, ids), 0);
	assert_int_equal(res[0], PW_ADDED);
	assert_int_equal(res[1], PW_ADDED);
	assert_int_equal(res[2], PW_ADDED);
	assert_int_equal(res[3], PW_UPDATED);
	assert_int_equal(ids[3], ids[1]);
	assert_int_equal(res[4], PW_DUPLICATE);
	assert_int_equal(ids[4], ids[1]);
	assert_int_equal(res[5], PW_ADDED);
	/* The last password given is the one kept; none given keeps it. */
	s = url_of(&f->ctx, ids[1], 1, PW_CREDS_SHOW);
	assert_string_equal(s, "http://alice:two@h:1");
	free(s);
}

static void
test_credentials_with_env_key(void **state)
{
	struct fix	*f = *state;
	int64_t		 id;
	char		*s;

	pw_close(&f->ctx);
	setenv("PW_SECRET_KEY", UNIT_KEY_HEX, 1);
	assert_int_equal(pw_open(&f->ctx, f->path, PW_OPEN_RW), 0);
	id = add1(&f->ctx, "http://u:p@h:1", NULL);
	assert_false(unit_exists(f->keyfile));

	/* Another key cannot unseal: the row shows, its secrets do not. */
	pw_close(&f->ctx);
	setenv("PW_SECRET_KEY", "0102030405060708090a0b0c0d0e0f10"
	    "1112131415161718191a1b1c1d1e1f20", 1);
	assert_int_equal(pw_open(&f->ctx, f->path, PW_OPEN_RO), 0);
	s = url_of(&f->ctx, id, 1, PW_CREDS_SHOW);
	assert_string_equal(s, "http://h:1");
	free(s);

	/* Without any key: the same, not an error. */
	pw_close(&f->ctx);
	unsetenv("PW_SECRET_KEY");
	assert_int_equal(pw_open(&f->ctx, f->path, PW_OPEN_RO), 0);
	s = url_of(&f->ctx, id, 1, PW_CREDS_SHOW);
	assert_string_equal(s, "http://h:1");
	free(s);
	assert_false(unit_exists(f->keyfile));
}

static void
test_add_fails_on_bad_key(void **state)
{
	struct fix	*f = *state;
	const char	*url = "http://u:p@h:1";
	int		 res = -1;
	int64_t		 id = -1;

	pw_close(&f->ctx);
	setenv("PW_SECRET_KEY", "nothex", 1);
	assert_int_equal(pw_open(&f->ctx, f->path, PW_OPEN_RW), 0);
	assert_int_equal(add_urls(&f->ctx, &url, 1, &no_meta, &res, &id),
	    PW_EUSAGE);
	assert_string_equal(f->ctx.err.msg, "PW_SECRET_KEY: not a key (want "
	    "64 hex digits)");
	assert_int_equal(res, -1);
	assert_int_equal(id, -1);
	assert_int_equal(count(&f->ctx, NULL), 0);
}

/* -------------------------------------------------------------- resolve */

static void
check_resolve(struct pw_ctx *ctx, const char *arg, int64_t want)
{
	int64_t	id = -1;

	if (pw_pool_resolve(ctx, arg, &id) != 0)
		fail_msg("resolve '%s': %s", arg, ctx->err.msg);
	assert_int_equal(id, want);
}

static void
check_resolve_bad(struct pw_ctx *ctx, const char *arg, int code,
    const char *msg)
{
	int64_t	id = -1;

	memset(&ctx->err, 0, sizeof ctx->err);
	if (pw_pool_resolve(ctx, arg, &id) != code)
		fail_msg("resolve '%s': want %d, got %d: %s", arg, code,
		    ctx->err.code, ctx->err.msg);
	assert_string_equal(ctx->err.msg, msg);
	assert_int_equal(id, -1);
}

static void
test_resolve(void **state)
{
	struct fix	*f = *state;
	int64_t		 a, b;
	char		 buf[32];

	a = add1(&f->ctx, "http://example.com:8080", NULL);
	b = add1(&f->ctx, "socks5://u:secret@[::1]:1080", NULL);
	snprintf(buf, sizeof buf, "%lld", (long long)a);
	check_resolve(&f->ctx, buf, a);
	snprintf(buf, sizeof buf, "%lld", (long long)b);
	check_resolve(&f->ctx, buf, b);
	/* Any spelling of the URL. */
	check_resolve(&f->ctx, "http://example.com:8080", a);
	check_resolve(&f->ctx, "EXAMPLE.com:8080/", a);
	check_resolve(&f->ctx, "socks5://u:secret@[0::1]", b);
	/* The password is not part of the identity. */
	check_resolve(&f->ctx, "socks5://u@[::1]:1080", b);
	check_resolve(&f->ctx, "socks5://u:other@[::1]:1080", b);
}

static void
test_resolve_missing(void **state)
{
	struct fix	*f = *state;

	add1(&f->ctx, "http://h:1", NULL);
	add1(&f->ctx, "http://u:p@h:2", NULL);
	check_resolve_bad(&f->ctx, "99", PW_ENOTFOUND, "99: no such proxy");
	check_resolve_bad(&f->ctx, "0", PW_ENOTFOUND, "0: no such proxy");
	check_resolve_bad(&f->ctx, "99999999999999999999", PW_ENOTFOUND,
	    "99999999999999999999: no such proxy");
	check_resolve_bad(&f->ctx, "h:3", PW_ENOTFOUND, "http://h:3: no such "
	    "proxy");
	check_resolve_bad(&f->ctx, "https://h:1", PW_ENOTFOUND, "https://h:1: "
	    "no such proxy");
	/* A user not there: the message masks what was given. */
	check_resolve_bad(&f->ctx, "http://v:hunter2@h:2", PW_ENOTFOUND,
	    "http://***:***@h:2: no such proxy");
	/* Not an id and not a URL. */
	check_resolve_bad(&f->ctx, "h:0", PW_EUSAGE, "'h:0': port out of "
	    "range (1-65535)");
	check_resolve_bad(&f->ctx, "-1", PW_EUSAGE, "'-1': bad host name");
	check_resolve_bad(&f->ctx, "", PW_EUSAGE, "'': empty proxy URL");
}

/* --------------------------------------------------------------- remove */

static void
test_remove(void **state)
{
	struct fix	*f = *state;
	int64_t		 a = add1(&f->ctx, "h:1", NULL);
	int64_t		 b = add1(&f->ctx, "h:2", NULL);
	int64_t		 c = add1(&f->ctx, "h:3", NULL);
	int64_t		 ids[2] = { a, c };
	int64_t		 id = -1;

	assert_int_equal(pw_pool_remove(&f->ctx, ids, 2), 0);
	assert_int_equal(count(&f->ctx, NULL), 1);
	check_resolve(&f->ctx, "h:2", b);
	check_resolve_bad(&f->ctx, "h:1", PW_ENOTFOUND, "http://h:1: no such "
	    "proxy");
	assert_int_equal(pw_pool_get(&f->ctx, a, 0, &(struct pw_proxy){ 0 }),
	    PW_ENOTFOUND);
	/* A removed URL can be added again. */
	id = add1(&f->ctx, "h:1", NULL);
	check_resolve(&f->ctx, "h:1", id);
}

static void
test_remove_all_or_nothing(void **state)
{
	struct fix	*f = *state;
	int64_t		 a = add1(&f->ctx, "h:1", NULL);
	int64_t		 b = add1(&f->ctx, "h:2", NULL);
	int64_t		 ids[3] = { a, b + 100, b };
	char		 want[64];

	assert_int_equal(pw_pool_remove(&f->ctx, ids, 3), PW_ENOTFOUND);
	snprintf(want, sizeof want, "%lld: no such proxy",
	    (long long)(b + 100));
	assert_string_equal(f->ctx.err.msg, want);
	/* Nothing was removed, not even the one before the bad id. */
	assert_int_equal(count(&f->ctx, NULL), 2);
}

static void
test_remove_same_proxy_twice(void **state)
{
	struct fix	*f = *state;
	int64_t		 a = add1(&f->ctx, "h:1", NULL);
	int64_t		 ids[2];

	/* "pw pool rm 1 http://h:1" names one proxy twice. */
	add1(&f->ctx, "h:2", NULL);
	check_resolve(&f->ctx, "http://h:1", a);
	ids[0] = a;
	ids[1] = a;
	if (pw_pool_remove(&f->ctx, ids, 2) != 0)
		fail_msg("remove: %s", f->ctx.err.msg);
	assert_int_equal(count(&f->ctx, NULL), 1);
}

static void
test_remove_nothing(void **state)
{
	struct fix	*f = *state;

	add1(&f->ctx, "h:1", NULL);
	assert_int_equal(pw_pool_remove(&f->ctx, NULL, 0), 0);
	assert_int_equal(count(&f->ctx, NULL), 1);
}

static void
test_clear(void **state)
{
	struct fix	*f = *state;
	int64_t		 n = -1;

	add1(&f->ctx, "h:1", NULL);
	add1(&f->ctx, "h:2", NULL);
	add1(&f->ctx, "http://u:p@h:3", NULL);
	assert_int_equal(pw_pool_clear(&f->ctx, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(count(&f->ctx, NULL), 0);
	assert_int_equal(pw_pool_clear(&f->ctx, &n), 0);
	assert_int_equal(n, 0);
}

/* ------------------------------------------------------------------ get */

static void
test_get_missing(void **state)
{
	struct fix	*f = *state;
	struct pw_proxy	 p, q;

	memset(&p, 0x5a, sizeof p);
	memset(&q, 0x5a, sizeof q);
	assert_int_equal(pw_pool_get(&f->ctx, 42, 0, &p), PW_ENOTFOUND);
	assert_string_equal(f->ctx.err.msg, "42: no such proxy");
	/* Untouched. */
	assert_memory_equal(&p, &q, sizeof p);
}

/* ------------------------------------------------------------------ set */

static void
test_set(void **state)
{
	struct fix	*f = *state;
	struct pw_meta	 m1 = { "a", "FR", "Paris", 1, 0 };
	struct pw_meta	 m2 = { NULL, "DE", NULL, -1, 0 };
	struct pw_meta	 m3 = { "b", NULL, "Berlin", 0, 120 };
	struct pw_proxy	 p;
	int64_t		 id = add1(&f->ctx, "h:1", &m1);

	assert_int_equal(pw_pool_set(&f->ctx, id, &m2), 0);
	assert_int_equal(pw_pool_get(&f->ctx, id, 0, &p), 0);
	assert_string_equal(p.source, "a");
	assert_string_equal(p.country, "DE");
	assert_string_equal(p.region, "Paris");
	assert_true(p.weight == 1);
	assert_int_equal(p.expires_at, 0);
	pw_proxy_release(&p);

	assert_int_equal(pw_pool_set(&f->ctx, id, &m3), 0);
	assert_int_equal(pw_pool_get(&f->ctx, id, 0, &p), 0);
	assert_string_equal(p.source, "b");
	assert_string_equal(p.country, "DE");
	assert_string_equal(p.region, "Berlin");
	assert_true(p.weight == 0);
	assert_int_equal(p.expires_at, NOW + 120);
	assert_int_equal(p.updated_at, NOW);
	pw_proxy_release(&p);
}

static void
test_set_missing(void **state)
{
	struct fix	*f = *state;
	struct pw_meta	 m = { "a", NULL, NULL, -1, 0 };

	assert_int_equal(pw_pool_set(&f->ctx, 7, &m), PW_ENOTFOUND);
	assert_string_equal(f->ctx.err.msg, "7: no such proxy");
}

/* ----------------------------------------------------------------- each */

struct walk {
	struct pw_buf	b;
	int		stop_after;
	int		n;
};

static int
walk_fn(void *arg, const struct pw_proxy *p)
{
	struct walk	*w = arg;
	char		*s = pw_addr_format(&p->addr, PW_CREDS_SHOW);

	pw_buf_addf(&w->b, "%s%s", w->b.len ? " " : "", s);
	free(s);
	return ++w->n == w->stop_after ? 7 : 0;
}

static char *
walk(struct pw_ctx *ctx, const struct pw_filter *flt, int secrets)
{
	struct walk	w = { .stop_after = -1 };

	pw_buf_init(&w.b);
	if (pw_pool_each(ctx, flt, secrets, walk_fn, &w) != 0)
		fail_msg("each: %s", ctx->err.msg);
	return pw_buf_detach(&w.b);
}

static void
check_walk(struct pw_ctx *ctx, const struct pw_filter *flt, const char *want)
{
	char	*got = walk(ctx, flt, 0);

	if (strcmp(got, want) != 0)
		fail_msg("want '%s', got '%s'", want, got);
	free(got);
}

static void
test_each_filters(void **state)
{
	struct fix	*f = *state;
	struct pw_meta	 de = { "s1", "DE", "Berlin", -1, 0 };
	struct pw_meta	 fr = { "s2", "FR", NULL, -1, 0 };
	struct pw_filter flt;

	add1(&f->ctx, "http://a:1", &de);
	add1(&f->ctx, "socks5://b:2", &fr);
	add1(&f->ctx, "socks5://c:3", &de);
	add1(&f->ctx, "https://d:4", NULL);

	check_walk(&f->ctx, NULL, "http://a:1 socks5://b:2 socks5://c:3 "
	    "https://d:4");
	pw_filter_init(&flt);
	check_walk(&f->ctx, &flt, "http://a:1 socks5://b:2 socks5://c:3 "
	    "https://d:4");
	flt.scheme = PW_SOCKS5;
	check_walk(&f->ctx, &flt, "socks5://b:2 socks5://c:3");
	flt.country = "DE";
	check_walk(&f->ctx, &flt, "socks5://c:3");
	flt.country = "IT";
	check_walk(&f->ctx, &flt, "");
	pw_filter_init(&flt);
	flt.source = "s1";
	check_walk(&f->ctx, &flt, "http://a:1 socks5://c:3");
	pw_filter_init(&flt);
	flt.region = "Berlin";
	check_walk(&f->ctx, &flt, "http://a:1 socks5://c:3");
	pw_filter_init(&flt);
	flt.status = PW_UNKNOWN;
	check_walk(&f->ctx, &flt, "http://a:1 socks5://b:2 socks5://c:3 "
	    "https://d:4");
	flt.status = PW_HEALTHY;
	check_walk(&f->ctx, &flt, "");
}

static void
test_each_secrets(void **state)
{
	struct fix	*f = *state;
	char		*s;

	add1(&f->ctx, "http://u:p%2F@a:1", NULL);
	add1(&f->ctx, "b:2", NULL);
	s = walk(&f->ctx, NULL, 0);
	assert_string_equal(s, "http://a:1 http://b:2");
	free(s);
	s = walk(&f->ctx, NULL, 1);
	assert_string_equal(s, "http://u:p%2F@a:1 http://b:2");
	free(s);
}

static void
test_each_stops(void **state)
{
	struct fix	*f = *state;
	struct walk	 w = { .stop_after = 2 };

	add1(&f->ctx, "a:1", NULL);
	add1(&f->ctx, "b:1", NULL);
	add1(&f->ctx, "c:1", NULL);
	pw_buf_init(&w.b);
	assert_int_equal(pw_pool_each(&f->ctx, NULL, 0, walk_fn, &w), 7);
	assert_string_equal(w.b.data, "http://a:1 http://b:1");
	pw_buf_release(&w.b);
}

static void
test_read_only_missing_state(void **state)
{
	struct fix	*f = *state;
	char		*other = unit_path(f->dir, "none/state.db");
	struct pw_ctx	 ctx = { 0 };
	int64_t		 id = -1;

	assert_int_equal(pw_open(&ctx, other, PW_OPEN_RO), 0);
	assert_int_equal(count(&ctx, NULL), 0);
	check_resolve_bad(&ctx, "h:1", PW_ENOTFOUND, "http://h:1: no such "
	    "proxy");
	assert_int_equal(pw_pool_resolve(&ctx, "1", &id), PW_ENOTFOUND);
	pw_close(&ctx);
	assert_false(unit_exists(other));
	free(other);
}

/* ------------------------------------------------------ country, status */

static void
test_country_check(void **state)
{
	static const char *const good[][2] = {
		{ "DE", "DE" }, { "de", "DE" }, { "Us", "US" }, { "gb", "GB" },
		{ "AX", "AX" }, { "zw", "ZW" },
	};
	static const char *const bad[] = {
		"", "D", "DEU", "XX", "UK", "EU", "1A", "D1", " DE", "D ",
		"\xc3\x84", "ZZ",
	};
	struct pw_err	err;
	char		cc[3], want[64];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		memset(cc, 0, sizeof cc);
		assert_int_equal(pw_country_check(good[i][0], cc, NULL), 0);
		assert_string_equal(cc, good[i][1]);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memcpy(cc, "--", 3);
		memset(&err, 0, sizeof err);
		if (pw_country_check(bad[i], cc, &err) != PW_EUSAGE)
			fail_msg("'%s': accepted", bad[i]);
		snprintf(want, sizeof want, "'%s': not an ISO 3166-1 alpha-2 "
		    "country code", bad[i]);
		assert_string_equal(err.msg, want);
		assert_string_equal(cc, "--");
	}
	assert_int_equal(pw_country_check(NULL, cc, &err), PW_EUSAGE);
	assert_string_equal(err.msg, "'': not an ISO 3166-1 alpha-2 country "
	    "code");
}

static void
test_status_names(void **state)
{
	static const char *const names[] = {
		"unknown", "healthy", "degraded", "unhealthy", "pending",
	};
	int	s;

	assert_int_equal(PW_STATUS_COUNT, 5);
	for (int i = 0; i < PW_STATUS_COUNT; i++) {
		assert_string_equal(pw_status_name(i), names[i]);
		s = -1;
		assert_int_equal(pw_status_parse(names[i], &s), 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(pw_status_parse("HEALTHY", &s), 0);
	assert_int_equal(s, PW_HEALTHY);
	s = -1;
	assert_int_equal(pw_status_parse("ok", &s), PW_EUSAGE);
	assert_int_equal(pw_status_parse("", &s), PW_EUSAGE);
	assert_int_equal(pw_status_parse(NULL, &s), PW_EUSAGE);
	assert_int_equal(s, -1);
	assert_string_equal(pw_status_name(-1), "?");
	assert_string_equal(pw_status_name(PW_STATUS_COUNT), "?");
}

static void
test_filter_init(void **state)
{
	struct pw_filter	flt;

	memset(&flt, 0x5a, sizeof flt);
	pw_filter_init(&flt);
	assert_int_equal(flt.status, -1);
	assert_int_equal(flt.scheme, -1);
	assert_null(flt.source);
	assert_null(flt.country);
	assert_null(flt.region);
	assert_null(flt.anonymity);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_add_and_get),
		T(test_add_without_meta),
		T(test_add_batch),
		T(test_add_duplicates),
		T(test_duplicate_keeps_first_metadata),
		T(test_add_with_credentials),
		T(test_user_only_credentials),
		T(test_credential_identity),
		T(test_credentials_with_env_key),
		T(test_add_fails_on_bad_key),
		T(test_resolve),
		T(test_resolve_missing),
		T(test_remove),
		T(test_remove_all_or_nothing),
		T(test_remove_same_proxy_twice),
		T(test_remove_nothing),
		T(test_clear),
		T(test_get_missing),
		T(test_set),
		T(test_set_missing),
		T(test_each_filters),
		T(test_each_secrets),
		T(test_each_stops),
		T(test_read_only_missing_state),
		T(test_country_check),
		T(test_status_names),
		T(test_filter_init),
#undef T
	};

	/* Pin the clock (read once per process) before any test runs. */
	setenv("PW_NOW", "1700000000", 1);
	(void)pw_now();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
