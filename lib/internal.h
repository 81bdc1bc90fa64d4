/*
 * internal.h -- what lib modules share and cmd/ never sees.
 */
#ifndef PW_INTERNAL_H
#define PW_INTERNAL_H

#include <sys/socket.h>

#include "pw.h"

#define PW_SCHEMA_VERSION	3
#define PW_APPLICATION_ID	0x70770001

/* ---------------------------------------------------------------- store */

/* A proxy row as stored: credentials still sealed. */
struct pw_row {
	struct pw_proxy	 p;
	const char	*key;		/* identity, unique */
	const char	*url;		/* normalised, without credentials */
	const unsigned char *user;	/* sealed */
	size_t		 user_len;
	const unsigned char *pass;	/* sealed */
	size_t		 pass_len;
};

/*
 * A rate, "N/DURATION": at most N (1 to 10^9) in DURATION (1 s to 1 day;
 * a bare unit is one of it: "10/s"). "0" is no cap: *limit 0.
 */
int	 pw_parse_rate(const char *s, int64_t *limit, int64_t *window_ms);
/* The value of a hexadecimal digit, or -1. */
int	 pw_hex_digit(int c);

/*
 * Parse "HOST:PORT" ("[::1]:8000" for IPv6) into an address to listen on,
 * for pw serve and its gateway; PW_EUSAGE with the reason.
 */
int	 pw_listen_parse(const char *spec, struct sockaddr_storage *ss,
	    socklen_t *sl, struct pw_err *err);
int	 pw_addr_is_loopback(const struct sockaddr_storage *ss);

/* PW_OPEN_RW that makes a missing file at the first write, not at once. */
#define PW_OPEN_DEFER	(PW_OPEN_RW + 1)

int	 pw_store_open(const char *path, int mode, struct pw_store **out,
	    struct pw_err *err);
void	 pw_store_close(struct pw_store *st);
const char *pw_store_path(struct pw_store *st);
int	 pw_store_begin(struct pw_store *st, struct pw_err *err);
int	 pw_store_commit(struct pw_store *st, struct pw_err *err);
void	 pw_store_rollback(struct pw_store *st);

typedef int pw_kv_fn(void *arg, const char *key, const char *value);
int	 pw_store_config_each(struct pw_store *st, pw_kv_fn *fn, void *arg,
	    struct pw_err *err);
/* value NULL deletes. */
int	 pw_store_config_put(struct pw_store *st, const char *key,
	    const char *value, struct pw_err *err);

/* Inside a transaction: insert, or report the id of the existing row. */
int	 pw_store_proxy_insert(struct pw_store *st, const struct pw_row *r,
	    int64_t *id, int *dup, struct pw_err *err);
/* The sealed password of a proxy (*pass NULL: none); caller frees. */
int	 pw_store_proxy_pass(struct pw_store *st, int64_t id,
	    unsigned char **pass, size_t *len, struct pw_err *err);
int	 pw_store_proxy_set_pass(struct pw_store *st, int64_t id,
	    const unsigned char *pass, size_t len, int64_t now,
	    struct pw_err *err);
int	 pw_store_proxy_find(struct pw_store *st, const char *key,
	    int64_t *id, struct pw_err *err);
int	 pw_store_proxy_exists(struct pw_store *st, int64_t id,
	    struct pw_err *err);
int	 pw_store_proxy_delete(struct pw_store *st, int64_t id,
	    struct pw_err *err);
int	 pw_store_proxy_clear(struct pw_store *st, int64_t *n,
	    struct pw_err *err);
int	 pw_store_proxy_update_meta(struct pw_store *st, int64_t id,
	    const struct pw_meta *m, int64_t now, struct pw_err *err);
/*
 * Walk rows matching f (id == 0 for all, else that one id). The row is
 * borrowed for the call only.
 */
