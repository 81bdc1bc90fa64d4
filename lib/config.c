/*
 * config.c -- typed settings and their precedence:
 * command flag > PW_* environment > state file > built-in default.
 *
 * This is the only module that reads the environment.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum type { T_INT, T_REAL, T_DURATION, T_ENUM, T_STRING, T_BOOL,
    T_STRATEGY, T_URLS };

#define INNER "round-robin random weighted least-used performance"

struct key {
	const char	*name;
	enum type	 type;
	const char	*def;
	double		 min, max;
	const char	*values;	/* T_ENUM: space-separated */
	const char	*help;
};

static const struct key keys[] = {
	{ "strategy", T_STRATEGY, "round-robin", 0, 0,
	  "round-robin random weighted least-used performance sticky geo",
	  "proxy selection strategy (or a plugin's name)" },
	{ "strategy.window", T_DURATION, "1h", 1, 86400 * 30, NULL,
	  "window in which least-used counts requests" },
	{ "strategy.alpha", T_REAL, "0.3", 0.001, 0.999, NULL,
	  "weight of a new latency sample in the EMA (0 < alpha < 1)" },
	{ "strategy.fallback", T_ENUM, "round-robin", 0, 0,
	  "none round-robin random weighted least-used",
	  "how performance picks among proxies without latency data" },
	{ "strategy.plugins", T_STRING, "", 0, 0, NULL,
	  "strategy plugins to load, as PATH[:PATH...]" },
	{ "session.strategy", T_ENUM, "round-robin", 0, 0, INNER,
	  "how a sticky session picks a new proxy" },
	{ "geo.strategy", T_ENUM, "round-robin", 0, 0, INNER,
	  "how geo picks among the proxies of a country or region" },
	{ "geo.fallback", T_BOOL, "false", 0, 0, NULL,
	  "when no proxy matches --country/--region, use any" },
	{ "pool.failure_threshold", T_INT, "3", 1, 1000, NULL,
	  "consecutive failures that put a proxy in cooldown" },
	{ "pool.cooldown", T_DURATION, "5m", 0, 86400 * 30, NULL,
	  "how long a failing proxy is skipped" },
	{ "session.ttl", T_DURATION, "30m", 1, 86400 * 30, NULL,
	  "how long an idle sticky session keeps its proxy" },
	{ "fetch.timeout", T_DURATION, "30", 1, 3600, NULL,
	  "whole-request timeout of pw fetch, seconds" },
	{ "fetch.connect_timeout", T_DURATION, "10", 1, 600, NULL,
	  "connect timeout of pw fetch, seconds" },
	{ "fetch.retries", T_INT, "3", 1, 100, NULL,
	  "proxies pw fetch tries before giving up" },
	{ "health.url", T_URLS, "", 0, 0, NULL,
	  "judge URL pw health requests through each proxy" },
	{ "health.urls", T_URLS, "", 0, 0, NULL,
	  "several judge URLs, space-separated (overrides health.url)" },
	{ "health.timeout", T_DURATION, "10", 1, 3600, NULL,
	  "timeout of one health check, seconds" },
	{ "health.concurrency", T_INT, "100", 1, 10000, NULL,
	  "checks pw health runs at once" },
	{ "health.failure_threshold", T_INT, "3", 1, 1000, NULL,
	  "failed checks that make a proxy unhealthy" },
	{ "cache.ttl", T_DURATION, "0", 0, 86400 * 365, NULL,
	  "lifetime of imported proxies (0: never expire)" },
	{ "cache.batch", T_INT, "10000", 1, 1000000, NULL,
	  "proxies pw cache warm writes per transaction" },
	{ "cache.sources", T_STRING, "", 0, 0, NULL,
	  "lists pw cache warm --sources fetches: URL [FORMAT [NAME]], "
	  "comma-separated, or @FILE" },
	{ "cache.max_size", T_INT, "67108864", 1024, 1073741824, NULL,
	  "largest list pw cache warm downloads, bytes" },
	{ "serve.listen", T_STRING, "127.0.0.1:8000", 0, 0, NULL,
	  "address pw serve listens on" },
	{ "serve.health_interval", T_DURATION, "0", 0, 86400 * 30, NULL,
	  "how often pw serve health-checks the pool (0: never)" },
	{ "serve.flush_interval", T_DURATION, "1", 1, 3600, NULL,
	  "how often pw serve writes outcomes held in memory, seconds" },
	{ "serve.prune_interval", T_DURATION, "1m", 0, 86400 * 30, NULL,
	  "how often pw serve removes expired proxies (0: never)" },
};

