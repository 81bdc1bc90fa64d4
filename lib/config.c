/*
 * config.c -- typed settings and their precedence:
 * command flag > PW_* environment > state file > built-in default.
 *
 * This is the only module that reads the environment.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ratelimit.h"

/* How a secret setting is shown where settings are listed. */
enum { SECRET_NONE, SECRET_ALL, SECRET_URL };

enum type { T_INT, T_REAL, T_DURATION, T_ENUM, T_STRING, T_BOOL,
    T_STRATEGY, T_URLS, T_USERS, T_RATE, T_MS, T_ORIGINS };

#define INNER "round-robin random weighted least-used performance"

struct key {
	const char	*name;
	enum type	 type;
	const char	*def;
	double		 min, max;
	const char	*values;	/* T_ENUM: space-separated */
	const char	*help;
	/* T_STRING: a further check, and what it wants when it fails */
	int		(*ok)(const char *);
	const char	*want;
	const char	*env_alias;	/* read when PW_A__B is not set */
	int		 secret;	/* how it is shown where listed */
};

static int
redis_url_ok(const char *v)
{
	return pw_rl_redis_url_ok(v);
}

/* Addresses and networks, separated by commas or spaces; empty: none. */
static int
nets_ok(const char *v)
{
	struct pw_rl_net	net;
	char			tok[64];
	size_t			n;

	for (v += strspn(v, " \t,"); *v != '\0'; v += strspn(v, " \t,")) {
		n = strcspn(v, " \t,");
		if (n >= sizeof tok)
			return 0;
		memcpy(tok, v, n);
		tok[n] = '\0';
		if (pw_rl_net_parse(tok, &net) != 0)
			return 0;
		v += n;
	}
	return 1;
}

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
	{ "fetch.rate_per_host", T_RATE, "0", 0, 0, NULL,
	  "most requests pw fetch sends to one target host, as N/DURATION "
	  "(10/s, 100/1m, at most a day; 0: no cap), across processes" },
	{ "fetch.rate_per_proxy", T_RATE, "0", 0, 0, NULL,
	  "most requests pw fetch sends through one proxy, as N/DURATION; "
	  "one over it is passed over" },
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
	{ "serve.gateway_users", T_USERS, "", 0, 0, NULL,
	  "who may use the gateway: USER:PASSWORD, comma-separated (stored "
	  "hashed)" },
	{ "serve.delegate_ttl", T_DURATION, "60", 0, 86400, NULL,
	  "how long a client may reuse a proxy it was handed (ttl_seconds)" },
	{ "service.endpoints", T_URLS, "", 0, 0, NULL,
	  "pw serve URLs to delegate selection to, tried in order" },
	{ "service.enabled", T_BOOL, "true", 0, 0, NULL,
	  "delegate to service.endpoints when they are set" },
	{ "service.auth", T_ENUM, "none", 0, 0, "none api-key bearer mtls",
	  "how pw proves who it is to the service" },
	{ "service.key", T_STRING, "", 0, 0, NULL,
	  "API key or bearer token (better in PW_SERVICE__KEY)", NULL, NULL,
	  NULL, SECRET_ALL },
	{ "service.cert", T_STRING, "", 0, 0, NULL,
	  "client certificate file for mtls (PEM)" },
	{ "service.cert_key", T_STRING, "", 0, 0, NULL,
	  "private key file of service.cert (PEM)" },
	{ "service.ca", T_STRING, "", 0, 0, NULL,
	  "CA file that signed the service's certificate" },
	{ "service.client_id", T_STRING, "", 0, 0, NULL,
	  "name sent to the service (empty: the host name)" },
	{ "service.timeout", T_MS, "300ms", 10, 60000, NULL,
	  "time one call to the service may take" },
	{ "service.retries", T_INT, "2", 0, 10, NULL,
	  "calls retried on an endpoint, with backoff and jitter" },
	{ "service.cache_ttl", T_DURATION, "60", 0, 86400, NULL,
	  "longest reuse of a service's answer (0: never reuse)" },
	{ "service.breaker_threshold", T_INT, "3", 1, 1000, NULL,
	  "failed calls in a row that open an endpoint's breaker" },
	{ "service.breaker_timeout", T_DURATION, "30", 1, 86400, NULL,
	  "how long an open breaker waits before one trial call" },
	{ "service.outbox_max", T_INT, "10000", 1, 10000000, NULL,
	  "outcomes kept for the service; the oldest are dropped" },
	{ "ratelimit.enabled", T_BOOL, "true", 0, 0, NULL,
	  "pw serve limits how often each client may call it" },
	{ "ratelimit.backend", T_ENUM, "memory", 0, 0, "memory sqlite redis",
	  "where pw serve counts: memory (one process), sqlite (the state "
	  "file: every server of a host), redis (every host)" },
	{ "ratelimit.redis_url", T_STRING, "redis://127.0.0.1:6379/0", 0, 0,
	  NULL, "the Redis of the redis backend (a password only in the "
	  "environment)", redis_url_ok,
	  "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]", NULL, SECRET_URL },
	{ "ratelimit.fail_mode", T_ENUM, "open", 0, 0, "open closed",
	  "when the backend fails: let requests through (open) or refuse "
	  "them (closed)" },
	{ "ratelimit.batch", T_INT, "128", 1, 10000, NULL,
	  "sqlite and redis backends: at most this many requests a server "
	  "counts at once far below a limit (1: each request is checked "
	  "there)" },
	{ "ratelimit.config", T_STRING, "", 0, 0, NULL,
	  "JSON file of tiers, endpoint limits and whitelist "
	  "(also $PW_RATELIMIT_CONFIG)", NULL, NULL, "PW_RATELIMIT_CONFIG" },
	{ "ratelimit.trusted_proxies", T_STRING, "", 0, 0, NULL,
	  "addresses or networks (comma-separated) whose X-Forwarded-For "
	  "and X-Real-IP pw serve believes", nets_ok,
	  "addresses or networks like 10.0.0.0/8, comma-separated" },
	{ "serve.require_auth", T_BOOL, "false", 0, 0, NULL,
	  "pw serve asks for an API key even when none exists" },
	{ "serve.allow_private_targets", T_BOOL, "false", 0, 0, NULL,
	  "POST /api/v1/request may fetch loopback and private addresses" },
	{ "serve.cors_origins", T_ORIGINS, "", 0, 0, NULL,
	  "origins browsers may call pw serve from, space-separated "
	  "(* for any)" },
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
	[T_STRATEGY] = "enum", [T_URLS] = "string", [T_USERS] = "string",
	[T_RATE] = "rate", [T_MS] = "duration", [T_ORIGINS] = "string",
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
			pub[i].secret = keys[i].secret;
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