typedef int pw_row_fn(void *arg, const struct pw_row *r);
int	 pw_store_proxy_each(struct pw_store *st, const struct pw_filter *f,
	    int64_t id, pw_row_fn *fn, void *arg, struct pw_err *err);

/*
 * Selection, inside a transaction. Every query below sees only the
 * proxies eligible at now that match f and are not in ex[].
 */
struct pw_sel {
	const struct pw_filter	*f;
	const int64_t		*ex;
	size_t			 nex;
	int64_t			 now;
	int			 not_degraded;	/* leave degraded ones out */
};
/* All of them, in id order; *out is the caller's. */
int	 pw_store_candidates(struct pw_store *st, const struct pw_sel *sel,
	    struct pw_candidate **out, size_t *n, struct pw_err *err);
/*
 * The first by id after `after`, or (PW_FIRST_LEAST_USED) by window
 * count then id. PW_ENOTFOUND when none.
 */
enum { PW_FIRST_AFTER, PW_FIRST_LEAST_USED };
int	 pw_store_first(struct pw_store *st, const struct pw_sel *sel,
	    int order, int64_t after, int64_t *id, struct pw_err *err);
/* One prepared lookup by id: 1 and *c filled when eligible, else 0. */
struct pw_probe;
int	 pw_store_probe_new(struct pw_store *st, const struct pw_sel *sel,
	    struct pw_probe **out, struct pw_err *err);
int	 pw_store_probe(struct pw_probe *p, int64_t id, struct pw_candidate *c,
	    struct pw_err *err);
void	 pw_store_probe_free(struct pw_probe *p);
/* Bounds over the whole pool, eligible or not; < 0 or 0 when none. */
struct pw_bounds {
	int64_t	min_id, max_id;
	double	max_weight, min_latency_ms;
};
int	 pw_store_bounds(struct pw_store *st, struct pw_bounds *b,
	    struct pw_err *err);
typedef int pw_probe_fn(void *arg, int64_t id, struct pw_candidate *c,
    struct pw_err *err);
/*
 * Pick with a sampling strategy (random, weighted, performance) by
 * rejection over the id range in b, probing at most `tries` ids: 1 and
 * *id set when one was chosen, 0 when the caller must fall back to
 * select over every candidate, < 0 on error.
 */
int	 pw_strategy_sample(const struct pw_strategy *s,
	    const struct pw_bounds *b, pw_probe_fn *probe, void *arg,
	    struct pw_pick_env *env, int tries, int64_t *id,
	    struct pw_err *err);
/* Start a new least-used window: every window count back to 0. */
int	 pw_store_window_reset(struct pw_store *st, struct pw_err *err);
/*
 * Why nothing is eligible: counts[] = all proxies, unhealthy, cooling
 * down, expired (of those matching f), matching f, pending validation.
 */
int	 pw_store_ineligible(struct pw_store *st, const struct pw_filter *f,
	    int64_t now, int64_t counts[6], struct pw_err *err);
/* Named integers: round-robin cursors, the least-used window. 0: unset. */
int	 pw_store_rotation_get(struct pw_store *st, const char *name,
	    int64_t *value, struct pw_err *err);
int	 pw_store_rotation_put(struct pw_store *st, const char *name,
	    int64_t value, struct pw_err *err);
int	 pw_store_proxy_started(struct pw_store *st, int64_t id, int64_t now,
	    struct pw_err *err);
/* latency_ms < 0: none. PW_ENOTFOUND when there is no such proxy. */
int	 pw_store_proxy_report(struct pw_store *st, int64_t id, int outcome,
	    double latency_ms, double alpha, int64_t threshold,
	    int64_t cooldown, int64_t now, struct pw_err *err);
/*
 * Record a health check of proxy id (see S_HEALTH); *status and *consec
 * get the proxy's new status and failure run. anonymity NULL: unchanged.
 * PW_ENOTFOUND when the proxy is gone.
 */