#define NKEYS ((int)(sizeof keys / sizeof keys[0]))

struct pw_config {
	char	*layer[3][NKEYS];	/* state, env, flag */
};

static struct pw_config_key pub[NKEYS + 1];

static const char *const type_names[] = {
	[T_INT] = "int", [T_REAL] = "real", [T_DURATION] = "duration",
	[T_ENUM] = "enum", [T_STRING] = "string", [T_BOOL] = "bool",
	[T_STRATEGY] = "enum", [T_URLS] = "string",
};

const struct pw_config_key *
pw_config_keys(void)
{
	if (pub[0].name == NULL) {
		for (int i = 0; i < NKEYS; i++) {
			pub[i].name = keys[i].name;
			pub[i].type = type_names[keys[i].type];
			pub[i].def = keys[i].def;
			pub[i].help = keys[i].help;
		}
	}
	return pub;
}

const char *
pw_origin_name(int origin)
{
	static const char *const names[] = { "default", "state", "env",
	    "flag" };

	return names[origin];
}

static int
key_index(const char *name)
{
	for (int i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return i;
	return -1;
}

static int
unknown_key(const char *name, struct pw_err *err)
{
	struct pw_buf	b;

	pw_buf_init(&b);
	for (int i = 0; i < NKEYS; i++)
		pw_buf_addf(&b, "%s%s", i ? ", " : "", keys[i].name);
	pw_failf(err, PW_EUSAGE, "'%s': unknown config key (valid: %s)",
	    name, b.data);
	pw_buf_release(&b);
	return PW_EUSAGE;
}

/* Is every word of v an http or https URL (or v empty)? */
static int
urls_ok(const char *v)
{
	size_t	n;

	for (v += strspn(v, " \t,"); *v != '\0'; v += strspn(v, " \t,")) {
		n = strcspn(v, " \t,");
		if (!(n > 7 && strncasecmp(v, "http://", 7) == 0) &&
		    !(n > 8 && strncasecmp(v, "https://", 8) == 0))
			return 0;
		v += n;
	}
	return 1;
}

/* Check v against k; on success *canon (caller frees) is the stored form. */
static int
check_value(const struct key *k, const char *v, char **canon,
    struct pw_err *err)
{
	int64_t	i;
	double	d;

	switch (k->type) {
	case T_INT:
		if (pw_parse_int(v, (int64_t)k->min, (int64_t)k->max, &i) != 0)
			return pw_failf(err, PW_EUSAGE, "%s: '%s': want an "
			    "integer from %.0f to %.0f", k->name, v, k->min,
			    k->max);
		*canon = pw_xasprintf("%lld", (long long)i);
		return 0;
	case T_REAL:
		if (pw_parse_double(v, k->min, k->max, &d) != 0)
			return pw_failf(err, PW_EUSAGE, "%s: '%s': want a "
			    "number from %g to %g", k->name, v, k->min, k->max);
		*canon = pw_xstrdup(v);
		return 0;
	case T_DURATION:
		if (pw_parse_duration(v, &i) != 0 || i < k->min ||
		    i > k->max)
			return pw_failf(err, PW_EUSAGE, "%s: '%s': want a "
			    "duration from %.0fs to %.0fs (like 90, 90s, 15m, "
			    "2h, 7d)", k->name, v, k->min, k->max);
		*canon = pw_xstrdup(v);
		return 0;
	case T_STRATEGY:
		/*
		 * A plugin's name is only known once plugins are loaded;
		 * pw_config_store checks that, a command line when used.
		 */
		if (*v != '\0' && strspn(v, "abcdefghijklmnopqrstuvwxyz"
		    "0123456789-_") == strlen(v) && strlen(v) <= 32) {
			*canon = pw_xstrdup(v);
			return 0;
		}
		/* FALLTHROUGH */
	case T_ENUM: {
		size_t n = strlen(v);
		for (const char *p = k->values; *p; ) {
			size_t m = strcspn(p, " ");
			if (m == n && strncasecmp(p, v, n) == 0) {
				*canon = pw_xstrndup(p, m);
				return 0;
			}
			p += m + (p[m] == ' ');
		}
		return pw_failf(err, PW_EUSAGE, "%s: '%s': want one of: %s",
		    k->name, v, k->values);
	}
	case T_BOOL:
		if (!strcmp(v, "1") || !strcasecmp(v, "true") ||
		    !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
			*canon = pw_xstrdup("true");
			return 0;
		}
		if (!strcmp(v, "0") || !strcasecmp(v, "false") ||
		    !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
			*canon = pw_xstrdup("false");
			return 0;
		}
		return pw_failf(err, PW_EUSAGE, "%s: '%s': want true or false",
		    k->name, v);
	case T_STRING:
	case T_URLS:
		for (const char *p = v; *p; p++)
			if ((unsigned char)*p < 0x20)
				return pw_failf(err, PW_EUSAGE, "%s: value "
				    "contains a control character", k->name);
		if (k->type == T_URLS && !urls_ok(v))
			return pw_failf(err, PW_EUSAGE, "%s: '%s': want "
			    "http:// or https:// URLs, separated by spaces",
			    k->name, v);
		*canon = pw_xstrdup(v);
		return 0;
	}
	return PW_EFAIL;
}

int
pw_config_check(const char *key, const char *value, char **canon,
    struct pw_err *err)
{
	int	i = key_index(key);

	if (i < 0)
		return unknown_key(key, err);
	return check_value(&keys[i], value, canon, err);
}

struct pw_config *
pw_config_new(void)
{
	return pw_xcalloc(1, sizeof(struct pw_config));
}

struct pw_config *
pw_config_dup(const struct pw_config *c)
{
	struct pw_config	*d = pw_config_new();

	for (int l = 0; l < 3; l++)
		for (int i = 0; i < NKEYS; i++)
			if (c->layer[l][i] != NULL)
				d->layer[l][i] = pw_xstrdup(c->layer[l][i]);
	return d;
}

void
pw_config_free(struct pw_config *c)
{
	if (c == NULL)
		return;
	for (int l = 0; l < 3; l++)
		for (int i = 0; i < NKEYS; i++)
			free(c->layer[l][i]);
	free(c);
}

static void
layer_set(struct pw_config *c, int layer, int i, char *v)
{
	free(c->layer[layer][i]);
	c->layer[layer][i] = v;
}

/* "fetch.timeout" -> "PW_FETCH__TIMEOUT" */
static void
env_name(const char *key, char *out, size_t n)
{
	size_t	o = 0;

	o = snprintf(out, n, "PW_");
	for (const char *p = key; *p && o + 3 < n; p++) {
		if (*p == '.') {
			out[o++] = '_';
			out[o++] = '_';
		} else
			out[o++] = toupper((unsigned char)*p);
	}
	out[o] = '\0';
}

int
pw_config_load_env(struct pw_config *c, struct pw_err *err)
{
	char		 name[128];
	const char	*v;
	char		*canon;
	int		 r;

	for (int i = 0; i < NKEYS; i++) {
		env_name(keys[i].name, name, sizeof name);
		if ((v = getenv(name)) == NULL)
			continue;
		if ((r = check_value(&keys[i], v, &canon, err)) != 0)
			return pw_err_prefix(err, "%s", name);
		layer_set(c, 1, i, canon);
	}
	return 0;
}

int
pw_config_set_flag(struct pw_config *c, const char *key, const char *value,
    struct pw_err *err)
{
	char	*canon;
	int	 i = key_index(key), r;

	if (i < 0)
		return unknown_key(key, err);
	if ((r = check_value(&keys[i], value, &canon, err)) != 0)
		return r;
	layer_set(c, 2, i, canon);
	return 0;
}

static int
load_state_kv(void *arg, const char *key, const char *value)
{
	struct pw_config	*c = arg;
	int			 i = key_index(key);

	/* A key this binary does not know (from a newer pw) is kept, unused. */
	if (i >= 0 && value != NULL)
		layer_set(c, 0, i, pw_xstrdup(value));
	return 0;
}

int
pw_config_load_state(struct pw_ctx *ctx)
{
	return pw_store_config_each(ctx->store, load_state_kv, ctx->cfg,
	    &ctx->err);
}

int
pw_config_reload_state(struct pw_ctx *ctx)
{
	for (int i = 0; i < NKEYS; i++)
		layer_set(ctx->cfg, 0, i, NULL);
	return pw_config_load_state(ctx);
}

const char *
pw_config_get(struct pw_ctx *ctx, const char *key, int *origin)
{
	int	i = key_index(key);

	if (i < 0)
		return NULL;
	for (int l = 2; l >= 0; l--) {
		if (ctx->cfg != NULL && ctx->cfg->layer[l][i] != NULL) {
			if (origin != NULL)
				*origin = l + 1;
			return ctx->cfg->layer[l][i];
		}
	}
	if (origin != NULL)
		*origin = PW_ORIGIN_DEFAULT;
	return keys[i].def;
}

/*
 * Values were checked when they entered a layer, so parsing cannot fail
 * here except for a hand-edited state file; then the default holds.
 */
int64_t
pw_config_int(struct pw_ctx *ctx, const char *key)
{
	const char	*v = pw_config_get(ctx, key, NULL);
	int		 i = key_index(key);
	int64_t		 n = 0;

	if (v == NULL)
		return 0;
	if (keys[i].type == T_BOOL)
		return strcmp(v, "true") == 0;
	if (keys[i].type == T_DURATION) {
		if (pw_parse_duration(v, &n) != 0)
			pw_parse_duration(keys[i].def, &n);
	} else if (pw_parse_int(v, INT64_MIN, INT64_MAX, &n) != 0)
		pw_parse_int(keys[i].def, INT64_MIN, INT64_MAX, &n);
	return n;
}

double
pw_config_double(struct pw_ctx *ctx, const char *key)
{
	const char	*v = pw_config_get(ctx, key, NULL);
	double		 d = 0;

	if (v != NULL && pw_parse_double(v, -1e300, 1e300, &d) != 0)
		pw_parse_double(keys[key_index(key)].def, -1e300, 1e300, &d);
	return d;
}

int
pw_config_store(struct pw_ctx *ctx, const char *key, const char *value)
{
	char	*canon;
	int	 i, r;

	if ((r = pw_config_check(key, value, &canon, &ctx->err)) != 0)
		return r;
	i = key_index(key);
	if (keys[i].type == T_STRATEGY &&
	    (r = pw_pool_strategy_check(ctx, canon)) != 0) {
		free(canon);
		return pw_err_prefix(&ctx->err, "%s", key);
	}
	r = pw_store_config_put(ctx->store, keys[i].name, canon, &ctx->err);
	if (r == 0)
		layer_set(ctx->cfg, 0, i, canon);
	else
		free(canon);
	return r;
}

int
pw_config_unstore(struct pw_ctx *ctx, const char *key)
{
	int	i = key_index(key), r;

	if (i < 0)
		return unknown_key(key, &ctx->err);
	r = pw_store_config_put(ctx->store, key, NULL, &ctx->err);
	if (r == 0)
		layer_set(ctx->cfg, 0, i, NULL);
	return r;
}

static char *
xdg_path(const char *var, const char *fallback, const char *leaf)
{
	const char	*base = getenv(var), *home;

	if (base != NULL && base[0] == '/')
		return pw_xasprintf("%s/pw/%s", base, leaf);
	home = getenv("HOME");
	if (home == NULL || *home == '\0')
		home = ".";
	return pw_xasprintf("%s/%s/pw/%s", home, fallback, leaf);
}

char *
pw_config_state_path(const char *flag)
{
	const char	*env;

	if (flag != NULL && *flag != '\0')
		return pw_xstrdup(flag);
	if ((env = getenv("PW_STATE")) != NULL && *env != '\0')
		return pw_xstrdup(env);
	return xdg_path("XDG_STATE_HOME", ".local/state", "state.db");
}

const char *
pw_config_secret_hex(void)
{
	const char	*v = getenv("PW_SECRET_KEY");

	return v != NULL && *v != '\0' ? v : NULL;
}

char *
pw_config_key_path(void)
{
	return xdg_path("XDG_CONFIG_HOME", ".config", "key");
}
