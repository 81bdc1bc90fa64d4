/*
 * pool.c -- the proxy pool: opening the context, adding, resolving,
 * removing, listing and describing proxies.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const status_names[PW_STATUS_COUNT] = {
	[PW_UNKNOWN] = "unknown",
	[PW_HEALTHY] = "healthy",
	[PW_DEGRADED] = "degraded",
	[PW_UNHEALTHY] = "unhealthy",
};

/* ISO 3166-1 alpha-2, officially assigned codes. */
static const char iso3166[] =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH "
    "BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL "
    "CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET "
    "FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU "
    "GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE "
    "KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC "
    "MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC "
    "NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT "
    "PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR "
    "SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA "
    "UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

const char *
pw_status_name(int s)
{
	return s >= 0 && s < PW_STATUS_COUNT ? status_names[s] : "?";
}

int
pw_status_parse(const char *s, int *out)
{
	if (s == NULL)
		return PW_EUSAGE;
	for (int i = 0; i < PW_STATUS_COUNT; i++) {
		if (strcasecmp(s, status_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return PW_EUSAGE;
}

int
pw_country_check(const char *cc, char canon[3], struct pw_err *err)
{
	char	up[3];

	if (cc == NULL || strlen(cc) != 2 || !isalpha((unsigned char)cc[0]) ||
	    !isalpha((unsigned char)cc[1]))
		goto bad;
	up[0] = toupper((unsigned char)cc[0]);
	up[1] = toupper((unsigned char)cc[1]);
	up[2] = '\0';
	for (const char *p = iso3166; *p; p += 3) {
		if (p[0] == up[0] && p[1] == up[1]) {
			memcpy(canon, up, 3);
			return 0;
		}
	}
bad:
	return pw_failf(err, PW_EUSAGE, "'%s': not an ISO 3166-1 alpha-2 "
	    "country code", cc ? cc : "");
}

void
pw_filter_init(struct pw_filter *f)
{
	memset(f, 0, sizeof *f);
	f->status = -1;
	f->scheme = -1;
}

void
pw_proxy_release(struct pw_proxy *p)
{
	pw_addr_release(&p->addr);
	free(p->source);
	free(p->country);
	free(p->region);
	free(p->anonymity);
	memset(p, 0, sizeof *p);
}

int
pw_open(struct pw_ctx *ctx, const char *path, int mode)
{
	int	r;

	if (ctx->cfg == NULL) {
		ctx->cfg = pw_config_new();
		if ((r = pw_config_load_env(ctx->cfg, &ctx->err)) != 0)
			return r;
	}
	if (mode == PW_OPEN_NONE)
		return 0;
	if ((r = pw_store_open(path, mode, &ctx->store, &ctx->err)) != 0)
		return r;
	return pw_config_load_state(ctx);
}

void
pw_close(struct pw_ctx *ctx)
{
	pw_store_close(ctx->store);
	pw_crypto_key_free(ctx->key);
	pw_config_free(ctx->cfg);
	ctx->store = NULL;
	ctx->key = NULL;
	ctx->cfg = NULL;
}

int
pw_ctx_key(struct pw_ctx *ctx, int create)
{
	char	*file;
	int	 r;

	if (ctx->key != NULL)
		return 0;
	file = pw_config_key_path();
	r = pw_crypto_key_load(pw_config_secret_hex(), file, create, &ctx->key,
	    &ctx->err);
	free(file);
	return r;
}

/*
 * A proxy's identity: scheme, host and port, plus a keyed tag of the user
 * name when there is one (the same gateway with two accounts is two
 * proxies), so the user name is not stored in clear.
 */
static char *
identity(struct pw_ctx *ctx, const struct pw_addr *a, const char *url)
{
	char	tag[33];

	if (a->user == NULL)
		return pw_xstrdup(url);
	pw_crypto_tag(ctx->key, a->user, tag);
	return pw_xasprintf("%s://%s@%s", pw_scheme_name(a->scheme), tag,
	    url + strlen(pw_scheme_name(a->scheme)) + 3);
}

int
pw_pool_add(struct pw_ctx *ctx, const struct pw_addr *addrs, size_t n,
    const struct pw_meta *meta, int *result, int64_t *id)
{
	struct pw_row	 row;
	int64_t		 now = pw_now();
	int		 r = 0, dup;
	size_t		 i;

	for (i = 0; i < n; i++) {
		if (addrs[i].user != NULL) {
			if ((r = pw_ctx_key(ctx, 1)) != 0)
				return r;
			break;
		}
	}
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		const struct pw_addr *a = &addrs[i];
		unsigned char *su = NULL, *sp = NULL;
		size_t sul = 0, spl = 0;
		char *url, *key;

		memset(&row, 0, sizeof row);
		row.p.addr = *a;
		row.p.source = (char *)meta->source;
		row.p.country = (char *)meta->country;
		row.p.region = (char *)meta->region;
		row.p.weight = meta->weight;
		row.p.added_at = now;
		row.p.expires_at = meta->ttl > 0 ? now + meta->ttl : 0;
		url = pw_addr_format(a, PW_CREDS_NONE);
		key = identity(ctx, a, url);
		row.url = url;
		row.key = key;
		if (a->user != NULL) {
			pw_crypto_seal(ctx->key, a->user, strlen(a->user), &su,
			    &sul, &ctx->err);
			row.user = su;
			row.user_len = sul;
		}
		if (a->pass != NULL) {
			pw_crypto_seal(ctx->key, a->pass, strlen(a->pass), &sp,
			    &spl, &ctx->err);
			row.pass = sp;
			row.pass_len = spl;
		}
		r = pw_store_proxy_insert(ctx->store, &row, &id[i], &dup,
		    &ctx->err);
		free(su);
		free(sp);
		free(url);
		free(key);
		if (r != 0) {
			pw_store_rollback(ctx->store);
			return r;
		}
		result[i] = dup ? PW_DUPLICATE : PW_ADDED;
	}
	return pw_store_commit(ctx->store, &ctx->err);
}

static int
all_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

int
pw_pool_resolve(struct pw_ctx *ctx, const char *arg, int64_t *id)
{
	struct pw_addr	 a;
	char		*url, *key;
	int64_t		 v;
	int		 r;

	if (all_digits(arg)) {
		if (pw_parse_int(arg, 1, INT64_MAX, &v) != 0 ||
		    (r = pw_store_proxy_exists(ctx->store, v, &ctx->err)) ==
		    PW_ENOTFOUND)
			return pw_failf(&ctx->err, PW_ENOTFOUND, "%s: no such "
			    "proxy", arg);
		if (r == 0)
			*id = v;
		return r;
	}
	if ((r = pw_addr_parse(arg, &a, &ctx->err)) != 0)
		return r;
	if (a.user != NULL && (r = pw_ctx_key(ctx, 0)) != 0) {
		pw_addr_release(&a);
		return r;
	}
	url = pw_addr_format(&a, PW_CREDS_NONE);
	key = identity(ctx, &a, url);
	r = pw_store_proxy_find(ctx->store, key, &v, &ctx->err);
	if (r == PW_ENOTFOUND) {
		char *shown = pw_addr_format(&a, PW_CREDS_MASK);
		pw_failf(&ctx->err, r, "%s: no such proxy", shown);
		free(shown);
	} else if (r == 0)
		*id = v;
	free(url);
	free(key);
	pw_addr_release(&a);
	return r;
}

int
pw_pool_remove(struct pw_ctx *ctx, const int64_t *ids, size_t n)
{
	int	r;

	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		r = pw_store_proxy_exists(ctx->store, ids[i], &ctx->err);
		if (r == PW_ENOTFOUND)
			pw_failf(&ctx->err, r, "%lld: no such proxy",
			    (long long)ids[i]);
		if (r == 0)
			r = pw_store_proxy_delete(ctx->store, ids[i],
			    &ctx->err);
		if (r != 0) {
			pw_store_rollback(ctx->store);
			return r;
		}
	}
	return pw_store_commit(ctx->store, &ctx->err);
}

int
pw_pool_clear(struct pw_ctx *ctx, int64_t *removed)
{
	int64_t	n = 0;
	int	r;

	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	if ((r = pw_store_proxy_clear(ctx->store, &n, &ctx->err)) != 0) {
		pw_store_rollback(ctx->store);
		return r;
	}
	if ((r = pw_store_commit(ctx->store, &ctx->err)) == 0)
		*removed = n;
	return r;
}

int
pw_pool_set(struct pw_ctx *ctx, int64_t id, const struct pw_meta *m)
{
	int	r;

	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	r = pw_store_proxy_update_meta(ctx->store, id, m, pw_now(),
	    &ctx->err);
	if (r == PW_ENOTFOUND)
		pw_failf(&ctx->err, r, "%lld: no such proxy", (long long)id);
	if (r != 0) {
		pw_store_rollback(ctx->store);
		return r;
	}
	return pw_store_commit(ctx->store, &ctx->err);
}

struct each_arg {
	struct pw_ctx	*ctx;
	int		 secrets;
	pw_proxy_fn	*fn;
	void		*arg;
};

/*
 * Hand the row on as a proxy; unseal credentials only when asked. A row
 * that cannot be unsealed is reported, not fatal.
 */
static int
each_row(void *arg, const struct pw_row *r)
{
	struct each_arg	*ea = arg;
	struct pw_proxy	 p = r->p;
	char		*user = NULL, *pass = NULL;
	int		 rc;

	if (ea->secrets && r->user != NULL) {
		if (pw_crypto_unseal(ea->ctx->key, r->user, r->user_len, &user,
		    &ea->ctx->err) != 0 || (r->pass != NULL &&
		    pw_crypto_unseal(ea->ctx->key, r->pass, r->pass_len, &pass,
		    &ea->ctx->err) != 0)) {
			pw_log(PW_LOG_WARN, "proxy %lld: %s", (long long)p.id,
			    ea->ctx->err.msg);
			pw_secret_free(user);
			user = NULL;
		}
		p.addr.user = user;
		p.addr.pass = pass;
	}
	rc = ea->fn(ea->arg, &p);
	pw_secret_free(user);
	pw_secret_free(pass);
	return rc;
}

int
pw_pool_each(struct pw_ctx *ctx, const struct pw_filter *f, int secrets,
    pw_proxy_fn *fn, void *arg)
{
	struct each_arg	ea = { ctx, secrets, fn, arg };
	int		r;

	if (secrets && (r = pw_ctx_key(ctx, 0)) != 0) {
		/* With no key there can be no sealed rows to show. */
		if (r != PW_ESTATE)
			return r;
		ea.secrets = 0;
	}
	return pw_store_proxy_each(ctx->store, f, 0, each_row, &ea,
	    &ctx->err);
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? pw_xstrdup(s) : NULL;
}

struct get_arg {
	struct pw_proxy	*out;
};

static int
get_one(void *arg, const struct pw_proxy *p)
{
	struct get_arg	*ga = arg;
	struct pw_proxy	*o = ga->out;

	*o = *p;
	o->addr.host = pw_xstrdup(p->addr.host);
	o->addr.user = dup_or_null(p->addr.user);
	o->addr.pass = dup_or_null(p->addr.pass);
	o->source = dup_or_null(p->source);
	o->country = dup_or_null(p->country);
	o->region = dup_or_null(p->region);
	o->anonymity = dup_or_null(p->anonymity);
	return 0;
}

int
pw_pool_get(struct pw_ctx *ctx, int64_t id, int secrets, struct pw_proxy *p)
{
	struct pw_proxy	 tmp;
	struct get_arg	 ga = { &tmp };
	struct each_arg	 ea = { ctx, secrets, get_one, &ga };
	int		 r;

	if (secrets && (r = pw_ctx_key(ctx, 0)) != 0) {
		if (r != PW_ESTATE)
			return r;
		ea.secrets = 0;
	}
	r = pw_store_proxy_each(ctx->store, NULL, id, each_row, &ea,
	    &ctx->err);
	if (r == PW_ENOTFOUND)
		return pw_failf(&ctx->err, r, "%lld: no such proxy",
		    (long long)id);
	if (r == 0)
		*p = tmp;
	return r;
}
