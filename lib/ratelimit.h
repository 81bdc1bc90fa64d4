/*
 * ratelimit.h -- the sliding-window limiter: its arithmetic, its
 * configuration (tiers, endpoints, whitelist, trusted proxies) and its
 * backends (memory, the state file, Redis).
 *
 * A counter is a fixed window of window_ms with the count of the window
 * before it. At time t, elapsed e into the current window, the sliding
 * estimate of requests over the last window_ms is
 *
 *	prev * (W - e) / W + cur
 *
 * and one more is allowed when that plus one is at most the limit. The
 * test is done in integers, prev * (W - e) + (cur + 1) * W <= L * W, so a
 * window boundary is exact. Only allowed requests count.
 *
 * Time is a monotonic clock (pw_mono_ms) for the memory and state-file
 * backends: a step of the wall clock neither resets nor stretches a
 * window. CLOCK_MONOTONIC is one clock for every process of a host, which
 * the state-file backend needs; after a reboot a stored window lies in
 * the future and is started afresh. Redis uses its own TIME, one clock for
 * every host that shares it.
 */
#ifndef PW_RATELIMIT_H
#define PW_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "internal.h"

/* At most this many counters in one check (a tier and an endpoint). */
#define PW_RL_KEYS_MAX	4

struct pw_rl_limit {
	int64_t		 limit;		/* requests per window; 0: none */
	int64_t		 window_ms;
};

struct pw_rl_state {
	int64_t		 win;		/* start of the current window */
	int64_t		 cur;
	int64_t		 prev;
};

struct pw_rl_verdict {
	int		 allowed;
	int		 failed;	/* the backend failed: fail_mode */
	int64_t		 limit;		/* of the binding counter */
	int64_t		 remaining;
	int64_t		 reset_ms;	/* until its window rolls over */
	int64_t		 retry_ms;	/* refused: until one would pass */
	int64_t		 win[PW_RL_KEYS_MAX];	/* each counter's window */
};

/*
 * Requests counted ahead that were not let through (a batch that
 * lapsed), taken back from each counter whose window is still win[i] or
 * the one after it.
 */
struct pw_rl_giveback {
	int64_t		 n;
	int64_t		 win[PW_RL_KEYS_MAX];
};

/* Bring s to the window holding now. */
void	 pw_rl_roll(struct pw_rl_state *s, int64_t now, int64_t window_ms);
/* Take back n requests counted in the window starting at win (rolled s). */
void	 pw_rl_unspend(struct pw_rl_state *s, int64_t window_ms, int64_t win,
	    int64_t n);
/*
 * Fill v from n counters rolled to now (after the increment, if there
 * was one): the binding counter is the one with the fewest remaining.
 */
void	 pw_rl_verdict(const struct pw_rl_state *s,
	    const struct pw_rl_limit *l, size_t n, int64_t now, int allowed,
	    struct pw_rl_verdict *v);
/*
 * The whole check over n rolled counters: allowed when each allows
 * commit more (one, for a peek: commit 0); then each counts them. Fills
 * v.
 */
void	 pw_rl_apply(struct pw_rl_state *s, const struct pw_rl_limit *l,
	    size_t n, int64_t now, int commit, struct pw_rl_verdict *v);

/* ----------------------------------------------------------- the limiter */

enum pw_rl_backend { PW_RL_MEMORY, PW_RL_SQLITE, PW_RL_REDIS };

struct pw_rl_opts {
	enum pw_rl_backend	 backend;
	const char		*redis_url;	/* redis://HOST[:PORT][/DB] */
	int64_t			 timeout_ms;	/* of a Redis call */
	int			 fail_open;	/* backend down: allow */
	/*
	 * sqlite and redis: at most this many requests counted at once on
	 * the backend, far below a limit (see lease_check); 0 or 1: each
	 * request is checked there.
	 */
	int64_t			 batch;
};

struct pw_rl;
/* Whether url is a Redis URL pw_rl_new takes. */
int	 pw_rl_redis_url_ok(const char *url);
int	 pw_rl_new(const struct pw_rl_opts *o, struct pw_rl **out,
	    struct pw_err *err);