int	 pw_store_health_record(struct pw_store *st, int64_t id, int ok,
	    double latency_ms, double alpha, int64_t threshold,
	    const char *anonymity, int64_t now, int *status, int64_t *consec,
	    struct pw_err *err);
/* Add delta to the named counter of the stats table. */
int	 pw_store_stat_add(struct pw_store *st, const char *name,
	    int64_t delta, struct pw_err *err);
/* Set a meta key to an integer (times, counts). */
int	 pw_store_meta_put(struct pw_store *st, const char *key,
	    int64_t value, struct pw_err *err);
/* The live session's proxy; PW_ENOTFOUND when none or expired. */
int	 pw_store_session_get(struct pw_store *st, const char *sid,
	    int64_t now, int64_t *proxy_id, struct pw_err *err);
int	 pw_store_session_put(struct pw_store *st, const char *sid,
	    int64_t proxy_id, int64_t now, int64_t expires_at,
	    struct pw_err *err);
int	 pw_store_session_prune(struct pw_store *st, int64_t now,
	    int64_t *removed, struct pw_err *err);
int	 pw_store_session_each(struct pw_store *st, int64_t now,
	    pw_session_fn *fn, void *arg, struct pw_err *err);

/* Cache: inside a transaction, except pw_store_cache_stats. */
int	 pw_store_proxy_refresh(struct pw_store *st, int64_t id,
	    const struct pw_row *r, int64_t now, struct pw_err *err);
/*
 * Bulk import, inside a transaction: insert n rows (or find those there
 * already) in statements of many rows, far cheaper than n inserts; ids[i]
 * gets row i's id either way. Rows inserted get ids above what
 * pw_store_max_id gave before, in order. pw_store_bulk tunes the
 * connection for it (a larger page cache).
 */
int	 pw_store_bulk(struct pw_store *st, struct pw_err *err);
int	 pw_store_proxy_insert_many(struct pw_store *st,
	    const struct pw_row *rows, size_t n, int64_t *ids,
	    struct pw_err *err);
int	 pw_store_max_id(struct pw_store *st, int64_t *max,
	    struct pw_err *err);
/* Make every proxy with an id above after pending (a validating warm). */
int	 pw_store_proxy_pend(struct pw_store *st, int64_t after,
	    struct pw_err *err);
/* Add n to the named counter of the stats table. */
int	 pw_store_stat_add(struct pw_store *st, const char *name, int64_t n,
	    struct pw_err *err);
int	 pw_store_meta_put(struct pw_store *st, const char *key,
	    int64_t value, struct pw_err *err);
/* Delete up to limit expired (PW_EVICT_TTL) or unhealthy proxies. */
int	 pw_store_evict(struct pw_store *st, int what, int64_t now,
	    int64_t limit, int64_t *n, struct pw_err *err);
int	 pw_store_cache_stats(struct pw_store *st, int64_t now,
	    struct pw_cache_stats *cs, struct pw_err *err);

/* ----------------------------------------------------------- delegation */

/* A circuit breaker of one service endpoint, as stored. */
enum { PW_BREAKER_CLOSED, PW_BREAKER_OPEN, PW_BREAKER_HALF_OPEN };
struct pw_breaker {
	int	state;
	int64_t	failures;	/* failed calls in a row */
	int64_t	since_ms;	/* when it opened or went half-open */
};
/* An endpoint never seen reads as closed. */
int	 pw_store_breaker_get(struct pw_store *st, const char *endpoint,
	    struct pw_breaker *b, struct pw_err *err);
int	 pw_store_breaker_put(struct pw_store *st, const char *endpoint,
	    const struct pw_breaker *b, struct pw_err *err);
/*
 * Inside a transaction: make an endpoint's breaker half-open at now_ms
 * when it opened (or went half-open) at or before older_ms; *won says
 * whether this caller did, and so makes the one trial call.
 */
int	 pw_store_breaker_claim(struct pw_store *st, const char *endpoint,
	    int64_t older_ms, int64_t now_ms, int *won, struct pw_err *err);

