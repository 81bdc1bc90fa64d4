/*
 * pool.c -- the proxy pool: opening the context, adding, resolving,
 * removing, listing and describing proxies.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ratelimit.h"

static const char *const status_names[PW_STATUS_COUNT] = {
	[PW_UNKNOWN] = "unknown",
	[PW_HEALTHY] = "healthy",
	[PW_DEGRADED] = "degraded",
	[PW_UNHEALTHY] = "unhealthy",
	[PW_PENDING] = "pending",
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
	/* Two letters and a space each, but none after the last. */
	for (const char *p = iso3166; *p; p += p[2] != '\0' ? 3 : 2) {
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
	if ((r = pw_store_open(path, mode == PW_OPEN_RW ? PW_OPEN_DEFER : mode,
	    &ctx->store, &ctx->err)) != 0)
		return r;
	return pw_config_load_state(ctx);
}

void
pw_close(struct pw_ctx *ctx)
{
	pw_fetch_release(ctx);
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
 * proxies), so the user name is not stored in clear. Without a user it is
 * the URL itself: the caller shares that string. The tag comes last, so
 * that the unique index keeps a list's proxies in the order of their
 * addresses, with or without a user: a tag first scattered each row with
 * one over the whole index, and a large warm paid a page for each.
 */
static char *
identity(struct pw_ctx *ctx, const struct pw_addr *a, char *url)
{
	char	tag[33];

	if (a->user == NULL)
		return url;
	pw_crypto_tag(ctx->key, a->user, tag);
	return pw_xasprintf("%s#%s", url, tag);
}

void
pw_pool_row(struct pw_ctx *ctx, const struct pw_addr *a,
    const struct pw_proxy *meta, struct pw_row *row)
{
	unsigned char	*su = NULL, *sp = NULL;
	size_t		 sul = 0, spl = 0;
	char		*url;

	memset(row, 0, sizeof *row);
	row->p = *meta;
	row->p.addr = *a;
	url = pw_addr_format(a, PW_CREDS_NONE);
	row->key = identity(ctx, a, url);
	row->url = url;
	if (a->user != NULL) {
		pw_crypto_seal(ctx->key, a->user, strlen(a->user), &su, &sul,
		    &ctx->err);
		row->user = su;
		row->user_len = sul;
	}
	if (a->pass != NULL) {
		pw_crypto_seal(ctx->key, a->pass, strlen(a->pass), &sp, &spl,
		    &ctx->err);
		row->pass = sp;
		row->pass_len = spl;
	}
}

void
pw_pool_row_release(struct pw_row *row)
{
	if (row->key != row->url)
		free((char *)row->key);
	free((char *)row->url);
	free((unsigned char *)row->user);
	free((unsigned char *)row->pass);
	memset(row, 0, sizeof *row);
}

/* 1 when the stored password of proxy id is not pass. */
static int
pass_changed(struct pw_ctx *ctx, int64_t id, const char *pass)
{
	unsigned char	*blob;
	size_t		 len;
	char		*old = NULL;
	int		 r;

	if ((r = pw_store_proxy_pass(ctx->store, id, &blob, &len,
	    &ctx->err)) != 0)
		return r;
	if (blob == NULL)
		r = 1;
	else if (pw_crypto_unseal(ctx->key, blob, len, &old, &ctx->err) != 0)
		r = 1;		/* sealed with another key: replace it */
	else
		r = strcmp(old, pass) != 0;
	free(blob);
	pw_secret_free(old);
	return r;
}

int
pw_pool_pass_update(struct pw_ctx *ctx, int64_t id, const struct pw_addr *a,
    int64_t now)
{
	unsigned char	*sp = NULL;
	size_t		 spl = 0;
	int		 r;

	if (a->pass == NULL)
		return 0;
	if ((r = pass_changed(ctx, id, a->pass)) <= 0)
		return r;
	if ((r = pw_crypto_seal(ctx->key, a->pass, strlen(a->pass), &sp,
	    &spl, &ctx->err)) != 0)
		return r;
	r = pw_store_proxy_set_pass(ctx->store, id, sp, spl, now, &ctx->err);
	free(sp);
	return r == 0 ? 1 : r;
}

/* Rows handed to the store at once by pw_pool_add. */
#define ADD_CHUNK	256

