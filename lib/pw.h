/*
 * pw.h -- the public face of libpw, the proxy-pool library behind pw(1).
 *
 * Conventions, stated once:
 *
 * - Every function that can fail returns 0 on success or a negative
 *   enum pw_code, and leaves a one-line message "<what>: <why>" in the
 *   struct pw_err it was given. The library never prints and never exits.
 * - A returned "char *" or "struct pw_x *" belongs to the caller, who frees
 *   it with the matching _free (which accepts NULL). A "const char *" is
 *   borrowed; its lifetime is stated beside the function.
 * - Out-parameters are written only on success.
 * - Secrets (passwords) are wiped before their memory is freed.
 */
#ifndef PW_H
#define PW_H

#include <stddef.h>
#include <stdint.h>

#include "pw-strategy.h"

#define PW_VERSION "0.1.0"

/* Error codes. cmd/ maps each to an exit status in one place. */
enum pw_code {
	PW_OK = 0,
	PW_EFAIL = -1,		/* generic failure (exit 1) */
	PW_EUSAGE = -2,		/* bad user input (exit 2) */
	PW_ENOPROXY = -3,	/* no eligible proxy (exit 3) */
	PW_EALLFAILED = -4,	/* every proxy tried failed (exit 4) */
	PW_ETARGET = -5,	/* target error (exit 5) */
	PW_ENOTFOUND = -6,	/* no such proxy / key / session (exit 1) */
	PW_EEXIST = -7,		/* already exists (exit 1) */
	PW_ESTATE = -8,		/* state file unusable (exit 1) */
	PW_EBUSY = -9,		/* lock held by another run (exit 75) */
	PW_ENOMEM = -10,	/* out of memory (exit 1) */
	PW_ERATE = -11		/* over a rate cap, not waiting (exit 75) */
};

struct pw_err {
	int	code;
	char	msg[2048];
};

/*
 * Record an error and return its code, so "return pw_failf(err, ...)"
 * reads naturally. err may be NULL.
 */