/* A service's answer as cached; the full URL sealed when it has creds. */
struct pw_svc_cached {
	int64_t		 proxy_id;
	char		*url;		/* without credentials */
	unsigned char	*sealed;	/* full URL, or NULL */
	size_t		 sealed_len;
	char		*strategy;
	char		*endpoint;
	int64_t		 expires_at;	/* 0: invalidated */
};
int	 pw_store_svc_cache_get(struct pw_store *st, const char *key,
	    struct pw_svc_cached *c, struct pw_err *err);
int	 pw_store_svc_cache_put(struct pw_store *st, const char *key,
	    const struct pw_svc_cached *c, struct pw_err *err);
/* Invalidate every answer naming proxy_id; *n (may be NULL) how many. */
int	 pw_store_svc_cache_drop(struct pw_store *st, int64_t proxy_id,
	    int64_t *n, struct pw_err *err);
/*
 * Inside a transaction: remember that the service handed out proxy_id,
 * at url (no creds), whatever the cache keeps; the records older than
 * the last max are forgotten.
 */
int	 pw_store_svc_handout(struct pw_store *st, int64_t proxy_id,
	    const char *url, const char *endpoint, int64_t max,
	    struct pw_err *err);
/*
 * A proxy the service handed out, by URL (no creds) or, url NULL, id:
 * its id, and (found_url not NULL) its URL, the caller's to free.
 */
int	 pw_store_svc_cache_find(struct pw_store *st, const char *url,
	    int64_t id, int64_t *proxy_id, char **found_url,
	    struct pw_err *err);
void	 pw_svc_cached_release(struct pw_svc_cached *c);

/* Outcomes waiting in the outbox. */
int	 pw_store_outbox_add(struct pw_store *st, const struct pw_outcome *o,
	    int64_t max, int *added, int64_t *dropped, struct pw_err *err);
/*
 * Inside a transaction: lease the oldest limit outcomes no other flush
 * holds at now_ms to this one until until_ms; *out is the caller's
 * (pw_outcomes_free). Sent ones are deleted; release gives back the rest.
 */
int	 pw_store_outbox_claim(struct pw_store *st, size_t limit,
	    int64_t now_ms, int64_t until_ms, struct pw_outcome **out,
	    size_t *n, struct pw_err *err);
int	 pw_store_outbox_release(struct pw_store *st,
	    const struct pw_outcome *v, size_t n, struct pw_err *err);
int	 pw_store_outbox_delete(struct pw_store *st,
	    const struct pw_outcome *v, size_t n, struct pw_err *err);
int	 pw_store_outbox_count(struct pw_store *st, int64_t *n,
	    struct pw_err *err);

/* API keys as stored: the hash, never the key; borrowed for a call. */
struct pw_store_key {
	int64_t			 id;
	const char		*name;
	const char		*tier;
	const unsigned char	*hash;
	size_t			 hash_len;
	int64_t			 created_at;
	int64_t			 last_used;	/* 0: never */
};
typedef int pw_key_row_fn(void *arg, const struct pw_store_key *k);
/* Inside a transaction. PW_EEXIST when the name (or hash) is taken. */
int	 pw_store_key_add(struct pw_store *st, const char *name,
	    const char *tier, const unsigned char *hash, size_t len,
	    int64_t now, struct pw_err *err);
/* PW_ENOTFOUND when there is no key of that name. */
int	 pw_store_key_delete(struct pw_store *st, const char *name,
	    struct pw_err *err);
/* fn on the key with that hash, or PW_ENOTFOUND. */
int	 pw_store_key_find(struct pw_store *st, const unsigned char *hash,
	    size_t len, pw_key_row_fn *fn, void *arg, struct pw_err *err);
int	 pw_store_key_any(struct pw_store *st, int *any, struct pw_err *err);
/*
 * Record a use at now; writes only when the last is a minute old, and
 * fails at once (not waiting) while another process holds the lock.
 */
