/*
 * auth.c -- the API keys of pw serve: made, listed, revoked and checked.
 *
 * A key is shown once, when it is made; the state file keeps only its
 * hash (pw_crypto_apikey_hash), its name and its tier. A request's key
 * is hashed and looked up by that hash in the state file on every
 * request, on the worker's own connection: one indexed read, so a key
 * removed by another process stops working at the next request.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* 1 to max characters, each a lower-case letter, a digit or in extra. */
static int
word_ok(const char *s, size_t max, const char *extra)
{
	size_t	n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		    strchr(extra, *c) != NULL))
			return 0;
	return 1;
}

int
pw_apikey_name_check(const char *name, struct pw_err *err)
{
	if (word_ok(name, PW_APIKEY_NAME_MAX, "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_."))
		return 0;
	return pw_failf(err, PW_EUSAGE, "'%.80s': not a key name (want 1 to "
	    "%d letters, digits, '-', '_' or '.')", name, PW_APIKEY_NAME_MAX);
}

int
pw_apikey_tier_check(const char *tier, struct pw_err *err)
{
	if (word_ok(tier, PW_APIKEY_TIER_MAX, "-_"))
		return 0;
	return pw_failf(err, PW_EUSAGE, "'%.80s': not a tier (want 1 to %d "
	    "lower-case letters, digits, '-' or '_')", tier,
	    PW_APIKEY_TIER_MAX);
}

int
pw_apikey_add(struct pw_ctx *ctx, const char *name, const char *tier,
    char **key)
{
	unsigned char	hash[PW_APIKEY_HASH_BYTES];
	char		k[PW_APIKEY_LEN + 1];
	int		r;

	if (tier == NULL)
		tier = PW_APIKEY_TIER_DEFAULT;
	if ((r = pw_apikey_name_check(name, &ctx->err)) != 0 ||
	    (r = pw_apikey_tier_check(tier, &ctx->err)) != 0)
		return r;
	if ((r = pw_crypto_apikey_new(k, &ctx->err)) != 0 ||
	    (r = pw_crypto_apikey_hash(k, strlen(k), hash, &ctx->err)) != 0)
		goto out;
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		goto out;
	r = pw_store_key_add(ctx->store, name, tier, hash, sizeof hash,
	    pw_now(), &ctx->err);
	if (r == PW_EEXIST)
		pw_failf(&ctx->err, r, "'%s': a key of that name exists "
		    "(remove it first)", name);
	if (r != 0) {
		pw_store_rollback(ctx->store);
		goto out;
	}
	if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0)
		goto out;
	*key = pw_xstrdup(k);
out:
	pw_crypto_wipe(k, sizeof k);
	return r;
}

static int
named(void *arg, const struct pw_store_key *k)
{
	return strcmp(k->name, arg) == 0 ? 1 : 0;
}

int
pw_apikey_remove(struct pw_ctx *ctx, const char *name)
{
	int	r;

	/* Look before the transaction, which would make a missing file. */
	r = pw_store_key_each(ctx->store, named, (void *)name, &ctx->err);
	if (r < 0)
		return r;
	if (r == 0)
		return pw_failf(&ctx->err, PW_ENOTFOUND, "'%.80s': no such "
		    "key", name);
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	r = pw_store_key_delete(ctx->store, name, &ctx->err);
	if (r == PW_ENOTFOUND)
		pw_failf(&ctx->err, r, "'%.80s': no such key", name);
	if (r != 0) {
		pw_store_rollback(ctx->store);
		return r;
	}
	return pw_store_commit(ctx->store, &ctx->err);
}

static void
key_copy(const struct pw_store_key *s, struct pw_apikey *k)
{
	memset(k, 0, sizeof *k);
	k->id = s->id;
	snprintf(k->name, sizeof k->name, "%s", s->name);
	snprintf(k->tier, sizeof k->tier, "%s", s->tier);
	k->created_at = s->created_at;
	k->last_used = s->last_used;
}

struct each {
	pw_apikey_fn	*fn;
	void		*arg;
};

static int
each_one(void *arg, const struct pw_store_key *s)
{
	struct each	*e = arg;
	struct pw_apikey k;

	key_copy(s, &k);
	return e->fn(e->arg, &k);
}

int
pw_apikey_each(struct pw_ctx *ctx, pw_apikey_fn *fn, void *arg)
{
	struct each	e = { fn, arg };

	return pw_store_key_each(ctx->store, each_one, &e, &ctx->err);
}

int
pw_apikey_any(struct pw_ctx *ctx, int *any)
{
	return pw_store_key_any(ctx->store, any, &ctx->err);
}

struct found {
	const unsigned char	*hash;
	struct pw_apikey	*out;
	int			 match;
};

static int
found_one(void *arg, const struct pw_store_key *s)
{
	struct found	*f = arg;

	/*
	 * The row was found by its hash, so this is equal; compared again
	 * in constant time all the same, so that no code path compares a
	 * key (or its hash) with memcmp.
	 */
	f->match = s->hash_len == PW_APIKEY_HASH_BYTES &&
	    pw_crypto_equal(s->hash, f->hash, PW_APIKEY_HASH_BYTES);
	if (f->match)
		key_copy(s, f->out);
	return 0;
}

int
pw_apikey_check(struct pw_ctx *ctx, const char *key, size_t len,
    struct pw_apikey *out)
{
	unsigned char	hash[PW_APIKEY_HASH_BYTES];
	struct found	f;
	int		r;

	/* Not one of ours: no need to hash what cannot match. */
	if (len != PW_APIKEY_LEN || strncmp(key, "pw_", 3) != 0)
		return pw_failf(&ctx->err, PW_ENOTFOUND, "not a valid API "
		    "key");
	if ((r = pw_crypto_apikey_hash(key, len, hash, &ctx->err)) != 0)
		return r;
	memset(&f, 0, sizeof f);
	f.hash = hash;
	f.out = out;
	r = pw_store_key_find(ctx->store, hash, sizeof hash, found_one, &f,
	    &ctx->err);
	if (r == 0 && !f.match)
		r = PW_ENOTFOUND;
	if (r == PW_ENOTFOUND)
		return pw_failf(&ctx->err, r, "not a valid API key");
	if (r != 0)
		return r;
	if (out->last_used < pw_now() - 60)
		(void)pw_store_key_used(ctx->store, out->id, pw_now(),
		    &ctx->err);
	return 0;
}