int
pw_pool_add(struct pw_ctx *ctx, const struct pw_addr *addrs, size_t n,
    const struct pw_meta *meta, int *result, int64_t *id)
{
	struct pw_proxy	 m;
	int64_t		 now = pw_now(), top;
	int		 r = 0;
	size_t		 i, k;

	for (i = 0; i < n; i++) {
		if (addrs[i].user != NULL) {
			if ((r = pw_ctx_key(ctx, 1)) != 0)
				return r;
			break;
		}
	}
	memset(&m, 0, sizeof m);
	m.source = (char *)meta->source;
	m.country = (char *)meta->country;
	m.region = (char *)meta->region;
	m.weight = meta->weight;
	m.added_at = now;
	m.expires_at = meta->ttl > 0 ? now + meta->ttl : 0;
	/*
	 * Rows go in by the chunk, many to a statement. A new proxy gets an
	 * id above every id before it (AUTOINCREMENT); one that gets an id
	 * already seen was in the pool, or earlier in this batch.
	 */
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	if ((r = pw_store_max_id(ctx->store, &top, &ctx->err)) != 0)
		goto fail;
	for (i = 0; i < n; i += k) {
		struct pw_row rows[ADD_CHUNK];

		k = n - i < ADD_CHUNK ? n - i : ADD_CHUNK;
		for (size_t j = 0; j < k; j++)
			pw_pool_row(ctx, &addrs[i + j], &m, &rows[j]);
		r = pw_store_proxy_insert_many(ctx->store, rows, k, &id[i],
		    &ctx->err);
		for (size_t j = 0; j < k; j++)
			pw_pool_row_release(&rows[j]);
		if (r != 0)
			goto fail;
		for (size_t j = i; j < i + k; j++) {
			if (id[j] > top) {
				top = id[j];
				result[j] = PW_ADDED;
				continue;
			}
			result[j] = PW_DUPLICATE;
			/* The same account with a new password: keep it. */
			if ((r = pw_pool_pass_update(ctx, id[j], &addrs[j],
			    now)) < 0)
				goto fail;
			if (r > 0)
				result[j] = PW_UPDATED;
		}
	}
	return pw_store_commit(ctx->store, &ctx->err);
fail:
	pw_store_rollback(ctx->store);
	return r;
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
	if (key != url)
		free(key);
	free(url);
	pw_addr_release(&a);
	return r;
}