int	 pw_store_key_used(struct pw_store *st, int64_t id, int64_t now,
	    struct pw_err *err);
/* Every key, by name. */
int	 pw_store_key_each(struct pw_store *st, pw_key_row_fn *fn, void *arg,
	    struct pw_err *err);

/*
 * What pw serve batches: a proxy's outcome counters and the state they
 * drive, read and written whole inside one flush transaction. Times 0 and
 * latency_ms < 0 are NULL in the file.
 */
struct pw_stats {
	int64_t	started, completed, succeeded, failed, consec_fail;
	double	latency_ms;
	int64_t	cooldown_until, last_used, window_count, updated_at;
};
/* PW_ENOTFOUND when the proxy is gone. */
int	 pw_store_proxy_stats_get(struct pw_store *st, int64_t id,
	    struct pw_stats *s, struct pw_err *err);
int	 pw_store_proxy_stats_put(struct pw_store *st, int64_t id,
	    const struct pw_stats *s, struct pw_err *err);
/* Write a session as given (nothing when its proxy is gone). */
int	 pw_store_session_set(struct pw_store *st, const struct pw_session *s,
	    struct pw_err *err);
/* Every named integer whose name starts with prefix. */
int	 pw_store_rotation_each(struct pw_store *st, const char *prefix,
	    void (*fn)(void *, const char *, int64_t), void *arg,
	    struct pw_err *err);
/*
 * PRAGMA data_version: it moves when another connection (any process)
 * commits, never for this connection's own commits. 0 while the file
 * does not exist.
 */
int	 pw_store_data_version(struct pw_store *st, int64_t *v,
	    struct pw_err *err);
/*
 * The pool's generation: it moves with each commit that changed what the
 * pool in memory holds (proxies, sessions, rotation, settings), not with
 * rate-limit counters, the outbox and the like. 0 for a new file.
 */
int	 pw_store_pool_gen(struct pw_store *st, int64_t *gen,
	    struct pw_err *err);
/* The generation this connection's last commit made; 0 if none. */
int64_t	 pw_store_bumped(struct pw_store *st);

/* --------------------------------------------------------------- crypto */

#define PW_KEY_BYTES	32

/*
 * Load the sealing key: from hex (64 hex digits) when given, else from
 * file, creating it (0600, directory 0700) when create is set.
 */
int	 pw_crypto_key_load(const char *hex, const char *file, int create,
	    struct pw_key **out, struct pw_err *err);
/* Whether hex (NULL: none given) is a key, without loading libsodium. */
int	 pw_crypto_key_check(const char *hex, struct pw_err *err);
void	 pw_crypto_key_free(struct pw_key *k);
/* Seal n bytes; *out (caller frees) gets nonce || box. */
int	 pw_crypto_seal(const struct pw_key *k, const void *p, size_t n,
	    unsigned char **out, size_t *outlen, struct pw_err *err);
/* Unseal; *out (caller frees, wipe first) gets a NUL-terminated string. */
int	 pw_crypto_unseal(const struct pw_key *k, const unsigned char *p,
	    size_t n, char **out, struct pw_err *err);
/* Keyed 128-bit tag of s as 32 hex digits into hex[33]. */
void	 pw_crypto_tag(const struct pw_key *k, const char *s, char hex[33]);
/*
 * Gateway passwords: *out (caller frees) gets "$b2$SALT$HASH", a salted,
 * keyed BLAKE2b of pass; pw_crypto_pass_verify says (1 or 0) whether pass
 * matches such a hash, in time that does not depend on where it differs.
 */
int	 pw_crypto_pass_hash(const char *pass, char **out, struct pw_err *err);
int	 pw_crypto_pass_is_hash(const char *s);
int	 pw_crypto_pass_verify(const char *hash, const char *pass);
/*
 * API keys: a new random key, "pw_" and 48 hex digits (192 bits), into
 * key[PW_APIKEY_LEN + 1]; and the hash that is stored for one.
 */