void	 pw_rl_free(struct pw_rl *rl);
/*
 * Check n counters at once: keys[i] under lims[i]; with commit each
 * counts the request if all allow it, else nothing changes (a peek). st
 * is the caller's state file (the sqlite backend; one per thread). When
 * the backend fails, v says so and follows fail_mode; the call returns 0.
 * An error is returned only for bad arguments.
 */
int	 pw_rl_check(struct pw_rl *rl, struct pw_store *st,
	    const char *const *keys, const struct pw_rl_limit *lims, size_t n,
	    int commit, struct pw_rl_verdict *v, struct pw_err *err);
/* Why the backend last failed ("" if it never did); borrowed. */
const char *pw_rl_last_error(struct pw_rl *rl, char *buf, size_t n);
enum pw_rl_backend pw_rl_backend(const struct pw_rl *rl);

/*
 * The state-file backend, in store.c: the same check in one transaction;
 * commit is how many requests to count (0: a peek), gb (or NULL) what to
 * take back first.
 */
int	 pw_store_rl_check(struct pw_store *st, const char *const *keys,
	    const struct pw_rl_limit *lims, size_t n, int64_t now, int commit,
	    const struct pw_rl_giveback *gb, struct pw_rl_verdict *v,
	    struct pw_err *err);
/* The same inside a transaction of the caller's (no monotonic check). */
int	 pw_store_rl_check_txn(struct pw_store *st, const char *const *keys,
	    const struct pw_rl_limit *lims, size_t n, int64_t now, int commit,
	    struct pw_rl_verdict *v, struct pw_err *err);

/* --------------------------------------------------------- configuration */

struct pw_rl_tier {
	char			*name;
	struct pw_rl_limit	 lim;		/* limit 0: unlimited */
};

struct pw_rl_endpoint {
	char			*path;		/* "/api/v1/request" */
	struct pw_rl_limit	 lim;		/* limit 0: not limited */
};

struct pw_rl_net {
	struct sockaddr_storage	 addr;
	int			 bits;
};

struct pw_rl_config {
	char			*default_tier;
	struct pw_rl_tier	*tiers;
	size_t			 ntiers;
	struct pw_rl_endpoint	*endpoints;
	size_t			 nendpoints;
	char			**whitelist;	/* "key:NAME", address, net */
	size_t			 nwhitelist;
	struct pw_rl_net	*trusted;	/* may set X-Forwarded-For */
	size_t			 ntrusted;
};

/*
 * Parse JSON (a file of ratelimit.config, or PUT /api/v1/rate-limit/config)
 * into *c: the built-in configuration with what it gives laid over. An
 * error names the field. (In api.c, where JSON is read.)
 */
int	 pw_rl_config_parse(const char *json, size_t len,
	    struct pw_rl_config *c, struct pw_err *err);
/* 100 a minute for anyone, 50 on requests; probes are not limited. */
void	 pw_rl_config_default(struct pw_rl_config *c);
void	 pw_rl_config_release(struct pw_rl_config *c);
/* Check c as a whole (the default tier exists, names unique, ...). */
int	 pw_rl_config_check(const struct pw_rl_config *c, struct pw_err *err);
const struct pw_rl_tier *pw_rl_config_tier(const struct pw_rl_config *c,
	    const char *name);
const struct pw_rl_endpoint *pw_rl_config_endpoint(
	    const struct pw_rl_config *c, const char *path);
/* Parse "10.0.0.0/8", "::1", "127.0.0.1" into n. */
int	 pw_rl_net_parse(const char *s, struct pw_rl_net *n);
int	 pw_rl_net_match(const struct pw_rl_net *n,
	    const struct sockaddr *sa);
/*
 * The client address to limit: the socket's peer, or, when the peer is a
 * trusted proxy, the last address of X-Forwarded-For that is not itself
 * trusted (else X-Real-IP). buf gets the address as text.
 */