/* Indexes of keys[] in the order of their names, for key_index. */
static int		by_name[NKEYS];
static pthread_once_t	by_name_once = PTHREAD_ONCE_INIT;

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(keys[*(const int *)a].name, keys[*(const int *)b].name);
}

static void
by_name_make(void)
{
	for (int i = 0; i < NKEYS; i++)
		by_name[i] = i;
	qsort(by_name, NKEYS, sizeof by_name[0], name_cmp);
}

/* A binary search: pw serve looks up a dozen keys for every request. */
static int
key_index(const char *name)
{
	int	lo = 0, hi = NKEYS - 1, mid, c;

	pthread_once(&by_name_once, by_name_make);
	while (lo <= hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(name, keys[by_name[mid]].name)) == 0)
			return by_name[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
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

/*
 * "user:password,..." into "user:$b2$...,...": passwords are hashed before
 * they are stored anywhere; an entry already hashed is kept. No password
 * is ever quoted in a message.
 */
static int
check_users(const struct key *k, const char *v, char **canon,
    struct pw_err *err)
{
	struct pw_buf	 b;
	const char	*p = v;
	int		 r = 0;

	pw_buf_init(&b);
	while (*p != '\0') {
		size_t n = strcspn(p, ","), ul;
		const char *colon = memchr(p, ':', n);
		char *user, *pass, *hash;

		ul = colon ? (size_t)(colon - p) : n;
		user = pw_xstrndup(p, ul);
		if (ul == 0 || strspn(user, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@+") != ul) {
			r = pw_failf(err, PW_EUSAGE, "%s: entry %s'%s': want "
			    "USER:PASSWORD, USER of letters, digits and _.@+ "
			    "(no '-': it starts the controls)", k->name,
			    colon ? "for user " : "", colon ? user : "...");
			free(user);
			break;
		}
		if (colon == NULL || colon + 1 == p + n) {
			r = pw_failf(err, PW_EUSAGE, "%s: user '%s': no "
			    "password (want USER:PASSWORD)", k->name, user);
			free(user);
			break;
		}
		for (const char *q = b.data; *q != '\0'; ) {
			size_t m = strcspn(q, ":");
			if (m == ul && strncmp(q, user, ul) == 0) {
				r = pw_failf(err, PW_EUSAGE, "%s: user '%s' "
				    "given twice", k->name, user);
				break;
			}
			q += strcspn(q, ",");
			q += *q == ',';
		}
		if (r != 0) {
			free(user);
			break;
		}
		pass = pw_xstrndup(colon + 1, n - ul - 1);
		if (pw_crypto_pass_is_hash(pass))
			hash = pw_xstrdup(pass);
		else if ((r = pw_crypto_pass_hash(pass, &hash, err)) != 0) {
			pw_secret_free(pass);
			free(user);
			break;
		}
		pw_secret_free(pass);
		pw_buf_addf(&b, "%s%s:%s", b.len ? "," : "", user, hash);
		free(user);
		free(hash);
		p += n + (p[n] == ',');
	}
	if (r != 0) {
		pw_buf_release(&b);
		return r;
	}
	*canon = pw_buf_detach(&b);
	return 0;
}

int
pw_parse_rate(const char *s, int64_t *limit, int64_t *window_ms)
{
	const char	*slash = strchr(s, '/');
	char		 num[24], unit[24];
	int64_t		 n, secs;
	size_t		 len, ulen;
	int		 bare;

	*limit = *window_ms = 0;
	if (slash == NULL)
		return strcmp(s, "0") == 0 ? 0 : -1;
	len = slash - s;
	ulen = strlen(slash + 1);
	if (len == 0 || len >= sizeof num || ulen == 0 || ulen > 20)
		return -1;
	memcpy(num, s, len);
	num[len] = '\0';
	/* A bare unit is one of it: 10/s is 10/1s. */
	bare = ulen == 1 && strchr("smhd", slash[1]) != NULL;
	unit[0] = '1';
	memcpy(unit + bare, slash + 1, ulen + 1);
	if (pw_parse_int(num, 1, 1000000000, &n) != 0 ||
	    pw_parse_duration(unit, &secs) != 0 || secs < 1 || secs > 86400)
		return -1;
	*limit = n;
	*window_ms = secs * 1000;
	return 0;
}

/*
 * Is every word of v "*" or an origin, scheme://host[:port] of http or
 * https without a path (or v empty)? The first bad word goes to bad.
 */
static int
origins_ok(const char *v, const char **bad, size_t *badlen)
{
	size_t		 n;
	const char	*h;

	for (v += strspn(v, " \t,"); *v != '\0'; v += strspn(v, " \t,")) {
		n = strcspn(v, " \t,");
		*bad = v;
		*badlen = n;
		if (n == 1 && *v == '*') {
			v += n;
			continue;
		}
		if (n > 7 && strncasecmp(v, "http://", 7) == 0)
			h = v + 7;
		else if (n > 8 && strncasecmp(v, "https://", 8) == 0)
			h = v + 8;
		else
			return 0;
		for (; h < v + n; h++)
			if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' &&
			    *h <= 'Z') || (*h >= '0' && *h <= '9') ||
			    strchr("-.:[]", *h) != NULL))
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
	int64_t	i, d2;
	double	d;

	/*
	 * Whatever the type: a refusal quotes the value, and a control
	 * character in a message would reach the terminal (fuzz_config).
	 */
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return pw_failf(err, PW_EUSAGE, "%s: value contains a "
			    "%scontrol character", k->name, k->type == T_USERS ?
			    "space or " : "");
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
	case T_MS:
		if (pw_parse_ms(v, &i) != 0 || i < k->min || i > k->max)
			return pw_failf(err, PW_EUSAGE, "%s: '%s': want a "
			    "duration from %.0fms to %.0fms (like 250ms, 0.5, "
			    "2s)", k->name, v, k->min, k->max);
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
	case T_RATE:
		if (pw_parse_rate(v, &i, &d2) != 0)
			return pw_failf(err, PW_EUSAGE, "%s: '%s': want "
			    "N/DURATION, like 10/s, 100/1m or 5/10s (0: no "
			    "cap)", k->name, v);
		*canon = i == 0 ? pw_xstrdup("0") : pw_xasprintf("%lld/%s",
		    (long long)i, strchr(v, '/') + 1);
		return 0;
	case T_ORIGINS: {
		const char *bad = v;
		size_t badlen = 0;

		if (!origins_ok(v, &bad, &badlen))
			return pw_failf(err, PW_EUSAGE, "%s: '%.*s': want "
			    "origins like https://app.example:8443 (scheme, "
			    "host and port, no path) or *, separated by "
			    "spaces", k->name, (int)(badlen > 200 ? 200 :
			    badlen), bad);
	}
		/* FALLTHROUGH */
	case T_STRING:
	case T_URLS:
		if (k->type == T_URLS && !urls_ok(v))
			return pw_failf(err, PW_EUSAGE, "%s: '%s': want "
			    "http:// or https:// URLs, separated by spaces",
			    k->name, v);
		/* Not echoed: a Redis URL may hold a password. */
		if (k->ok != NULL && !k->ok(v))
			return pw_failf(err, PW_EUSAGE, "%s: want %s",
			    k->name, k->want);
		*canon = pw_xstrdup(v);
		return 0;
	case T_USERS:
		if (strchr(v, ' ') != NULL)
			return pw_failf(err, PW_EUSAGE, "%s: value contains a "
			    "space or control character", k->name);
		return check_users(k, v, canon, err);
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
		if ((v = getenv(name)) == NULL && keys[i].env_alias != NULL &&
		    (v = getenv(keys[i].env_alias)) != NULL)
			snprintf(name, sizeof name, "%s", keys[i].env_alias);
		if (v == NULL)
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

/* The value of keys[i] in effect, and where it comes from. */
static const char *
value_of(struct pw_ctx *ctx, int i, int *origin)
{
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

const char *
pw_config_get(struct pw_ctx *ctx, const char *key, int *origin)
{
	int	i = key_index(key);

	return i < 0 ? NULL : value_of(ctx, i, origin);
}

/*
 * Values were checked when they entered a layer, so parsing cannot fail
 * here except for a hand-edited state file; then the default holds.
 */
int64_t
pw_config_int(struct pw_ctx *ctx, const char *key)
{
	int		 i = key_index(key);
	const char	*v;
	int64_t		 n = 0;

	if (i < 0)
		return 0;
	v = value_of(ctx, i, NULL);
	if (keys[i].type == T_BOOL)
		return strcmp(v, "true") == 0;
	if (keys[i].type == T_DURATION) {
		if (pw_parse_duration(v, &n) != 0)
			pw_parse_duration(keys[i].def, &n);
	} else if (keys[i].type == T_MS) {
		if (pw_parse_ms(v, &n) != 0)
			pw_parse_ms(keys[i].def, &n);
	} else if (pw_parse_int(v, INT64_MIN, INT64_MAX, &n) != 0)
		pw_parse_int(keys[i].def, INT64_MIN, INT64_MAX, &n);
	return n;
}

double
pw_config_double(struct pw_ctx *ctx, const char *key)
{
	int	 i = key_index(key);
	double	 d = 0;

	if (i >= 0 && pw_parse_double(value_of(ctx, i, NULL), -1e300, 1e300,
	    &d) != 0)
		pw_parse_double(keys[i].def, -1e300, 1e300, &d);
	return d;
}

/* The userinfo of a URL ("user:pass@"), or NULL; *n gets its length. */
static const char *
userinfo(const char *v, size_t *n)
{
	const char	*p = strstr(v, "://"), *at;

	if (p == NULL)
		return NULL;
	p += 3;
	at = p + strcspn(p, "@/");
	if (*at != '@')
		return NULL;
	*n = at + 1 - p;
	return p;
}

char *
pw_config_shown(const char *key, const char *value)
{
	int		 i = key_index(key);
	const char	*u;
	size_t		 n;

	if (value == NULL)
		return NULL;
	if (i >= 0 && keys[i].secret == SECRET_ALL && *value != '\0')
		return pw_xstrdup("***");
	/*
	 * Gateway users: their names; a salted hash is no password, but a
	 * weak password falls to a search of its hash.
	 */
	if (i >= 0 && keys[i].type == T_USERS) {
		struct pw_buf	b;

		pw_buf_init(&b);
		for (const char *p = value, *c, *e; *p != '\0'; p = e) {
			e = p + strcspn(p, ",");
			c = memchr(p, ':', e - p);
			pw_buf_add(&b, p, (c != NULL ? c : e) - p);
			if (c != NULL)
				pw_buf_adds(&b, ":***");
			if (*e == ',')
				pw_buf_addc(&b, *e++);
		}
		return pw_buf_detach(&b);
	}
	if (i < 0 || keys[i].secret != SECRET_URL ||
	    (u = userinfo(value, &n)) == NULL)
		return pw_xstrdup(value);
	return pw_xasprintf("%.*s***@%s", (int)(u - value), value, u + n);
}

/*
 * Check key=value as it is to be stored: its value, no secret in clear
 * (the state file keeps none), a strategy that exists. 0 with *canon
 * (caller frees) and *idx, the key's index.
 */
static int
check_store(struct pw_ctx *ctx, const char *key, const char *value,
    char **canon, int *idx)
{
	int		 i, r;
	size_t		 n;
	char		 env[128];

	if ((r = pw_config_check(key, value, canon, &ctx->err)) != 0)
		return r;
	i = key_index(key);
	if ((keys[i].secret == SECRET_URL && userinfo(*canon, &n) != NULL) ||
	    (keys[i].secret == SECRET_ALL && **canon != '\0')) {
		free(*canon);
		*canon = NULL;
		env_name(keys[i].name, env, sizeof env);
		return pw_failf(&ctx->err, PW_EUSAGE, "%s: a %s is not kept "
		    "in the state file; give %s in $%s", key,
		    keys[i].secret == SECRET_URL ? "password" : "secret",
		    keys[i].secret == SECRET_URL ? "this URL" : "it", env);
	}
	if (keys[i].type == T_STRATEGY &&
	    (r = pw_pool_strategy_check(ctx, *canon)) != 0) {
		free(*canon);
		*canon = NULL;
		return pw_err_prefix(&ctx->err, "%s", key);
	}
	*idx = i;
	return 0;
}

int
pw_config_store(struct pw_ctx *ctx, const char *key, const char *value)
{
	char	*canon;
	int	 i, r;

	if ((r = check_store(ctx, key, value, &canon, &i)) != 0)
		return r;
	r = pw_store_config_put(ctx->store, keys[i].name, canon, &ctx->err);
	if (r == 0)
		layer_set(ctx->cfg, 0, i, canon);
	else
		free(canon);
	return r;
}

int
pw_config_store_many(struct pw_ctx *ctx, const char *const *names,
    const char *const *values, size_t n, size_t *bad)
{
	char	**canon = pw_xcalloc(n ? n : 1, sizeof *canon);
	int	 *idx = pw_xcalloc(n ? n : 1, sizeof *idx);
	size_t	  k;
	int	  r = 0;

	*bad = SIZE_MAX;
	for (k = 0; k < n && r == 0; k++) {
		if (values[k] != NULL)
			r = check_store(ctx, names[k], values[k], &canon[k],
			    &idx[k]);
		else if ((idx[k] = key_index(names[k])) < 0)
			r = unknown_key(names[k], &ctx->err);
		if (r != 0)
			*bad = k;
	}
	if (r == 0 && (r = pw_store_begin(ctx->store, &ctx->err)) == 0) {
		for (k = 0; k < n && r == 0; k++)
			r = pw_store_config_put(ctx->store, keys[idx[k]].name,
			    canon[k], &ctx->err);
		if (r == 0)
			r = pw_store_commit(ctx->store, &ctx->err);
		else
			pw_store_rollback(ctx->store);
	}
	for (k = 0; k < n; k++) {
		if (r == 0)
			layer_set(ctx->cfg, 0, idx[k], canon[k]);
		else
			free(canon[k]);
	}
	free(canon);
	free(idx);
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