#define PW_APIKEY_LEN		51
#define PW_APIKEY_HASH_BYTES	32
int	 pw_crypto_apikey_new(char key[PW_APIKEY_LEN + 1], struct pw_err *err);
int	 pw_crypto_apikey_hash(const char *key, size_t len,
	    unsigned char hash[PW_APIKEY_HASH_BYTES], struct pw_err *err);
/* Constant-time equality of two hashes of n bytes: 1 when equal. */
int	 pw_crypto_equal(const unsigned char *a, const unsigned char *b,
	    size_t n);
/* Wipe n bytes. */
void	 pw_crypto_wipe(void *p, size_t n);

/* ctx helper: load the key on first use. create: may make the key file. */
int	 pw_ctx_key(struct pw_ctx *ctx, int create);

/* --------------------------------------------------------------- config */

/* Where the key comes from: $PW_SECRET_KEY or the key file path. */
const char *pw_config_secret_hex(void);
char	*pw_config_key_path(void);
/* Load the state layer from the open store. */
int	 pw_config_load_state(struct pw_ctx *ctx);
/*
 * Load it again, for a long-lived context (pw serve): what another
 * process set or unset since is seen.
 */
int	 pw_config_reload_state(struct pw_ctx *ctx);

/* ----------------------------------------------------------------- pool */

/*
 * The row a proxy is stored as (the key must be loaded when a has a
 * user): identity key, URL and sealed credentials allocated into row
 * (release with pw_pool_row_release). What pw_pool_add and pw_warm share.
 */
void	 pw_pool_row(struct pw_ctx *ctx, const struct pw_addr *a,
	    const struct pw_proxy *meta, struct pw_row *row);
void	 pw_pool_row_release(struct pw_row *row);
/*
 * Inside a transaction: when a has a password other than the one stored
 * for proxy id, store a's. 1 when it did, 0 when nothing changed.
 */
int	 pw_pool_pass_update(struct pw_ctx *ctx, int64_t id,
	    const struct pw_addr *a, int64_t now);
/*
 * Remove the proxies whose TTL has run out (what pw cache prune does
 * first), in batches; *removed counts them.
 */
int	 pw_cache_prune_expired(struct pw_ctx *ctx, int64_t *removed);
/* The name of the stats counter of an eviction reason. */
const char *pw_evict_stat(int reason);

/* Is name a strategy: built-in, sticky, geo, or a configured plugin's? */
int	 pw_pool_strategy_check(struct pw_ctx *ctx, const char *name);

/* ----------------------------------------------------------------- ssrf */

/* What an address is, for the targets of POST /api/v1/request. */
enum pw_addr_class { PW_ADDR_PUBLIC, PW_ADDR_LOOPBACK, PW_ADDR_PRIVATE,
    PW_ADDR_SHARED, PW_ADDR_LINK_LOCAL, PW_ADDR_UNSPECIFIED,
    PW_ADDR_MULTICAST, PW_ADDR_RESERVED, PW_ADDR_CLASS_COUNT };
const char *pw_addr_class_name(int c);
/* The class of an IPv4 (4 bytes) or IPv6 (16 bytes) address. */
int	 pw_addr_class4(const unsigned char b[4]);
int	 pw_addr_class6(const unsigned char b[16]);
/*
 * Whether a target of class c is refused. allow_private allows loopback,
 * private, shared and link-local ones; unspecified, multicast and
 * reserved addresses are never allowed.
 */
int	 pw_addr_forbidden(int c, int allow_private);
/*
 * Resolve the host of an http(s) URL, as libcurl reads the URL, and
 * judge every address: 0 when all are allowed; 1, with why in err, when
 * one is not (or the host is not ASCII); PW_ETARGET when the host does
 * not resolve, PW_EUSAGE when libcurl would not take the URL. Loads
 * libcurl (pw_net_init_lazy) if need be.
 */