void	 pw_rl_client(const struct pw_rl_config *c, const struct sockaddr *peer,
	    const char *xff, const char *xreal, char *buf, size_t n);
int	 pw_rl_config_whitelisted(const struct pw_rl_config *c,
	    const char *key_name, const char *client);

/* ------------------------------------------------- pw serve's limiter */

/*
 * What pw serve needs around the limiter: the settings (ratelimit.*), the
 * configuration file, reloaded when it changes on disk (looked at every
 * few seconds) or when asked, the decision for one request, and the
 * counts for the metrics. Thread-safe.
 */
struct pw_rl_server;

struct pw_rl_who {
	const char	*key;		/* API key name, or NULL */
	const char	*tier;		/* its tier, or NULL: the default */
	const char	*client;	/* address, as pw_rl_client gives it */
};

/* Counts for the metrics, by tier or by endpoint. */
struct pw_rl_count {
	char		*name;
	int64_t		 checks;
	int64_t		 throttled;
};

/* Check durations: buckets of the Prometheus histogram, in seconds. */
#define PW_RL_HIST	10
extern const double pw_rl_hist_le[PW_RL_HIST];

struct pw_rl_stats {
	int64_t			 checks;
	int64_t			 throttled;
	int64_t			 exempt;
	int64_t			 failures;	/* backend down */
	int64_t			 backend_checks; /* on the file or Redis */
	int64_t			 hist[PW_RL_HIST + 1];	/* last: +Inf */
	double			 seconds;	/* sum of check durations */
	struct pw_rl_count	*tiers;
	size_t			 ntiers;
	struct pw_rl_count	*endpoints;
	size_t			 nendpoints;
	struct pw_rl_count	*top;		/* most throttled first */
	size_t			 ntop;
};

int	 pw_rl_server_new(struct pw_ctx *ctx, struct pw_rl_server **out);
void	 pw_rl_server_free(struct pw_rl_server *s);
/*
 * Decide for one request to endpoint (a route, as in the configuration)
 * by who; st is the calling thread's state file. *limited is 0 when
 * nothing limits it (disabled, an exempt endpoint, whitelisted): then v
 * says nothing.
 */
void	 pw_rl_server_check(struct pw_rl_server *s, struct pw_store *st,
	    const struct pw_rl_who *who, const char *endpoint,
	    struct pw_rl_verdict *v, int *limited);
/*
 * The counters of identifier ("key:NAME" or an address): its tier's and
 * those of each limited endpoint, without counting a request. *n gets
 * how many; names and verdicts are the caller's (free names).
 */
int	 pw_rl_server_status(struct pw_rl_server *s, struct pw_store *st,
	    const char *identifier, const char *tier, char ***names,
	    struct pw_rl_verdict **v, size_t *n, struct pw_err *err);
/*
 * Put c (checked; now the server's) in force, with the setting's trusted
 * proxies added (PUT); the file is left alone.
 */
void	 pw_rl_server_set(struct pw_rl_server *s, struct pw_rl_config *c);
/* Read the file again now (SIGHUP); an error keeps the configuration. */
int	 pw_rl_server_reload(struct pw_rl_server *s, struct pw_err *err);
/* The configuration in force, to render; hold it between get and put. */
const struct pw_rl_config *pw_rl_server_config_get(struct pw_rl_server *s);
void	 pw_rl_server_config_put(struct pw_rl_server *s);
int	 pw_rl_server_enabled(const struct pw_rl_server *s);
/*
 * Take up what the settings of ctx (after a change) say of limiting:
 * ratelimit.enabled, fail_mode and batch. The backend, its Redis and the
 * configuration file stay those the server started with.
 */
void	 pw_rl_server_settings(struct pw_rl_server *s, struct pw_ctx *ctx);
const char *pw_rl_server_backend(const struct pw_rl_server *s);
/* A copy of the counts; release with pw_rl_stats_release. */
void	 pw_rl_server_stats(struct pw_rl_server *s, struct pw_rl_stats *out);
void	 pw_rl_stats_release(struct pw_rl_stats *st);

#endif /* PW_RATELIMIT_H */