int	pw_failf(struct pw_err *err, int code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Prefix the message already in err with "<what>: ". Returns err->code. */
int	pw_err_prefix(struct pw_err *err, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	pw_err_clear(struct pw_err *err);

/*
 * Logging. The library reports warnings and verbose detail through a
 * callback that the caller installs; without one, they are dropped.
 */
enum pw_log_level { PW_LOG_ERROR, PW_LOG_WARN, PW_LOG_INFO, PW_LOG_DEBUG };
typedef void pw_log_fn(void *arg, int level, const char *msg);
void	pw_log_set(pw_log_fn *fn, void *arg, int max_level);
/*
 * Put ctx (borrowed until it is set again; NULL: nothing) and ": " before
 * every message this thread logs from now on: pw serve names the request.
 */
void	pw_log_context(const char *ctx);
void	pw_log(int level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* Small helpers shared by lib and cmd. */
void	*pw_xmalloc(size_t n);
void	*pw_xcalloc(size_t n, size_t m);
void	*pw_xrealloc(void *p, size_t n);
char	*pw_xstrdup(const char *s);
char	*pw_xstrndup(const char *s, size_t n);
char	*pw_xasprintf(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
/* Wall-clock time in seconds and milliseconds; PW_NOW overrides in tests. */
int64_t	 pw_now(void);
int64_t	 pw_now_ms(void);
/* Monotonic milliseconds. */
int64_t	 pw_mono_ms(void);
/* The directory part of path ("." when none). Caller frees. */
char	*pw_dirname(const char *path);
/* Parse a decimal integer in [min, max]; 0 or PW_EUSAGE. */
int	 pw_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
/* Parse a decimal real number in [min, max]; 0 or PW_EUSAGE. */
int	 pw_parse_double(const char *s, double min, double max, double *out);
/* v in the fewest digits that read back as v: 0.1, not 0.10000000000000001. */
void	 pw_fmt_double(char buf[32], double v);
/* Parse "90", "90s", "15m", "2h", "7d" into seconds; 0 or PW_EUSAGE. */
int	 pw_parse_duration(const char *s, int64_t *out);
/* Parse "250ms", "0.5", "2s" (seconds unless "ms") into ms; 0 or PW_EUSAGE. */
int	 pw_parse_ms(const char *s, int64_t *out);

/*
 * Growable string: never NULL after pw_buf_init, always NUL-terminated.
 */
struct pw_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};
void	pw_buf_init(struct pw_buf *b);
void	pw_buf_release(struct pw_buf *b);
void	pw_buf_reset(struct pw_buf *b);
/* Make room for n more bytes (and the NUL) at once. */
void	pw_buf_grow(struct pw_buf *b, size_t n);
void	pw_buf_add(struct pw_buf *b, const void *p, size_t n);
/* Whether p[0..n) is valid UTF-8 without NUL (JSON can carry it as text). */
int	pw_utf8_text(const void *p, size_t n);
/*
 * Why s cannot be a label (a source or region name), or NULL when it can:
 * a label is valid UTF-8 without control characters (C0, DEL, C1), for
 * it is printed one a line (--plain), in JSON and in Prometheus labels
 * as it is. The reason is a static string ("contains a control
 * character", "not valid UTF-8").
 */
const char *pw_label_why(const char *s);
/* Whether s may be a session id: 1 to 256 bytes of a label's text. */
int	pw_session_ok(const char *s);
void	pw_buf_adds(struct pw_buf *b, const char *s);
void	pw_buf_addc(struct pw_buf *b, char c);
void	pw_buf_addf(struct pw_buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Append s[0..n) as a quoted, escaped JSON string. */
void	pw_buf_json(struct pw_buf *b, const char *s, size_t n);
/* Hand the data to the caller (who frees it) and leave b empty. */
char	*pw_buf_detach(struct pw_buf *b);

/* ---------------------------------------------------------------- proxy */

enum pw_scheme {
	PW_HTTP, PW_HTTPS, PW_SOCKS4, PW_SOCKS4A, PW_SOCKS5, PW_SOCKS5H,
	PW_SCHEME_COUNT
};

/*
 * A parsed proxy address. user and pass are NULL when absent and are
 * stored decoded (not percent-encoded).
 */
struct pw_addr {
	enum pw_scheme	 scheme;
	char		*host;	/* lower-case; IPv6 without brackets */
	int		 port;
	char		*user;
	char		*pass;
};

/*
 * Parse a proxy URL ("socks5://u:p@host:1080", "[::1]:3128", "host:8080")
 * into a. "host:port" alone means http; default ports are filled in.
 * On error a is untouched and err says what is wrong with the input
 * (the input itself is quoted, with any password masked).
 */
int	 pw_addr_parse(const char *url, struct pw_addr *a, struct pw_err *err);
void	 pw_addr_release(struct pw_addr *a);
/*
 * Format a as a normalised URL. creds: 0 omits credentials, 1 masks them
 * as "***", 2 includes them percent-encoded. Caller frees.
 */
enum { PW_CREDS_NONE, PW_CREDS_MASK, PW_CREDS_SHOW };
char	*pw_addr_format(const struct pw_addr *a, int creds);
const char *pw_scheme_name(enum pw_scheme s);
int	 pw_scheme_parse(const char *name, enum pw_scheme *out);
int	 pw_scheme_default_port(enum pw_scheme s);
/* Mask any "user:pass@" in a free-form URL string. Caller frees. */
char	*pw_redact_url(const char *url);

/* ----------------------------------------------------------------- core */

struct pw_store;
struct pw_config;
struct pw_key;
struct pw_view;

/*
 * The library context: the state file, the settings and the last error.
 * One per thread; it is not shared.
 */
/* A xoshiro256** generator: fast, small, seedable for tests. */
struct pw_rng {
	uint64_t	s[4];
};
/* Seed r; seed 0 takes one from the system. */
void	 pw_rng_seed(struct pw_rng *r, uint64_t seed);
/* The next uniform 64-bit number; rng is a struct pw_rng *. */
uint64_t pw_rng_next(void *rng);

struct pw_ctx {
	struct pw_store		*store;
	struct pw_config	*cfg;
	struct pw_key		*key;		/* loaded when first needed */
	struct pw_rng		 rng;
	int			 rng_seeded;
	struct pw_err		 err;
	struct pw_view		*view;		/* pw serve's pool in memory */
	void			*curl;		/* a handle kept for reuse */
};

enum pw_open_mode { PW_OPEN_NONE, PW_OPEN_RO, PW_OPEN_RW };

/*
 * Open the state file at path (see pw_config_state_path) for mode. A
 * missing file reads as an empty pool; with PW_OPEN_RW it is created
 * (directory 0700, file 0600) at the first write, so that a call that
 * refuses its input leaves none behind. A corrupt, foreign or newer file
 * is refused with PW_ESTATE and left untouched.
 */
int	 pw_open(struct pw_ctx *ctx, const char *path, int mode);
void	 pw_close(struct pw_ctx *ctx);

/* --------------------------------------------------------------- config */

enum pw_origin { PW_ORIGIN_DEFAULT, PW_ORIGIN_STATE, PW_ORIGIN_ENV,
    PW_ORIGIN_FLAG };

struct pw_config *pw_config_new(void);
/* A copy of every layer of c, for another thread's context. */
struct pw_config *pw_config_dup(const struct pw_config *c);
void	 pw_config_free(struct pw_config *c);
/* Resolve the state file path: flag > $PW_STATE > XDG default. */
char	*pw_config_state_path(const char *flag);
/* Read PW_* variables into the env layer; bad ones are errors. */
int	 pw_config_load_env(struct pw_config *c, struct pw_err *err);
/* Set a value at the flag layer (command-line -c or a typed option). */
int	 pw_config_set_flag(struct pw_config *c, const char *key,
	    const char *value, struct pw_err *err);
/* Check key and value; fill *canon (caller frees) with the stored form. */
int	 pw_config_check(const char *key, const char *value, char **canon,
	    struct pw_err *err);
/* Effective value of key (borrowed until the config changes). */
const char *pw_config_get(struct pw_ctx *ctx, const char *key, int *origin);
int64_t	 pw_config_int(struct pw_ctx *ctx, const char *key);
double	 pw_config_double(struct pw_ctx *ctx, const char *key);
/* Persist key=value in the state file, after validation. */
int	 pw_config_store(struct pw_ctx *ctx, const char *key,
	    const char *value);
int	 pw_config_unstore(struct pw_ctx *ctx, const char *key);
/*
 * Persist names[i]=values[i] (NULL: unset) for i < n, each checked as
 * pw_config_store checks one, every one before any is written; then all
 * in one transaction, or none. On a refusal *bad is the index of the
 * name at fault (SIZE_MAX when none was: the state file failed).
 */
int	 pw_config_store_many(struct pw_ctx *ctx, const char *const *names,
	    const char *const *values, size_t n, size_t *bad);

struct pw_config_key {
	const char	*name;
	const char	*type;		/* "int", "real", "duration", ... */
	const char	*def;
	const char	*help;
	int		 secret;	/* list it as "***" when set */
};
/* The table of known keys, NULL-terminated by name. */
const struct pw_config_key *pw_config_keys(void);
const char *pw_origin_name(int origin);
/* value as it may be shown: a secret's password masked. Caller frees. */
char	*pw_config_shown(const char *key, const char *value);

/* ----------------------------------------------------------------- pool */

/*
 * PW_PENDING: imported by a validating warm and not checked yet; like
 * unhealthy, never selected, until a health check passes.
 */
enum pw_status { PW_UNKNOWN, PW_HEALTHY, PW_DEGRADED, PW_UNHEALTHY,
    PW_PENDING, PW_STATUS_COUNT };
const char *pw_status_name(int s);
int	 pw_status_parse(const char *s, int *out);

struct pw_proxy {
	int64_t		 id;
	struct pw_addr	 addr;		/* user/pass unsealed only on demand */
	int		 has_creds;
	char		*source;
	char		*country;
	char		*region;
	int		 status;
	char		*anonymity;
	double		 weight;	/* < 0: unset */
	int64_t		 added_at, updated_at, expires_at, last_checked,
			 last_used, cooldown_until;
	int64_t		 started, completed, succeeded, failed, consec_fail;
	double		 latency_ms;	/* EMA; < 0: no data */
	int64_t		 window_count;	/* started in this window */
};
void	 pw_proxy_release(struct pw_proxy *p);

/* What to attach to proxies being added. NULL / negative: unset. */
struct pw_meta {
	const char	*source;
	const char	*country;
	const char	*region;
	double		 weight;
	int64_t		 ttl;		/* seconds; 0: never expires */
};

enum pw_add_result { PW_ADDED, PW_DUPLICATE, PW_UPDATED };

/*
 * Add n parsed addresses in one transaction. result[i] and id[i] say what
 * happened to each: a duplicate is skipped (its existing id is returned),
 * never an error for the rest.
 */
int	 pw_pool_add(struct pw_ctx *ctx, const struct pw_addr *addrs,
	    size_t n, const struct pw_meta *meta, int *result, int64_t *id);

/* Validate an ISO 3166-1 alpha-2 code; canon gets the upper-case form. */
int	 pw_country_check(const char *cc, char canon[3], struct pw_err *err);

/*
 * Resolve an argument that is a proxy id or a proxy URL to an id.
 * PW_ENOTFOUND when there is none.
 */
int	 pw_pool_resolve(struct pw_ctx *ctx, const char *arg, int64_t *id);
/* Remove the given ids in one transaction; all must exist. */
int	 pw_pool_remove(struct pw_ctx *ctx, const int64_t *ids, size_t n);
/* Remove every proxy; *removed gets the count. */
int	 pw_pool_clear(struct pw_ctx *ctx, int64_t *removed);
/* Load one proxy; with secrets, user/pass are unsealed into p->addr. */
int	 pw_pool_get(struct pw_ctx *ctx, int64_t id, int secrets,
	    struct pw_proxy *p);

struct pw_filter {
	int		 status;	/* -1: any */
	int		 scheme;	/* -1: any */
	const char	*source;
	const char	*country;
	const char	*region;
	const char	*anonymity;
	double		 max_latency_ms;	/* <= 0: any */
	int		 unmeasured;	/* only proxies without latency data */
};
void	 pw_filter_init(struct pw_filter *f);

/*
 * Call fn for each proxy that matches f, in id order. The proxy is
 * borrowed for the call only. fn returning non-zero stops the walk and
 * that value is returned.
 */
typedef int pw_proxy_fn(void *arg, const struct pw_proxy *p);
int	 pw_pool_each(struct pw_ctx *ctx, const struct pw_filter *f,
	    int secrets, pw_proxy_fn *fn, void *arg);

/* Change metadata of one proxy; unset fields of meta are left alone. */
int	 pw_pool_set(struct pw_ctx *ctx, int64_t id, const struct pw_meta *m);

/* ------------------------------------------------------------ selection */

/*
 * The built-in strategies that pick from candidates (round-robin, random,
 * weighted, least-used, performance) by name, or NULL. "sticky" and "geo"
 * are not here: they wrap one of these (see pw_pool_next).
 */
const struct pw_strategy *pw_strategy_builtin(const char *name);
/* Every strategy name pw knows without plugins, space-separated. */
const char *pw_strategy_names(void);
/*
 * Load the plugin at path. The strategy stays valid until the process
 * ends (plugins are never unloaded). PW_EUSAGE with the reason when the
 * file is not a usable plugin.
 */
int	 pw_strategy_load(const char *path, const struct pw_strategy **out,
	    struct pw_err *err);
/*
 * Pick among n candidates with s. For performance, candidates without
 * latency data go to fallback first (NULL: they are skipped, and an error
 * when no candidate has any). Returns an index, or a negative code with
 * err filled. env->note may be set for verbose output.
 */
long	 pw_strategy_pick(const struct pw_strategy *s,
	    const struct pw_strategy *fallback, const struct pw_candidate *c,
	    size_t n, struct pw_pick_env *env, struct pw_err *err);

/* What pw_pool_next is asked for. */
struct pw_pick {
	const char	*strategy;	/* NULL: the "strategy" setting */
	const char	*plugin;	/* load and use this plugin, or NULL */
	const char	*session;	/* sticky session id, or NULL */
	struct pw_filter filter;	/* country, region, scheme, ... */
	const int64_t	*exclude;	/* ids not to use this time */
	size_t		 nexclude;
	int		 secrets;	/* unseal credentials into out */
	/*
	 * At most rate_limit requests through one proxy per rate_window_ms
	 * (fetch.rate_per_proxy; 0: no cap), counted across processes: one
	 * over it is passed over. When all are, PW_ERATE and, if set,
	 * *rate_retry_ms says in how long one may go.
	 */
	int64_t		 rate_limit;
	int64_t		 rate_window_ms;
	int64_t		*rate_retry_ms;
};

/*
 * Choose a proxy as pk says, mark it started and fill *out (release with
 * pw_proxy_release), in one transaction. PW_ENOPROXY, with the counts of
 * why, when no proxy is eligible; PW_EUSAGE for an unknown strategy or a
 * strategy without what it needs (sticky without a session, geo without
 * a country or region).
 */
int	 pw_pool_next(struct pw_ctx *ctx, const struct pw_pick *pk,
	    struct pw_proxy *out);

/*
 * Record the outcome of a request through proxy id: counters, the EMA of
 * latency (latency_ms < 0: none), consecutive failures and cooldown. A
 * neutral outcome (the target failed, not the proxy) only counts the
 * request as completed.
 */
enum pw_report { PW_REPORT_FAIL, PW_REPORT_OK, PW_REPORT_NEUTRAL };
int	 pw_pool_report(struct pw_ctx *ctx, int64_t id, int outcome,
	    double latency_ms);
struct pw_session {
	const char	*id;
	int64_t		 proxy_id;
	int64_t		 created_at, last_used, expires_at;
	int64_t		 requests, failovers;
};
typedef int pw_session_fn(void *arg, const struct pw_session *s);
/* Walk the live sessions in id order; s is borrowed for the call. */
int	 pw_session_each(struct pw_ctx *ctx, pw_session_fn *fn, void *arg);

/* ---------------------------------------------------------------- fetch */

/* Whose fault a failed attempt was. */
enum pw_fail_kind { PW_FAIL_NONE, PW_FAIL_PROXY, PW_FAIL_TARGET };

/* One request, as pw fetch takes it. Strings are borrowed. */
struct pw_fetch_opts {
	const char		 *url;
	const char		 *method;	/* NULL: GET (POST with data) */
	const char *const	 *headers;	/* "Name: value" */
	size_t			  nheaders;
	const void		 *body;
	size_t			  body_len;
	int			  has_body;
	int			  head;		/* HEAD request (-I) */
	int			  follow;	/* follow redirects (-L) */
	long			  max_redirs;
	int64_t			  timeout_ms;	/* whole attempt; 0: none */
	int64_t			  connect_timeout_ms;
	int			  insecure;	/* -k: no TLS verification */
	const char		 *cacert;
	const char		 *user_agent;
	int			  compressed;
	int			  retries;	/* proxies to try; 0: setting */
	const long		 *retry_on;	/* statuses that fail a proxy */
	size_t			  nretry_on;
	const char		 *proxy;	/* use this one, not the pool */
	struct pw_pick		  pick;		/* strategy, session, filters */
	/* Over fetch.rate_per_host or _per_proxy: PW_ERATE, no wait. */
	int			  no_wait;
	/* Proxies in the result and its attempts with credentials. */
	int			  show_secrets;
	/* Fill the result's libcurl figures (pw fetch's -w, --json). */
	int			  figures;
	/*
	 * The final response: its header block, once, before the body; then
	 * the body as it arrives. Non-zero from either stops the transfer.
	 */
	int			(*on_header)(void *arg, const char *p,
				    size_t n);
	int			(*on_body)(void *arg, const void *p, size_t n);
	/*
	 * Optional: libcurl has handed over all it has read and is about to
	 * wait for more, so write out what is held. Non-zero stops it.
	 */
	int			(*on_flush)(void *arg);
	void			 *arg;
};

struct pw_attempt {
	int64_t		 proxy_id;	/* 0: --proxy, not from the pool */
	char		*proxy;		/* URL, credentials masked */
	int		 kind;		/* enum pw_fail_kind */
	char		*error;		/* NULL when it worked */
	long		 status;	/* HTTP status, 0 when none */
	double		 ms;
	int		 timed_out;	/* the attempt ran out of time */
	int		 path;		/* enum pw_path: who chose it */
};

struct pw_fetch_result {
	long		 status;
	int64_t		 proxy_id;	/* the proxy that answered */
	char		*proxy;		/* its URL, credentials masked */
	struct pw_attempt *attempts;
	size_t		 nattempts;
	int		 body_started;
	/*
	 * The last attempt as libcurl saw it, for curl's -w variables of
	 * the same names: times in microseconds from its start, sizes in
	 * bytes, speeds in bytes a second. remote_ip and remote_port are
	 * those of the last connection: the proxy's.
	 */
	int64_t		 time_namelookup, time_connect, time_appconnect;
	int64_t		 time_pretransfer, time_starttransfer, time_redirect;
	int64_t		 time_total;
	int64_t		 size_download, size_upload;
	int64_t		 speed_download, speed_upload;
	long		 size_header, size_request;
	long		 num_redirects, num_connects;
	long		 remote_port, local_port;
	char		*remote_ip, *local_ip;	/* NULL: none */
	const char	*http_version;	/* "0" "1" "1.1" "2" "3" (static) */
	char		*scheme;	/* as libcurl names it, or NULL */
	char		*method;
	/* The last URL asked for; its password masked (see show_secrets). */
	char		*url_effective;
	char		*content_type;
	/*
	 * The response headers of the last attempt, as libcurl gave them
	 * (every response of it, redirects first), up to the body; NULL
	 * when none came.
	 */
	char		*headers;
	size_t		 headers_len;
	/* The last attempt stopped at max_redirs (curl's exit status 47). */
	int		 redirs_exceeded;
	int		 delegated;	/* a service was configured */
	int		 path;		/* enum pw_path of the last attempt */
	char		*fallback_why;	/* why the service was not used */
};

/*
 * Fetch o->url through the pool, trying up to o->retries proxies while
 * they fail before any output. Every attempt is recorded in the state
 * file. res is filled even on failure (release it either way).
 * PW_ENOPROXY: none eligible; PW_EALLFAILED: every proxy tried failed;
 * PW_ETARGET: the target failed (DNS, timeout, TLS); 0 for any HTTP
 * status.
 */
int	 pw_fetch(struct pw_ctx *ctx, const struct pw_fetch_opts *o,
	    struct pw_fetch_result *res);
void	 pw_fetch_result_release(struct pw_fetch_result *res);
/*
 * A block of response headers as libcurl gives them (every response of
 * the transfer: redirects and 100 Continue first): the last response's
 * fields as a JSON object appended to out, names in lower case, a
 * repeated name's values joined by ", " in its first place; and the
 * value of one field by its lower-case name, or NULL (caller frees).
 */
void	 pw_headers_json(struct pw_buf *out, const char *block, size_t n);
char	*pw_header_get(const char *block, size_t n, const char *name);
/*
 * As curl's -w %header{NAME}: the value of the first field of that name
 * (any case) in the last response of the block, as it came but for the
 * white space around it; NULL when there is none (caller frees).
 */
char	*pw_header_first(const char *block, size_t n, const char *name);

/* --------------------------------------------------------------- health */

/*
 * Health checks: each proxy is asked for a judge URL (a GET through it,
 * or with PW_HEALTH_CONNECT only the tunnel or SOCKS handshake), many at
 * once. A pass makes the proxy healthy and clears its failure run; a
 * failure makes it degraded (still eligible, chosen after the others),
 * or unhealthy (not eligible) at health.failure_threshold failures in a
 * row. Results are written in batches, one short transaction each, so
 * other pw processes are never held up for long.
 */
enum pw_health_mode { PW_HEALTH_GET, PW_HEALTH_CONNECT };

/*
 * The run lock: one health run per state file at a time. NONE does not
 * take it; TRY fails at once with PW_EBUSY when another run holds it;
 * WAIT waits for it. It is an flock(2) on "<state file>.health.lock",
 * released by the kernel when the holder exits, however it ends.
 */
enum pw_health_lock_mode { PW_HEALTH_LOCK_NONE, PW_HEALTH_LOCK_TRY,
    PW_HEALTH_LOCK_WAIT };

/* The outcome of one proxy's check, borrowed for the callback only. */
struct pw_health_result {
	int64_t		 id;
	const char	*proxy;		/* URL, credentials masked */
	int		 ok;
	int		 status;	/* enum pw_status after the check */
	int64_t		 consec_fail;	/* failed checks in a row now */
	double		 latency_ms;	/* < 0 when it failed */
	long		 http_status;	/* 0: none */
	const char	*judge;		/* the judge of the last attempt */
	const char	*anonymity;	/* graded now, or NULL */
	const char	*error;		/* why it failed; NULL when ok */
	int		 evicted;	/* removed (evict) */
};

struct pw_health_progress {
	size_t		 done, total, healthy;
	double		 elapsed_s;
};

/*
 * What a run does. Zero (pw_health_opts_init) means: judges from
 * health.urls, else health.url; concurrency and timeout from the
 * settings; a GET that passes on any 2xx; no grading, no eviction, no
 * lock. Strings are borrowed for the run.
 */
struct pw_health_opts {
	const char *const	*urls;		/* judges; NULL: settings */
	size_t			 nurls;
	int			 concurrency;	/* 0: health.concurrency */
	int64_t			 timeout_ms;	/* 0: health.timeout */
	int			 mode;		/* enum pw_health_mode */
	long			 expect_status;	/* 0: any 2xx */
	const char		*expect_body;	/* POSIX ERE, or NULL */
	int			 anonymity;	/* grade with an echo judge */
	int			 evict;		/* remove unhealthy ones */
	int			 lock;		/* enum pw_health_lock_mode */
	const char		*cacert;	/* CA file for https judges */
	int			 insecure;	/* no TLS verification */
	/*
	 * Called once per checked proxy after its result is stored;
	 * non-zero stops the run (PW_EFAIL). NULL: no calls.
	 */
	int			(*on_result)(void *arg,
				    const struct pw_health_result *r);
	/* Called about every 100 ms and once at the end. */
	void			(*on_progress)(void *arg,
				    const struct pw_health_progress *p);
	void			 *arg;
};

struct pw_health_summary {
	size_t		 total;		/* ids asked for */
	size_t		 checked;	/* checked and stored */
	size_t		 gone;		/* removed meanwhile: not checked */
	size_t		 healthy, degraded, unhealthy, evicted;
	double		 p50_ms, p95_ms;	/* of passes; < 0: none */
	double		 elapsed_s;
};

void	 pw_health_opts_init(struct pw_health_opts *o);

/*
 * Take the run lock as how says (TRY or WAIT) and hold it until
 * pw_health_unlock (or the process ends): for a caller that must choose
 * the proxies to check under the lock, then runs with lock NONE.
 * PW_EBUSY, naming the holder's pid, when TRY finds it held.
 */
struct pw_health_lock;
int	 pw_health_lock(struct pw_ctx *ctx, int how,
	    struct pw_health_lock **out);
void	 pw_health_unlock(struct pw_health_lock *l);

/*
 * The ids of the proxies matching f (NULL: all) that were not checked in
 * the last older_than seconds (0: regardless), in id order, into *ids
 * (caller frees) and *n.
 */
int	 pw_health_select(struct pw_ctx *ctx, const struct pw_filter *f,
	    int64_t older_than, int64_t **ids, size_t *n);

/*
 * Check the n proxies ids[] as o says and record each result. Ids that
 * no longer exist are skipped (counted as gone). Fills *sum when the run
 * completed, whatever the proxies' health: 0. PW_EUSAGE for bad options
 * (no judge, a judge that is not http(s), a bad regular expression),
 * before anything is checked or written; PW_EBUSY when the lock is
 * held (TRY); PW_EFAIL when on_result stopped the run.
 */
int	 pw_health_run(struct pw_ctx *ctx, const struct pw_health_opts *o,
	    const int64_t *ids, size_t n, struct pw_health_summary *sum);
/*
 * The checks pw_health_run makes of o before it starts, alone: for a
 * caller that must refuse bad options before it writes anything.
 * PW_EUSAGE with the same message, or 0.
 */
int	 pw_health_check_opts(struct pw_ctx *ctx,
	    const struct pw_health_opts *o);

/* --------------------------------------------------------------- ingest */

/*
 * Proxy lists: txt (one URL a line, "#" comments), csv (a header row
 * naming url or host, port, scheme, username, password, country, region,
 * source, weight, expires_at columns), json (an array of objects with
 * those keys, or of URL strings) and jsonl (one such object or string a
 * line). The parsers are pure: bytes in, records out through callbacks.
 */
enum pw_format { PW_FMT_AUTO, PW_FMT_TXT, PW_FMT_CSV, PW_FMT_JSON,
    PW_FMT_JSONL, PW_FMT_COUNT };
const char *pw_format_name(int f);
int	 pw_format_parse(const char *s, int *out);
/* The format a file name's extension says, or PW_FMT_AUTO. */
int	 pw_format_from_name(const char *name);
/* The format the first bytes of a list look like (never AUTO). */
int	 pw_format_sniff(const void *p, size_t n);

/* A line or a JSON element longer than this is rejected, not buffered. */
#define PW_INGEST_MAX_RECORD	8192

/*
 * One valid record. addr belongs to the callback, which releases it; the
 * strings are borrowed for the call. Unset: NULL, "", weight < 0,
 * expires_at 0.
 */
struct pw_record {
	struct pw_addr	 addr;
	char		 country[3];	/* canonical upper case */
	const char	*region;
	const char	*source;
	double		 weight;
	int64_t		 expires_at;
	long		 line;		/* where the record starts */
};
/* Non-zero stops the parse and is returned by feed/end. */
typedef int pw_record_fn(void *arg, struct pw_record *r);
/* A record that was skipped, and why (one line, no secret in it). */
typedef void pw_reject_fn(void *arg, long line, const char *why);

struct pw_ingest;
/* format PW_FMT_AUTO: sniffed from the first bytes fed. */
struct pw_ingest *pw_ingest_new(int format, pw_record_fn *fn,
	    pw_reject_fn *reject, void *arg);
/* Feed n more bytes (any split); then pw_ingest_end once. */
int	 pw_ingest_feed(struct pw_ingest *in, const void *p, size_t n);
int	 pw_ingest_end(struct pw_ingest *in);
/* The format in use (known once bytes were fed). */
int	 pw_ingest_format(const struct pw_ingest *in);
void	 pw_ingest_free(struct pw_ingest *in);

/*
 * Writing lists back: begin, one pw_ingest_write per proxy (i counts
 * from 0), end; each appends to b. url is the proxy's URL as it should
 * appear (with or without credentials: the caller decides). txt carries
 * only the URL; the others also country, region, source, weight and
 * expires_at, so that a list written here reads back the same.
 */
struct pw_export {
	const struct pw_proxy	*p;
	const char		*url;
};
void	 pw_ingest_write_begin(int format, struct pw_buf *b);
void	 pw_ingest_write(int format, const struct pw_export *x, long i,
	    struct pw_buf *b);
void	 pw_ingest_write_end(int format, long n, struct pw_buf *b);

/* ---------------------------------------------------------------- cache */

/*
 * Warming: one pw_warm per run, over one or more inputs (files, the
 * sources). Records are buffered and written in batches of cache.batch,
 * each in its own short transaction, so a run killed at any moment
 * leaves a committed prefix. A proxy seen twice in one run (in one input
 * or across inputs) is a duplicate; one already in the pool before the
 * run is updated (expires_at and the metadata given are refreshed).
 */
struct pw_warm_counts {
	int64_t	records, added, updated, duplicate, invalid;
};

struct pw_warm;
struct pw_warm *pw_warm_new(struct pw_ctx *ctx);
/*
 * Start an input. meta gives the defaults (country, region, weight, ttl:
 * the record's own values win) and source, which overrides the record's.
 * reject is told about every skipped record. Strings are borrowed until
 * pw_warm_input_end.
 */
void	 pw_warm_input(struct pw_warm *w, int format,
	    const struct pw_meta *meta, pw_reject_fn *reject, void *arg);
int	 pw_warm_feed(struct pw_warm *w, const void *p, size_t n);
/* Flush this input; c gets its counts. */
int	 pw_warm_input_end(struct pw_warm *w, struct pw_warm_counts *c);
/*
 * With on, the proxies this run adds are stored pending (PW_PENDING):
 * never selected until a health check passes (pw_health_run on
 * pw_warm_ids). Proxies already in the pool keep their status.
 */
void	 pw_warm_pending(struct pw_warm *w, int on);
/* The format the current input turned out to be. */
int	 pw_warm_format(const struct pw_warm *w);
/*
 * The ids this run added or updated, in order (borrowed until
 * pw_warm_free): what a validation pass checks after the import.
 */
const int64_t *pw_warm_ids(const struct pw_warm *w, size_t *n);
/* Record the time of this warm (stats: last warm). */
int	 pw_warm_finish(struct pw_warm *w);
void	 pw_warm_free(struct pw_warm *w);

/*
 * Export every proxy as format; write is called with chunks of the
 * output and its non-zero return stops the walk. With creds, URLs carry
 * the credentials (unsealed); without, no secret is read at all. A row
 * that cannot be unsealed or read is left out, evicted and counted
 * (corruption). *n gets how many were written.
 */
typedef int pw_write_fn(void *arg, const void *p, size_t n);
int	 pw_cache_export(struct pw_ctx *ctx, int format, int creds,
	    pw_write_fn *write, void *arg, int64_t *n);

/* Eviction reasons, as counted in the stats. */
enum pw_evict { PW_EVICT_TTL, PW_EVICT_HEALTH, PW_EVICT_MANUAL,
    PW_EVICT_CORRUPTION, PW_EVICT_COUNT };
const char *pw_evict_name(int reason);

/*
 * Remove expired proxies, unhealthy ones, and rows that cannot be read
 * or unsealed, in short batches; removed[reason] gets the counts.
 */
int	 pw_cache_prune(struct pw_ctx *ctx, int64_t removed[PW_EVICT_COUNT]);

struct pw_count {
	char	*name;
	int64_t	 n;
};
struct pw_cache_stats {
	int64_t		 total;
	int64_t		 by_status[PW_STATUS_COUNT];
	struct pw_count	*by_source;	/* name NULL: no source */
	size_t		 nsources;
	int64_t		 expired;
	int64_t		 hits, misses;
	int64_t		 evictions[PW_EVICT_COUNT];
	int64_t		 last_warm, last_health;	/* 0: never */
	int64_t		 file_bytes;	/* state file and its WAL */
	/* Delegation (see pw_service_next); all 0 without a service. */
	int64_t		 svc_calls, svc_errors, svc_cache_hits,
			 svc_fallbacks, svc_breaker_opened,
			 svc_breaker_half_opened, svc_breaker_closed,
			 svc_outbox_depth, svc_outbox_sent, svc_outbox_dropped;
	/* As a service: requests and outcomes received. */
	int64_t		 dlg_requests, dlg_feedback;
};
int	 pw_cache_stats(struct pw_ctx *ctx, struct pw_cache_stats *s);
void	 pw_cache_stats_release(struct pw_cache_stats *s);

/*
 * cache.sources: "URL [FORMAT]" entries separated by commas or newlines,
 * or "@FILE" naming a file of them ("#" comments). Entries are the
 * caller's: free with pw_sources_free.
 */
struct pw_source {
	char	*url;
	char	*name;		/* the URL's host and path: the tag */
	int	 format;
};
int	 pw_sources_parse(const char *value, struct pw_source **out,
	    size_t *n, struct pw_err *err);
void	 pw_sources_free(struct pw_source *s, size_t n);

/* ------------------------------------------------------------- download */

/*
 * Fetch URLs concurrently (libcurl multi, loaded when first needed), each into
 * memory up to max_bytes, with the given timeouts. Every result is
 * filled: data and len on success, error (one line) on failure.
 */
struct pw_download {
	char	*data;
	size_t	 len;
	long	 status;
	char	*error;
};
int	 pw_download(const char *const *urls, size_t n, size_t max_bytes,
	    int64_t timeout_ms, int64_t connect_timeout_ms,
	    struct pw_download *res);
void	 pw_download_release(struct pw_download *d);

/* -------------------------------------------------------------- service */

/*
 * Delegation: with service.endpoints set (and service.enabled), proxies
 * are asked of a remote pw serve, which sees the outcomes of a whole
 * fleet; the local pool stays the fallback, so that an outage of the
 * service never stops a selection.
 */
enum pw_path { PW_PATH_LOCAL, PW_PATH_SERVICE, PW_PATH_CACHE,
    PW_PATH_FALLBACK };
/* "local", "service", "cache", "fallback". */
const char *pw_path_name(int path);

/* How a selection was made, for --json and verbose output. */
struct pw_delegation {
	int	 path;			/* enum pw_path */
	char	 endpoint[256];		/* the service that chose; "" */
	char	 strategy[64];		/* the service's strategy; "" */
	char	 why[400];		/* why it fell back; "" */
	int64_t	 ttl;			/* seconds the answer is reused */
};

/* Whether selection is delegated: service.endpoints set and enabled. */
int	 pw_service_enabled(struct pw_ctx *ctx);
/*
 * Whether a selection as pk asks can go to the service: one is enabled
 * and pk asks for nothing the service cannot honour (a strategy, plugin,
 * session or filter other than the region).
 */
int	 pw_service_delegable(struct pw_ctx *ctx, const struct pw_pick *pk);

/* What is asked of the service. Strings are borrowed for the call. */
struct pw_service_ask {
	const char	*target;	/* the URL the proxy is for, or NULL */
	const char	*region;	/* or NULL */
	const int64_t	*exclude;	/* the service's ids not to take */
	size_t		 nexclude;
};

/*
 * Choose a proxy through the service: a cached answer for (target's
 * origin, connection type, region) while it lives, else the endpoints in
 * order, each as its circuit breaker allows, with bounded retries; when
 * none answers within BUDGET_MS (800 ms), the local pool with local
 * (pw_pool_next), so that the call ends within a second. On the service
 * and cache paths out->id is the service's id of the proxy and
 * out->source "service". d says which path was taken (and why a
 * fallback). Errors come only from the local path.
 */
int	 pw_service_next(struct pw_ctx *ctx, const struct pw_service_ask *ask,
	    const struct pw_pick *local, struct pw_proxy *out,
	    struct pw_delegation *d);

/* An outcome waiting in the outbox. */
struct pw_outcome {
	int64_t	 id;		/* the outbox row */
	int64_t	 proxy_id;	/* the service's id */
	int	 success;
	double	 latency_ms;	/* < 0: none */
	char	*error;		/* or NULL */
	int64_t	 ts_ms;
};
void	 pw_outcomes_free(struct pw_outcome *v, size_t n);

/*
 * The service's id of a proxy it handed out (by URL or id), or
 * PW_ENOTFOUND when arg names none. An id that names a local proxy too
 * is ambiguous: PW_EUSAGE, the message naming both (give the URL).
 */
int	 pw_service_resolve(struct pw_ctx *ctx, const char *arg, int64_t *id);
/*
 * Queue the outcome of a request through the service's proxy_id for the
 * service (never a network call); a failure also drops every cached
 * answer naming that proxy. The outbox keeps service.outbox_max outcomes
 * (the oldest go first) and the same outcome at the same millisecond
 * once.
 */
int	 pw_service_report(struct pw_ctx *ctx, int64_t proxy_id, int ok,
	    double latency_ms, const char *error);

struct pw_flush_result {
	int64_t	sent;		/* outcomes the service took */
	int64_t	left;		/* still queued */
};
/*
 * Send queued outcomes in batches for up to budget_ms; what is sent is
 * removed. PW_EFAIL (with *fr filled) when no endpoint took them: they
 * stay queued. PW_EUSAGE without a service.
 */
int	 pw_service_flush(struct pw_ctx *ctx, int64_t budget_ms,
	    struct pw_flush_result *fr);

/*
 * pw serve's background flush: a thread with its own context on state
 * that flushes the outbox every interval_ms while it has outcomes.
 */
struct pw_flusher;
int	 pw_service_flusher_start(const char *state,
	    const struct pw_config *cfg, int64_t interval_ms,
	    struct pw_flusher **out, struct pw_err *err);
void	 pw_service_flusher_stop(struct pw_flusher *f);

/* ---------------------------------------------------------------- serve */

/*
 * The REST server (pw serve). It loads libmicrohttpd and cJSON when it
 * starts, serves from a pool of threads, and gives each thread its own
 * context on the state file (opened at its first request, closed when
 * the thread ends): a struct pw_ctx is never shared between threads.
 * Selections come from the pool held in memory, and the outcomes of
 * requests reach the state file in batches (see pw-serve(1)); background
 * threads prune expired proxies and, when serve.health_interval is set,
 * check the pool.
 */
struct pw_server;

struct pw_serve_opts {
	const char	*listen;	/* "HOST:PORT"; NULL: serve.listen */
	int		 insecure;	/* may listen on a non-loopback one */
	unsigned int	 threads;	/* 0: 32 per core, 32 to 256 */
	size_t		 body_max;	/* request bodies; 0: 1 MiB */
	int		 log_requests;	/* one PW_LOG_INFO line per request */
	int64_t		 read_ms;	/* to send a whole request; 0: 30 s */
};

/*
 * API keys of pw serve. A key is "pw_" and 48 hex digits, shown once by
 * pw_apikey_add; the state file keeps a hash of it, its name (1 to 64
 * letters, digits, '-', '_', '.') and its tier (1 to 32 lower-case
 * letters, digits, '-', '_'; default "default"), which the rate limiter
 * reads.
 */
#define PW_APIKEY_NAME_MAX	64
#define PW_APIKEY_TIER_MAX	32
#define PW_APIKEY_TIER_DEFAULT	"default"

struct pw_apikey {
	int64_t	id;
	char	name[PW_APIKEY_NAME_MAX + 1];
	char	tier[PW_APIKEY_TIER_MAX + 1];
	int64_t	created_at;
	int64_t	last_used;	/* 0: never; updated once a minute at most */
};

int	 pw_apikey_name_check(const char *name, struct pw_err *err);
int	 pw_apikey_tier_check(const char *tier, struct pw_err *err);
/*
 * Make a key named name of tier (NULL: the default) and store its hash;
 * *key gets the key itself (the caller prints it once and frees it with
 * pw_secret_free). PW_EUSAGE for a bad name or tier, PW_EEXIST when the
 * name is taken; nothing is stored then.
 */
int	 pw_apikey_add(struct pw_ctx *ctx, const char *name, const char *tier,
	    char **key);
/* PW_ENOTFOUND when there is no key of that name. */
int	 pw_apikey_remove(struct pw_ctx *ctx, const char *name);
/* Each key, by name; the key is borrowed for the call. */
typedef int pw_apikey_fn(void *arg, const struct pw_apikey *k);
int	 pw_apikey_each(struct pw_ctx *ctx, pw_apikey_fn *fn, void *arg);
/* Whether any key exists. */
int	 pw_apikey_any(struct pw_ctx *ctx, int *any);
/*
 * The key whose secret is key[0..len) into *out, its use recorded (once
 * a minute); PW_ENOTFOUND when it is none (message without the key).
 */
int	 pw_apikey_check(struct pw_ctx *ctx, const char *key, size_t len,
	    struct pw_apikey *out);
/* Wipe and free a secret string (NULL: nothing). */
void	 pw_secret_free(char *s);

/*
 * Listen and serve the state file at state, with ctx's settings (ctx and
 * state must outlive the server). Returns at once; the server runs in its
 * own threads until pw_serve_stop. *out is the caller's. PW_EUSAGE for a
 * bad or refused address, PW_EFAIL when it cannot listen or load
 * libmicrohttpd.
 */
int	 pw_serve_start(struct pw_ctx *ctx, const char *state,
	    const struct pw_serve_opts *o, struct pw_server **out);
/*
 * Route i of the server's router (from 0): its path ("{id}" for a proxy
 * id), method and whether it is open without an API key; NULL after the
 * last. For the check that the OpenAPI document describes every route.
 */
const char *pw_serve_route(size_t i, const char **method, int *open);
/* The address the server listens on ("127.0.0.1:8000"); borrowed. */
const char *pw_serve_address(const struct pw_server *s);
/*
 * Read the settings in the state file again, on every thread, and the
 * pool (SIGHUP); connections and requests in flight go on undisturbed.
 */
void	 pw_serve_reload(struct pw_server *s);
/*
 * Stop accepting connections, let the requests in flight finish (for up
 * to grace_ms), then stop every thread, write the outcomes still held in
 * memory to the state file, and free s. s may be NULL.
 */
void	 pw_serve_stop(struct pw_server *s, int64_t grace_ms);

/* -------------------------------------------------------------- gateway */

/*
 * The gateway (pw serve --gateway): a local proxy that any program can
 * use. HTTP proxy requests (CONNECT, absolute-form http://) and SOCKS5
 * (no-auth, username/password; CONNECT) on one port, told apart by the
 * first byte, and SOCKS5 alone on another when socks_listen is set. Each
 * tunnel, and each plain request, goes out through a proxy the pool
 * picks, relayed byte for byte; a proxy that fails before the tunnel is
 * up is replaced by the next, up to retries. The user name carries
 * controls: USER-session-ID, USER-country-CC, USER-strategy-NAME. Who
 * may connect is the serve.gateway_users setting.
 */
struct pw_gateway;

struct pw_gateway_opts {
	const char	*listen;	/* "HOST:PORT": HTTP and SOCKS5 */
	const char	*socks_listen;	/* SOCKS5 only; NULL: none */
	int		 retries;	/* proxies per connect; 0: setting */
	int		 log;		/* a PW_LOG_INFO line per tunnel */
	int64_t		 max_tunnels;	/* connections at once; 0: 4096 */
	int64_t		 max_per_client; /* one client address; 0: 1024 */
	int64_t		 idle_ms;	/* nothing either way; 0: 5 min */
	int64_t		 handshake_ms;	/* to say where it goes; 0: 10 s */
	/*
	 * The API server beside it in this process, whose pool in memory
	 * the gateway shares; NULL: the gateway keeps one of its own.
	 */
	struct pw_server *api;
};

/*
 * Listen and serve in a thread of its own, on its own context on the
 * state file at state (ctx gives the settings; neither is kept). *out is
 * the caller's. PW_EUSAGE for a bad address, or a non-loopback one
 * without serve.gateway_users; PW_EFAIL when it cannot listen.
 */
int	 pw_gateway_start(struct pw_ctx *ctx, const char *state,
	    const struct pw_gateway_opts *o, struct pw_gateway **out);
/* The address it listens on (socks: the SOCKS5-only one, or NULL). */
const char *pw_gateway_address(const struct pw_gateway *g, int socks);
/*
 * Stop: close every connection, record the outcomes not yet written,
 * free g. g may be NULL. Before pw_serve_stop of the server it shares.
 */
void	 pw_gateway_stop(struct pw_gateway *g);
/*
 * Append the running gateway's counters to b in the Prometheus text
 * format (nothing when none runs in this process). Any thread.
 */
void	 pw_gateway_metrics(struct pw_buf *b);

#endif /* PW_H */