int
pw_pool_remove(struct pw_ctx *ctx, const int64_t *ids, size_t n)
{
	int	r;

	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	/* All must exist before any goes: one proxy may be named twice. */
	for (size_t i = 0; i < n && r == 0; i++) {
		r = pw_store_proxy_exists(ctx->store, ids[i], &ctx->err);
		if (r == PW_ENOTFOUND)
			pw_failf(&ctx->err, r, "%lld: no such proxy",
			    (long long)ids[i]);
	}
	for (size_t i = 0; i < n && r == 0; i++)
		r = pw_store_proxy_delete(ctx->store, ids[i], &ctx->err);
	if (r == 0)
		r = pw_store_stat_add(ctx->store,
		    pw_evict_stat(PW_EVICT_MANUAL), (int64_t)n, &ctx->err);
	if (r != 0) {
		pw_store_rollback(ctx->store);
		return r;
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
	if ((r = pw_store_proxy_clear(ctx->store, &n, &ctx->err)) != 0 ||
	    (r = pw_store_stat_add(ctx->store, pw_evict_stat(PW_EVICT_MANUAL),
	    n, &ctx->err)) != 0) {
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

	/* pw serve: counters not yet written are in its view. */
	if (ea->ctx->view != NULL)
		pw_view_overlay(ea->ctx->view, &p);
	if (ea->secrets && r->user != NULL) {
		/*
		 * The key is loaded at the first sealed row, not before: most
		 * commands never meet one, and need not pay for libsodium.
		 * No key file: the row is reported (ctx->err says why).
		 */
		if (ea->ctx->key == NULL &&
		    (rc = pw_ctx_key(ea->ctx, 0)) != 0 && rc != PW_ESTATE)
			return rc;
		if (ea->ctx->key == NULL ||
		    pw_crypto_unseal(ea->ctx->key, r->user, r->user_len,
		    &user, &ea->ctx->err) != 0 || (r->pass != NULL &&
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

	/* Asked for: a bad or missing key is said at once, not per row. */
	if (secrets && (r = pw_ctx_key(ctx, 0)) != 0 && r != PW_ESTATE)
		return r;
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

	if (secrets && (r = pw_ctx_key(ctx, 0)) != 0 && r != PW_ESTATE)
		return r;
	r = pw_store_proxy_each(ctx->store, NULL, id, each_row, &ea,
	    &ctx->err);
	if (r == PW_ENOTFOUND)
		return pw_failf(&ctx->err, r, "%lld: no such proxy",
		    (long long)id);
	if (r == 0)
		*p = tmp;
	return r;
}

/* ------------------------------------------------------------ selection */

/* Resolve a strategy name: built-ins, then plugins in strategy.plugins. */
static int
find_strategy(struct pw_ctx *ctx, const char *name,
    const struct pw_strategy **out)
{
	const struct pw_strategy	*s;
	const char			*list, *p, *e;
	char				*path;
	int				 r;

	if ((*out = pw_strategy_builtin(name)) != NULL)
		return 0;
	list = pw_config_get(ctx, "strategy.plugins", NULL);
	for (p = list; p != NULL && *p != '\0'; p = *e ? e + 1 : e) {
		e = strchr(p, ':');
		if (e == NULL)
			e = p + strlen(p);
		if (e == p)
			continue;
		path = pw_xstrndup(p, e - p);
		r = pw_strategy_load(path, &s, &ctx->err);
		free(path);
		if (r != 0)
			return pw_err_prefix(&ctx->err, "strategy.plugins");
		if (strcmp(s->name, name) == 0) {
			*out = s;
			return 0;
		}
	}
	return pw_failf(&ctx->err, PW_EUSAGE, "'%s': unknown strategy (want "
	    "one of: %s, or a plugin's name)", name, pw_strategy_names());
}

int
pw_pool_strategy_check(struct pw_ctx *ctx, const char *name)
{
	const struct pw_strategy	*s;

	if (strcmp(name, "sticky") == 0 || strcmp(name, "geo") == 0)
		return 0;
	return find_strategy(ctx, name, &s);
}

char *
pw_pool_cursor_name(const struct pw_strategy *s, const struct pw_filter *f)
{
	char	*region = pw_xstrdup(f->region ? f->region : ""), *name;

	/* A region in any case is one selection: one cursor. */
	for (char *c = region; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	name = pw_xasprintf("cursor:%s|%s|%s|%s|%s|%d|%d|%g|%d", s->name,
	    f->country ? f->country : "", region, f->source ? f->source : "",
	    f->anonymity ? f->anonymity : "", f->scheme, f->status,
	    f->max_latency_ms, f->unmeasured);
	free(region);
	return name;
}

void
pw_pool_explain(struct pw_ctx *ctx, const struct pw_sel *sel,
    const int64_t c[6])
{
	const struct pw_filter	*f = sel->f;
	struct pw_buf		 b;
	int			 filtered;

	filtered = f->country || f->region || f->source || f->anonymity ||
	    f->scheme >= 0 || f->status >= 0 || f->max_latency_ms > 0;
	pw_buf_init(&b);
	pw_buf_addf(&b, "%lld in pool", (long long)c[0]);
	if (filtered)
		pw_buf_addf(&b, ", %lld matching", (long long)c[4]);
	pw_buf_addf(&b, ", %lld unhealthy, %lld cooling down, %lld expired",
	    (long long)c[1], (long long)c[2], (long long)c[3]);
	if (c[5] > 0)
		pw_buf_addf(&b, ", %lld pending validation", (long long)c[5]);
	if (sel->nex > 0)
		pw_buf_addf(&b, ", %zu excluded", sel->nex);
	pw_failf(&ctx->err, PW_ENOPROXY, "no eligible proxy: %s", b.data);
	pw_buf_release(&b);
}

static int
no_eligible(struct pw_ctx *ctx, const struct pw_sel *sel)
{
	int64_t	c[6];
	int	r;

	if ((r = pw_store_ineligible(ctx->store, sel->f, sel->now, c,
	    &ctx->err)) != 0)
		return r;
	pw_pool_explain(ctx, sel, c);
	return PW_ENOPROXY;
}

void
pw_pool_env_init(struct pw_ctx *ctx, struct pw_pick_env *env)
{
	if (!ctx->rng_seeded) {
		pw_rng_seed(&ctx->rng, 0);
		ctx->rng_seeded = 1;
	}
	memset(env, 0, sizeof *env);
	env->random = pw_rng_next;
	env->rng = &ctx->rng;
}

/*
 * Any strategy, over every eligible candidate: plugins, and the
 * built-ins when sampling gave up. Keeps the strategy's cursor.
 */
static int
choose_scan(struct pw_ctx *ctx, const struct pw_strategy *s,
    const struct pw_strategy *fallback, const struct pw_sel *sel,
    int64_t *id)
{
	struct pw_candidate	*c = NULL;
	struct pw_pick_env	 env;
	size_t			 n = 0;
	char			*cname;
	long			 i;
	int			 r;

	if ((r = pw_store_candidates(ctx->store, sel, &c, &n,
	    &ctx->err)) != 0)
		return r;
	if (n == 0) {
		free(c);
		return PW_ENOPROXY;
	}
	pw_pool_env_init(ctx, &env);
	cname = pw_pool_cursor_name(s, sel->f);
	if ((r = pw_store_rotation_get(ctx->store, cname, &env.cursor,
	    &ctx->err)) != 0)
		goto out;
	if ((i = pw_strategy_pick(s, fallback, c, n, &env, &ctx->err)) < 0) {
		r = (int)i;
		goto out;
	}
	if (env.note != NULL)
		pw_log(PW_LOG_INFO, "%s", env.note);
	*id = c[i].id;
	if (*id != env.cursor)
		r = pw_store_rotation_put(ctx->store, cname, *id, &ctx->err);
out:
	free(cname);
	free(c);
	return r;
}

/* Round-robin: the first eligible id after the cursor, wrapping. */
static int
choose_round_robin(struct pw_ctx *ctx, const struct pw_strategy *s,
    const struct pw_sel *sel, int64_t *id)
{
	char	*cname = pw_pool_cursor_name(s, sel->f);
	int64_t	 cursor;
	int	 r;

	r = pw_store_rotation_get(ctx->store, cname, &cursor, &ctx->err);
	if (r == 0)
		r = pw_store_first(ctx->store, sel, PW_FIRST_AFTER, cursor,
		    id, &ctx->err);
	if (r == PW_ENOTFOUND && cursor != 0)
		r = pw_store_first(ctx->store, sel, PW_FIRST_AFTER, 0, id,
		    &ctx->err);
	if (r == PW_ENOTFOUND)
		r = PW_ENOPROXY;
	if (r == 0)
		r = pw_store_rotation_put(ctx->store, cname, *id, &ctx->err);
	free(cname);
	return r;
}

struct probe_arg {
	struct pw_probe	*probe;
};

static int
probe_one(void *arg, int64_t id, struct pw_candidate *c, struct pw_err *err)
{
	return pw_store_probe(((struct probe_arg *)arg)->probe, id, c, err);
}

/* Tries before sampling falls back to reading every candidate. */
#define SAMPLE_TRIES	64

/*
 * Choose with s among the eligible proxies of sel. The built-ins answer
 * from indexes (round-robin, least-used) or by sampling (random,
 * weighted, performance) without reading the whole pool; plugins and
 * hard cases read every candidate.
 */
static int
choose(struct pw_ctx *ctx, const struct pw_strategy *s,
    const struct pw_strategy *fallback, const struct pw_sel *sel,
    int64_t *id)
{
	struct pw_filter	 f;
	struct pw_sel		 sub;
	struct pw_bounds	 b;
	struct pw_pick_env	 env;
	struct probe_arg	 pa;
	int64_t			 any;
	int			 r;

	if (s != pw_strategy_builtin(s->name))
		return choose_scan(ctx, s, fallback, sel, id);
	if (strcmp(s->name, "round-robin") == 0)
		return choose_round_robin(ctx, s, sel, id);
	if (strcmp(s->name, "least-used") == 0) {
		r = pw_store_first(ctx->store, sel, PW_FIRST_LEAST_USED, 0, id,
		    &ctx->err);
		return r == PW_ENOTFOUND ? PW_ENOPROXY : r;
	}
	if (strcmp(s->name, "performance") == 0 && fallback != NULL) {
		/* Proxies never measured go first, chosen by the fallback. */
		f = *sel->f;
		f.unmeasured = 1;
		sub = *sel;
		sub.f = &f;
		r = pw_store_first(ctx->store, &sub, PW_FIRST_AFTER, 0, &any,
		    &ctx->err);
		if (r == 0) {
			pw_log(PW_LOG_INFO, "performance: trying a proxy "
			    "without latency data");
			return choose(ctx, fallback, NULL, &sub, id);
		}
		if (r != PW_ENOTFOUND)
			return r;
	}
	if ((r = pw_store_bounds(ctx->store, &b, &ctx->err)) != 0)
		return r;
	if ((r = pw_store_probe_new(ctx->store, sel, &pa.probe,
	    &ctx->err)) != 0)
		return r;
	pw_pool_env_init(ctx, &env);
	r = pw_strategy_sample(s, &b, probe_one, &pa, &env, SAMPLE_TRIES, id,
	    &ctx->err);
	pw_store_probe_free(pa.probe);
	if (r != 0)
		return r < 0 ? r : 0;
	return choose_scan(ctx, s, fallback, sel, id);
}

/*
 * Degraded proxies (a failed health check, not yet at the threshold) are
 * still eligible but ranked down: the strategy chooses among the others
 * first, and among degraded ones only when no other is eligible. A
 * filter on status degraded asks for them, so they are not left out.
 */
static int
choose_ranked(struct pw_ctx *ctx, const struct pw_strategy *s,
    const struct pw_strategy *fallback, struct pw_sel *sel, int64_t *id)
{
	int	r;

	if (sel->f->status != PW_DEGRADED) {
		sel->not_degraded = 1;
		r = choose(ctx, s, fallback, sel, id);
		sel->not_degraded = 0;
		if (r != PW_ENOPROXY)
			return r;
	}
	return choose(ctx, s, fallback, sel, id);
}

/* The least-used window: start a new one when the current has passed. */
static int
window_check(struct pw_ctx *ctx, int64_t now)
{
	int64_t	len = pw_config_int(ctx, "strategy.window"), ws;
	int	r;

	if ((r = pw_store_rotation_get(ctx->store, "window", &ws,
	    &ctx->err)) != 0)
		return r;
	if (ws != 0 && now >= ws && now - ws < len)
		return 0;
	if ((r = pw_store_window_reset(ctx->store, &ctx->err)) != 0)
		return r;
	return pw_store_rotation_put(ctx->store, "window", now, &ctx->err);
}

/* Sticky: the session's proxy, when it is still eligible. */
static int
session_proxy(struct pw_ctx *ctx, const struct pw_pick *pk,
    const struct pw_sel *sel, int64_t *id)
{
	struct pw_probe		*probe;
	struct pw_candidate	 c;
	int64_t			 pid;
	int			 r;

	*id = 0;
	if ((r = pw_store_session_prune(ctx->store, sel->now, NULL,
	    &ctx->err)) != 0)
		return r;
	r = pw_store_session_get(ctx->store, pk->session, sel->now, &pid,
	    &ctx->err);
	if (r == PW_ENOTFOUND)
		return 0;
	if (r != 0)
		return r;
	if ((r = pw_store_probe_new(ctx->store, sel, &probe,
	    &ctx->err)) != 0)
		return r;
	r = pw_store_probe(probe, pid, &c, &ctx->err);
	pw_store_probe_free(probe);
	if (r < 0)
		return r;
	if (r == 1)
		*id = pid;
	else
		pw_log(PW_LOG_INFO, "session %s: proxy %lld is no longer "
		    "eligible, choosing another", pk->session, (long long)pid);
	return 0;
}

int
pw_pool_resolve_pick(struct pw_ctx *ctx, const struct pw_pick *pk,
    const struct pw_strategy **s, const struct pw_strategy **fallback)
{
	const char	*name = pk->strategy;
	int		 r;

	if (name == NULL)
		name = pw_config_get(ctx, "strategy", NULL);
	if (pk->plugin != NULL && pk->strategy == NULL)
		name = NULL;
	if (pk->session != NULL && !pw_session_ok(pk->session))
		return pw_failf(&ctx->err, PW_EUSAGE, "session: want 1 to 256 "
		    "bytes of text without control characters");
	/* A session without a strategy is sticky, as --session says. */
	if (pk->session != NULL && pk->strategy == NULL && pk->plugin == NULL)
		name = "sticky";
	if (name != NULL && strcmp(name, "sticky") == 0) {
		if (pk->session == NULL)
			return pw_failf(&ctx->err, PW_EUSAGE, "strategy "
			    "sticky needs a session (--session ID)");
		name = pw_config_get(ctx, "session.strategy", NULL);
	} else if (name != NULL && strcmp(name, "geo") == 0) {
		if (pk->filter.country == NULL && pk->filter.region == NULL)
			return pw_failf(&ctx->err, PW_EUSAGE, "strategy geo "
			    "needs a country or region (--country CC, "
			    "--region R)");
		name = pw_config_get(ctx, "geo.strategy", NULL);
	}
	if (pk->plugin != NULL) {
		if ((r = pw_strategy_load(pk->plugin, s, &ctx->err)) != 0)
			return r;
		if (name != NULL && pk->strategy != NULL &&
		    strcmp(name, (*s)->name) != 0)
			return pw_failf(&ctx->err, PW_EUSAGE, "--strategy %s "
			    "and a plugin named %s: use one", name,
			    (*s)->name);
	} else if ((r = find_strategy(ctx, name, s)) != 0)
		return r;
	*fallback = NULL;
	if (strcmp((*s)->name, "performance") == 0) {
		name = pw_config_get(ctx, "strategy.fallback", NULL);
		if (strcmp(name, "none") != 0 &&
		    (r = find_strategy(ctx, name, fallback)) != 0)
			return r;
	}
	return 0;
}

/*
 * The proxy's own cap (pk->rate_limit): one over it is left out and
 * another chosen, in the same transaction, where the one that passes is
 * counted. A session keeps its proxy: over the cap, it waits. PW_ERATE,
 * with the wait, when every eligible proxy is over it.
 */
static int
rate_pass(struct pw_ctx *ctx, const struct pw_pick *pk,
    const struct pw_strategy *s, const struct pw_strategy *fallback,
    struct pw_sel *sel, int64_t *id, int reused)
{
	struct pw_rl_limit	 l = { pk->rate_limit, pk->rate_window_ms };
	struct pw_rl_verdict	 v;
	const int64_t		*ex0 = sel->ex;
	size_t			 nex0 = sel->nex;
	int64_t			*ex = NULL, retry = -1, mono = pw_mono_ms();
	char			 key[48];
	const char		*k = key;
	int			 r;

	for (;;) {
		snprintf(key, sizeof key, "proxy:%lld", (long long)*id);
		if ((r = pw_store_rl_check_txn(ctx->store, &k, &l, 1, mono, 1,
		    &v, &ctx->err)) != 0 || v.allowed)
			break;
		if (retry < 0 || v.retry_ms < retry)
			retry = v.retry_ms;
		if (reused) {
			r = PW_ERATE;
			break;
		}
		if (ex == NULL) {
			ex = pw_xcalloc(nex0 + 1, sizeof *ex);
			if (nex0 > 0)
				memcpy(ex, ex0, nex0 * sizeof *ex);
		} else
			ex = pw_xrealloc(ex, (sel->nex + 1) * sizeof *ex);
		ex[sel->nex++] = *id;
		sel->ex = ex;
		pw_err_clear(&ctx->err);
		if ((r = choose_ranked(ctx, s, fallback, sel, id)) ==
		    PW_ENOPROXY)
			r = PW_ERATE;
		if (r != 0)
			break;
	}
	if (r == PW_ERATE) {
		if (pk->rate_retry_ms != NULL)
			*pk->rate_retry_ms = retry;
		pw_failf(&ctx->err, PW_ERATE, "%s has had its "
		    "fetch.rate_per_proxy; the next request may go in %.1f s",
		    reused ? "the session's proxy" : "every eligible proxy",
		    retry / 1000.0);
	}
	sel->ex = ex0;
	sel->nex = nex0;
	free(ex);
	return r;
}

int
pw_pool_next(struct pw_ctx *ctx, const struct pw_pick *pk,
    struct pw_proxy *out)
{
	const struct pw_strategy	*s, *fallback;
	struct pw_filter		 f = pk->filter;
	struct pw_sel			 sel = { &f, pk->exclude, pk->nexclude,
					    pw_now() };
	struct pw_proxy			 p;
	struct get_arg			 ga = { &p };
	struct each_arg			 ea = { ctx, pk->secrets, get_one,
					    &ga };
	int64_t				 id = 0;
	int				 r, reused;

	/* A cap per proxy is counted in the file, with the pick itself. */
	if (ctx->view != NULL && pk->rate_limit == 0)
		return pw_view_next(ctx, pk, out);
	if ((r = pw_pool_resolve_pick(ctx, pk, &s, &fallback)) != 0)
		return r;
	/* The key itself is loaded only if the proxy chosen needs it. */
	if (pk->secrets && (r = pw_crypto_key_check(pw_config_secret_hex(),
	    &ctx->err)) != 0)
		return r;
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	if ((r = window_check(ctx, sel.now)) != 0)
		goto fail;
	/* A miss below says nothing; a strategy's own refusal does. */
	pw_err_clear(&ctx->err);
	if (pk->session != NULL &&
	    (r = session_proxy(ctx, pk, &sel, &id)) != 0)
		goto fail;
	reused = id != 0;
	if (id == 0 && (r = choose_ranked(ctx, s, fallback, &sel, &id)) ==
	    PW_ENOPROXY && (f.country || f.region) &&
	    pw_config_int(ctx, "geo.fallback")) {
		pw_log(PW_LOG_INFO, "geo: no eligible proxy in %s%s%s, "
		    "falling back to any", f.country ? f.country : "",
		    f.country && f.region ? "/" : "",
		    f.region ? f.region : "");
		f.country = f.region = NULL;
		r = choose_ranked(ctx, s, fallback, &sel, &id);
	}
	if (r == PW_ENOPROXY) {
		/*
		 * A miss changes nothing but its counter (pw cache stats);
		 * the message says why there was none, counted only now
		 * (a geo fallback may have made a first miss good).
		 */
		struct pw_err	keep;

		if (ctx->err.msg[0] == '\0' &&
		    (r = no_eligible(ctx, &sel)) != PW_ENOPROXY)
			goto fail;
		keep = ctx->err;
		pw_store_rollback(ctx->store);
		if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
			return r;
		if ((r = pw_store_stat_add(ctx->store, "select.misses", 1,
		    &ctx->err)) != 0) {
			pw_store_rollback(ctx->store);
			return r;
		}
		if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0)
			return r;
		ctx->err = keep;
		return PW_ENOPROXY;
	}
	if (r != 0)
		goto fail;
	if (pk->rate_limit > 0 && (r = rate_pass(ctx, pk, s, fallback, &sel,
	    &id, reused)) != 0)
		goto fail;
	if ((r = pw_store_proxy_started(ctx->store, id, sel.now,
	    &ctx->err)) != 0 ||
	    (r = pw_store_stat_add(ctx->store, "select.hits", 1,
	    &ctx->err)) != 0)
		goto fail;
	if (pk->session != NULL && (r = pw_store_session_put(ctx->store,
	    pk->session, id, sel.now, sel.now +
	    pw_config_int(ctx, "session.ttl"), &ctx->err)) != 0)
		goto fail;
	if ((r = pw_store_proxy_each(ctx->store, NULL, id, each_row, &ea,
	    &ctx->err)) != 0)
		goto fail;
	if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0) {
		pw_proxy_release(&p);
		return r;
	}
	if (reused)
		pw_log(PW_LOG_INFO, "session %s: proxy %lld", pk->session,
		    (long long)id);
	else
		pw_log(PW_LOG_INFO, "%s: proxy %lld", s->name, (long long)id);
	*out = p;
	return 0;
fail:
	pw_store_rollback(ctx->store);
	return r;
}

int
pw_pool_report(struct pw_ctx *ctx, int64_t id, int outcome,
    double latency_ms)
{
	int	r;

	if (ctx->view != NULL)
		return pw_view_report(ctx, id, outcome, latency_ms);
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	r = pw_store_proxy_report(ctx->store, id, outcome, latency_ms,
	    pw_config_double(ctx, "strategy.alpha"),
	    pw_config_int(ctx, "pool.failure_threshold"),
	    pw_config_int(ctx, "pool.cooldown"), pw_now(), &ctx->err);
	if (r == PW_ENOTFOUND)
		pw_failf(&ctx->err, r, "%lld: no such proxy", (long long)id);
	if (r != 0) {
		pw_store_rollback(ctx->store);
		return r;
	}
	return pw_store_commit(ctx->store, &ctx->err);
}