int	 pw_ssrf_check(const char *url, int allow_private, struct pw_err *err);

/* --------------------------------------------------------------- assets */

/* share/openapi.json and share/docs.*, built in (lib/assets.c). */
extern const char	pw_asset_openapi[];
extern const size_t	pw_asset_openapi_len;
extern const char	pw_asset_docs_html[];
extern const size_t	pw_asset_docs_html_len;
extern const char	pw_asset_docs_js[];
extern const size_t	pw_asset_docs_js_len;
extern const char	pw_asset_docs_css[];
extern const size_t	pw_asset_docs_css_len;
/* What pw_pool_next and pw serve's view share. */
int	 pw_pool_resolve_pick(struct pw_ctx *ctx, const struct pw_pick *pk,
	    const struct pw_strategy **s, const struct pw_strategy **fallback);
/* The rotation name of a strategy's cursor for f; caller frees. */
char	*pw_pool_cursor_name(const struct pw_strategy *s,
	    const struct pw_filter *f);
void	 pw_pool_env_init(struct pw_ctx *ctx, struct pw_pick_env *env);
/*
 * Leave "no eligible proxy: ..." in ctx->err from the counts of
 * pw_store_ineligible.
 */
void	 pw_pool_explain(struct pw_ctx *ctx, const struct pw_sel *sel,
	    const int64_t counts[6]);

/* ----------------------------------------------------------------- view */

/*
 * pw serve's L1 view of the pool (view.c): every proxy in memory, chosen
 * from without SQL, with outcomes kept in memory and written to the state
 * file in batches by pw_view_flush. A worker's context points at it
 * (ctx->view) and then pw_pool_next and pw_pool_report use it.
 */
struct pw_view;
/* How often at most pw serve's view asks the file what others changed. */
#define PW_VIEW_CHECK_MS	5
/*
 * Open a connection of the view's own on state and load every proxy.
 * check_ms: how often at most pw_view_sync asks the file whether another
 * connection changed it.
 */
int	 pw_view_open(const char *state, const struct pw_config *cfg,
	    int64_t check_ms, struct pw_view **out, struct pw_err *err);
/* Flush what is pending (errors are logged) and free v. NULL is fine. */
void	 pw_view_close(struct pw_view *v);
/*
 * Reload when another connection (process) committed since the last
 * check; checks at most every check_ms unless force. 0, or an error.
 */
int	 pw_view_sync(struct pw_view *v, int force, struct pw_err *err);
/* Make the next pw_view_sync check, however recent the last one. */
void	 pw_view_touch(struct pw_view *v);
/* Bumped by every reload: what a worker compares to reload its config. */
uint64_t pw_view_generation(struct pw_view *v);
/* Write the outcomes, cursors, sessions and counters kept in memory. */
int	 pw_view_flush(struct pw_view *v, struct pw_err *err);
/* What is pending: outcome records not yet written. */
size_t	 pw_view_pending(struct pw_view *v);
/* pw_pool_next and pw_pool_report over the view. */
int	 pw_view_next(struct pw_ctx *ctx, const struct pw_pick *pk,
	    struct pw_proxy *out);
int	 pw_view_report(struct pw_ctx *ctx, int64_t id, int outcome,
	    double latency_ms);
/* Replace p's counters by the view's, when it holds p. */
void	 pw_view_overlay(struct pw_view *v, struct pw_proxy *p);
/* What /api/v1/health and /status count: the pool as the view holds it. */
struct pw_view_counts {
	int64_t	total, usable, cooling, expired;
	int64_t	by_status[PW_STATUS_COUNT];
};
void	 pw_view_counts(struct pw_view *v, int64_t now,
	    struct pw_view_counts *c);
/* Drop expired sessions from memory (the file's are pruned by flush). */
void	 pw_view_prune(struct pw_view *v, int64_t now);
/* The API server's view, which its gateway shares. */
struct pw_view *pw_serve_view(struct pw_server *s);

/*
 * pw serve's background work (housekeep.c), each on a connection of its
 * own: a flusher that writes the view's batch at least every second and
 * prunes expired proxies every serve.prune_interval, and, when
 * serve.health_interval is set, a thread that health-checks the pool.
 */
struct pw_housekeep;
int	 pw_housekeep_start(const char *state, const struct pw_config *cfg,
	    struct pw_view *v, struct pw_housekeep **out, struct pw_err *err);
/* Read the settings again now (SIGHUP). */
void	 pw_housekeep_reload(struct pw_housekeep *h);
/* Stop and join the threads (a health run stops at its next result). */
void	 pw_housekeep_stop(struct pw_housekeep *h);

/*
 * A connection of a long-lived process (pw serve). It reads through
 * SQLite's page cache, not a memory map: a process that scans the whole
 * file now and then would keep every page of it resident through the
 * map. And it leaves checkpoints to pw_store_checkpoint, called by one
 * thread in the background, instead of making the commit that crosses
 * SQLite's threshold (one request in a thousand) pay for one.
 */
int	 pw_store_long_lived(struct pw_store *st, struct pw_err *err);
/* Copy what the WAL holds into the file, as far as readers allow. */
void	 pw_store_checkpoint(struct pw_store *st);
/* How many rows this connection's statements changed, ever. */
int64_t	 pw_store_total_changes(struct pw_store *st);
/* Free the libcurl handle a long-lived context kept (ctx->curl). */
void	 pw_fetch_release(struct pw_ctx *ctx);

/*
 * What pw reads of a remote pw serve's answers (service.c); external for
 * tests/fuzz/fuzz_response.c.
 *
 * pw_service_answer_parse: an HTTP answer in in[0..n) as read so far, eof
 * when the peer closed. 1 when it is whole (its Content-Length read, or
 * eof): *status (100 to 999) and the body at in + *body_off, *body_len
 * bytes. 0 when more is to come; -1 when it is not an HTTP answer.
 *
 * pw_service_offer_parse: the proxy in the answer to POST
 * /api/v1/proxy/request. 0 with *p (pw_proxy_release), *url (the proxy
 * URL as given, credentials and all: pw_secret_free), *ttl (seconds, 0
 * to a year) and strategy (NUL-terminated, cut to sn; left alone when
 * the answer has none); or -1 with why, one line.
 *
 * pw_service_reply_why: "HTTP <status>", and the envelope's error
 * message when the body has one.
 */
int	 pw_service_answer_parse(const char *in, size_t n, int eof,
	    long *status, size_t *body_off, size_t *body_len);
int	 pw_service_offer_parse(const char *body, size_t len,
	    struct pw_proxy *p, char **url, int64_t *ttl, char *strategy,
	    size_t sn, char *why, size_t wn);
void	 pw_service_reply_why(long status, const char *body, size_t len,
	    char *why, size_t n);

/*
 * The anonymity grade of a proxy from a judge's echo of the request it
 * received ({"headers": {...}}), local_ip the address we connected from
 * (may be NULL): "transparent", "anonymous", "elite", or NULL when the
 * answer is not such an echo (health.c; needs cJSON loaded).
 */
const char *pw_health_grade(const char *body, size_t len,
	    const char *local_ip);

/*
 * What POST /api/v1/request makes of a target's answer (api.c; needs
 * cJSON loaded). pw_api_headers_text: the header fields of the last
 * response in a block of them, as the JSON object the API answers with
 * (caller frees). pw_api_url_join: where a redirect from base to
 * Location loc goes, or NULL when that is not an http(s) URL (caller
 * frees).
 */
char	*pw_api_headers_text(const char *p, size_t n);
char	*pw_api_url_join(const char *base, const char *loc);

/* ---------------------------------------------------------------- utils */

int	 pw_mkdirs(const char *dir, int mode, struct pw_err *err);

#endif /* PW_INTERNAL_H */
