/*
 * store.c -- the only module that speaks SQL: opening the state file,
 * pragmas, schema migrations, transactions and every statement.
 *
 * Many pw processes share one file. Every write runs inside
 * BEGIN IMMEDIATE with a long busy timeout, under WAL, so writers queue
 * instead of failing and readers never block.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "internal.h"
#include "ratelimit.h"

#define BUSY_TIMEOUT_MS	60000

/*
 * The WAL size over which whoever opens the file checkpoints it and
 * empties it, and the larger one over which whoever closes it does (see
 * wal_trim).
 */
#define WAL_TRIM_BYTES		(256 << 10)
#define WAL_TRIM_CLOSE_BYTES	(4 * WAL_TRIM_BYTES)

enum stmt_id {
	S_INSERT, S_FIND, S_EXISTS, S_DELETE, S_CONFIG_PUT, S_CONFIG_DEL,
	S_ROT_GET, S_ROT_PUT, S_STARTED, S_REPORT, S_SESSION_GET,
	S_SESSION_PUT, S_SESSION_PRUNE, S_WINDOW_RESET, S_BOUNDS, S_PASS_GET,
	S_PASS_PUT, S_HEALTH, S_REFRESH, S_STAT_ADD, S_META_PUT, S_EVICT_TTL,
	S_EVICT_HEALTH, S_MAX_ID, S_UNDO_ROWS, S_UNDO_SEQ, S_SEQ, S_PEND,
	S_RL_GET, S_RL_PUT, S_RL_PRUNE, S_KEY_ADD, S_KEY_DEL, S_KEY_FIND,
	S_KEY_ANY, S_KEY_USED, S_STATS_GET, S_STATS_PUT, S_SESSION_SET,
	S_DATA_VERSION, S_GEN_GET, S_GEN_BUMP, S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_INSERT] = "INSERT INTO proxies(key, url, scheme, host, "
	    "port, user, pass, source, country, region, weight, added_at, "
	    "updated_at, expires_at) "
	    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, "
	    "?13)",
	[S_FIND] = "SELECT id FROM proxies WHERE key = ?1",
	[S_EXISTS] = "SELECT 1 FROM proxies WHERE id = ?1",
	[S_DELETE] = "DELETE FROM proxies WHERE id = ?1",
	[S_CONFIG_PUT] = "INSERT INTO config(key, value) VALUES(?1, ?2) "
	    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[S_CONFIG_DEL] = "DELETE FROM config WHERE key = ?1",
	[S_ROT_GET] = "SELECT value FROM rotation WHERE name = ?1",
	[S_ROT_PUT] = "INSERT INTO rotation(name, value) VALUES(?1, ?2) "
	    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
	[S_STARTED] = "UPDATE proxies SET started = started + 1, "
	    "last_used = ?2, window_count = window_count + 1 WHERE id = ?1",
	[S_WINDOW_RESET] = "UPDATE proxies SET window_count = 0 "
	    "WHERE window_count != 0",
	/* Each subquery is one index lookup. */
	[S_PASS_GET] = "SELECT pass FROM proxies WHERE id = ?1",
	[S_PASS_PUT] = "UPDATE proxies SET pass = ?2, updated_at = ?3 "
	    "WHERE id = ?1",
	[S_BOUNDS] = "SELECT (SELECT min(id) FROM proxies), "
	    "(SELECT max(id) FROM proxies), "
	    "(SELECT max(weight) FROM proxies WHERE weight IS NOT NULL), "
	    "(SELECT min(latency_ms) FROM proxies)",
	/*
	 * ?2 outcome (0 fail, 1 ok, 2 neutral), ?3 latency (NULL: none),
	 * ?4 EMA alpha, ?5 failure threshold, ?6 cooldown end, ?7 now.
	 * Success clears the failure run and any cooldown; the
	 * threshold-th failure in a row starts a cooldown; a neutral
	 * outcome only counts.
	 */
	[S_REPORT] = "UPDATE proxies SET completed = completed + 1, "
	    "succeeded = succeeded + (?2 = 1), failed = failed + (?2 = 0), "
	    "consec_fail = CASE ?2 WHEN 1 THEN 0 WHEN 0 THEN consec_fail + 1 "
	    "ELSE consec_fail END, "
	    "cooldown_until = CASE ?2 WHEN 1 THEN NULL "
	    "WHEN 0 THEN CASE WHEN consec_fail + 1 >= ?5 THEN ?6 "
	    "ELSE cooldown_until END ELSE cooldown_until END, "
	    "latency_ms = CASE WHEN ?3 IS NULL THEN latency_ms "
	    "WHEN latency_ms IS NULL THEN ?3 "
	    "ELSE ?4 * ?3 + (1 - ?4) * latency_ms END, "
	    "updated_at = ?7 WHERE id = ?1",
	[S_SESSION_GET] = "SELECT proxy_id FROM sessions "
	    "WHERE id = ?1 AND expires_at > ?2",
	/* A session that moves to another proxy counts a failover. */
	[S_SESSION_PUT] = "INSERT INTO sessions(id, proxy_id, created_at, "
	    "last_used, expires_at, requests) VALUES(?1, ?2, ?3, ?3, ?4, 1) "
	    "ON CONFLICT(id) DO UPDATE SET "
	    "failovers = failovers + (proxy_id != excluded.proxy_id), "
	    "created_at = CASE WHEN expires_at <= ?3 THEN ?3 "
	    "ELSE created_at END, "
	    "requests = CASE WHEN expires_at <= ?3 THEN 1 "
	    "ELSE requests + 1 END, "
	    "proxy_id = excluded.proxy_id, last_used = ?3, "
	    "expires_at = excluded.expires_at",
	[S_SESSION_PRUNE] = "DELETE FROM sessions WHERE expires_at <= ?1",
	/*
	 * A health check: ?2 passed (1) or failed (0), ?3 latency (NULL:
	 * none), ?4 EMA alpha, ?5 failure threshold, ?6 now, ?7 anonymity
	 * (NULL: keep). A pass makes the proxy healthy and clears its
	 * failure run and cooldown; a failure makes it degraded, or
	 * unhealthy at the threshold-th in a row; an unhealthy one stays
	 * so until it passes. A pending proxy (imported by a validating
	 * warm, never checked) has nothing to its credit: its first
	 * failure makes it unhealthy.
	 */
	[S_HEALTH] = "UPDATE proxies SET "
	    "status = CASE WHEN ?2 THEN 'healthy' "
	    "WHEN status = 'pending' OR status = 'unhealthy' OR "
	    "consec_fail + 1 >= ?5 "
	    "THEN 'unhealthy' ELSE 'degraded' END, "
	    "consec_fail = CASE WHEN ?2 THEN 0 ELSE consec_fail + 1 END, "
	    "cooldown_until = CASE WHEN ?2 THEN NULL ELSE cooldown_until END, "
	    "latency_ms = CASE WHEN ?3 IS NULL THEN latency_ms "
	    "WHEN latency_ms IS NULL THEN ?3 "
	    "ELSE ?4 * ?3 + (1 - ?4) * latency_ms END, "
	    "anonymity = coalesce(?7, anonymity), "
	    "last_checked = ?6, updated_at = ?6 WHERE id = ?1 "
	    "RETURNING status, consec_fail",
	/* A proxy warmed again: a new lifetime, metadata where given. */
	[S_REFRESH] = "UPDATE proxies SET expires_at = ?2, "
	    "source = coalesce(?3, source), country = coalesce(?4, country), "
	    "region = coalesce(?5, region), weight = coalesce(?6, weight), "
	    "updated_at = ?7 WHERE id = ?1",
	/* What a validating warm added waits for its first check. */
	[S_PEND] = "UPDATE proxies SET status = 'pending' WHERE id > ?1",
	[S_STAT_ADD] = "INSERT INTO stats(name, value) VALUES(?1, ?2) "
	    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
	[S_META_PUT] = "INSERT INTO meta(key, value) VALUES(?1, ?2) "
	    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[S_EVICT_TTL] = "DELETE FROM proxies WHERE id IN (SELECT id FROM "
	    "proxies WHERE expires_at <= ?1 LIMIT ?2)",
	[S_EVICT_HEALTH] = "DELETE FROM proxies WHERE id IN (SELECT id FROM "
	    "proxies WHERE status = 'unhealthy' LIMIT ?2)",
	/* Take back what one insert of many rows did (see insert_many). */
	[S_UNDO_ROWS] = "DELETE FROM proxies WHERE id > ?1",
	[S_UNDO_SEQ] = "UPDATE sqlite_sequence SET seq = ?1 "
	    "WHERE name = 'proxies'",
	/* Every new id is above this one (AUTOINCREMENT). */
	[S_SEQ] = "SELECT max(coalesce((SELECT seq FROM sqlite_sequence "
	    "WHERE name = 'proxies'), 0), "
	    "coalesce((SELECT max(id) FROM proxies), 0))",
	[S_MAX_ID] = "SELECT coalesce(max(id), 0) FROM proxies",
	[S_RL_GET] = "SELECT win, cur, prev, window_ms FROM ratelimit "
	    "WHERE key = ?1",
	[S_RL_PUT] = "INSERT INTO ratelimit(key, win, cur, prev, window_ms) "
	    "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(key) DO UPDATE SET "
	    "win = excluded.win, cur = excluded.cur, prev = excluded.prev, "
	    "window_ms = excluded.window_ms",
	/* Counters whose windows have both passed read 0 anyway. */
	[S_RL_PRUNE] = "DELETE FROM ratelimit WHERE win + 2 * window_ms <= ?1 "
	    "OR win > ?1",
	[S_KEY_ADD] = "INSERT INTO api_keys(name, tier, hash, created_at) "
	    "VALUES(?1, ?2, ?3, ?4)",
	[S_KEY_DEL] = "DELETE FROM api_keys WHERE name = ?1",
	[S_KEY_FIND] = "SELECT id, name, tier, hash, created_at, last_used "
	    "FROM api_keys WHERE hash = ?1",
	[S_KEY_ANY] = "SELECT EXISTS (SELECT 1 FROM api_keys)",
	/* Once a minute at most: a key in use is not a write a request. */
	[S_KEY_USED] = "UPDATE api_keys SET last_used = ?2 WHERE id = ?1 AND "
	    "(last_used IS NULL OR last_used < ?2 - 60)",
	/* pw serve's batched outcomes: read, combine in C, write back. */
	[S_STATS_GET] = "SELECT started, completed, succeeded, failed, "
	    "consec_fail, latency_ms, cooldown_until, last_used, "
	    "window_count, updated_at FROM proxies WHERE id = ?1",
	[S_STATS_PUT] = "UPDATE proxies SET started = ?2, completed = ?3, "
	    "succeeded = ?4, failed = ?5, consec_fail = ?6, latency_ms = ?7, "
	    "cooldown_until = ?8, last_used = ?9, window_count = ?10, "
	    "updated_at = ?11 WHERE id = ?1",
	/* A session as pw serve holds it in memory, written as it is. */
	[S_SESSION_SET] = "INSERT INTO sessions(id, proxy_id, created_at, "
	    "last_used, expires_at, requests, failovers) "
	    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 "
	    "WHERE EXISTS (SELECT 1 FROM proxies WHERE id = ?2) "
	    "ON CONFLICT(id) DO UPDATE SET proxy_id = excluded.proxy_id, "
	    "created_at = excluded.created_at, last_used = excluded.last_used, "
	    "expires_at = excluded.expires_at, requests = excluded.requests, "
	    "failovers = excluded.failovers",
	[S_DATA_VERSION] = "PRAGMA data_version",
	/* The pool's generation: see on_update. */
	[S_GEN_GET] = "SELECT coalesce((SELECT value FROM meta "
	    "WHERE key = 'pool_gen'), 0)",
	[S_GEN_BUMP] = "INSERT INTO meta(key, value) VALUES('pool_gen', 1) "
	    "ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value",
};

/*
 * Statements whose SQL is built at run time (filters, exclusions) or
 * used now and then, kept prepared by their text: preparing costs more
 * than running most of them. The least recently used goes first.
 */
#define CACHED		32
/* The delegation's statements (enum svc_stmt). */
#define SVC_STMTS	9

struct cached {
	char		*sql;
	sqlite3_stmt	*s;
	uint64_t	 used;
	int		 busy;		/* between cached_get and _put */
};

struct pw_store {
	sqlite3		*db;
	char		*path;
	char		*wal;		/* path of the WAL; NULL: leave it */
	int		 pending;	/* not there yet: made at 1st write */
	int		 in_txn;
	int		 pool_dirty;	/* this transaction changed the pool */
	int64_t		 bumped;	/* the generation it made; 0: none */
	int64_t		 rl_pruned;	/* last prune of ratelimit */
	sqlite3_stmt	*stmt[S_COUNT];
	sqlite3_stmt	*many;		/* INSERT of MANY_ROWS rows */
	sqlite3_stmt	*svc[SVC_STMTS]; /* delegation's, by enum svc_stmt */
	struct cached	 cache[CACHED];	/* statements made of their SQL */
	uint64_t	 cache_tick;
};

/* Rows per statement of pw_store_proxy_insert_many. */
#define MANY_ROWS	64

/*
 * Schema migrations: migrations[v] brings a file from version v to v+1.
 * They run forward only, in one transaction, when a file is opened.
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE proxies ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  key TEXT NOT NULL UNIQUE,"
	"  url TEXT NOT NULL,"
	"  scheme TEXT NOT NULL,"
	"  host TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  user BLOB,"
	"  pass BLOB,"
	"  source TEXT,"
	"  country TEXT,"
	"  region TEXT,"
	/*
	 * Comparisons, not IN (...): SQLite checks an IN list by building
	 * a temporary b-tree of it, for every row written.
	 */
	"  status TEXT NOT NULL DEFAULT 'unknown' CHECK (status = 'unknown'"
	"    OR status = 'healthy' OR status = 'degraded'"
	"    OR status = 'unhealthy' OR status = 'pending'),"
	"  anonymity TEXT,"
	"  weight REAL,"
	"  added_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  expires_at INTEGER,"
	"  last_checked INTEGER,"
	"  last_used INTEGER,"
	"  cooldown_until INTEGER,"
	"  started INTEGER NOT NULL DEFAULT 0,"
	"  completed INTEGER NOT NULL DEFAULT 0,"
	"  succeeded INTEGER NOT NULL DEFAULT 0,"
	"  failed INTEGER NOT NULL DEFAULT 0,"
	"  consec_fail INTEGER NOT NULL DEFAULT 0,"
	"  latency_ms REAL,"
	"  window_count INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value);"
	"CREATE TABLE stats (name TEXT PRIMARY KEY,"
	"  value INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE sessions ("
	"  id TEXT PRIMARY KEY,"
	"  proxy_id INTEGER NOT NULL REFERENCES proxies(id) ON DELETE CASCADE,"
	"  created_at INTEGER NOT NULL,"
	"  last_used INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  requests INTEGER NOT NULL DEFAULT 0,"
	"  failovers INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX sessions_proxy ON sessions(proxy_id);"
	"CREATE INDEX sessions_expiry ON sessions(expires_at);"
	/* Cursors and windows of the strategies, by name. */
	"CREATE TABLE rotation (name TEXT PRIMARY KEY,"
	"  value INTEGER NOT NULL);"
	/*
	 * What selection reads: least-used, the bounds of rejection
	 * sampling and the unmeasured proxies of performance come from
	 * these without a scan; round-robin and the probes go by id. Every
	 * index costs each row a warm writes (a warm of 1M: about 0.3 s
	 * an index), so those that only need the rows where a value is set
	 * (weight, country) hold only those rows: a list without weights
	 * or countries costs them nothing. Plugins and rare fallbacks that
	 * read every candidate scan the table.
	 */
	"CREATE INDEX proxies_least ON proxies(window_count, id);"
	"CREATE INDEX proxies_weight ON proxies(weight)"
	"  WHERE weight IS NOT NULL;"
	"CREATE INDEX proxies_latency ON proxies(latency_ms);"
	/* Geo selection finds a country's proxies, or that there are none. */
	"CREATE INDEX proxies_geo ON proxies(country, region)"
	"  WHERE country IS NOT NULL;"
	/*
	 * Rate-limit counters of the sqlite backend (see ratelimit.h);
	 * win on the host's monotonic clock.
	 */
	"CREATE TABLE ratelimit (key TEXT PRIMARY KEY,"
	"  win INTEGER NOT NULL, cur INTEGER NOT NULL, prev INTEGER NOT NULL,"
	"  window_ms INTEGER NOT NULL) WITHOUT ROWID;"
	/*
	 * Delegation to a remote pw serve (service.c): each endpoint's
	 * circuit breaker, the answers it gave, and the outcomes it is yet
	 * to be told, so that they hold across short processes.
	 */
	"CREATE TABLE breakers (endpoint TEXT PRIMARY KEY,"
	"  state INTEGER NOT NULL DEFAULT 0,"
	"  failures INTEGER NOT NULL DEFAULT 0,"
	"  since_ms INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE service_cache (key TEXT PRIMARY KEY,"
	"  proxy_id INTEGER NOT NULL,"
	"  url TEXT NOT NULL,"
	"  sealed BLOB,"
	"  strategy TEXT,"
	"  endpoint TEXT NOT NULL,"
	"  expires_at INTEGER NOT NULL);"
	"CREATE INDEX service_cache_proxy ON service_cache(proxy_id);"
	"CREATE INDEX service_cache_url ON service_cache(url);"
	"CREATE TABLE feedback_outbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  proxy_id INTEGER NOT NULL,"
	"  success INTEGER NOT NULL,"
	"  latency_ms REAL,"
	"  error TEXT,"
	"  ts_ms INTEGER NOT NULL,"
	"  lease_until INTEGER,"	/* being sent by a flush until then */
	"  UNIQUE (proxy_id, success, ts_ms));"
	/*
	 * API keys of pw serve: only a hash of each key (see
	 * pw_crypto_apikey_hash), looked up by it on every request.
	 */
	"CREATE TABLE api_keys ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  tier TEXT NOT NULL,"
	"  hash BLOB NOT NULL UNIQUE,"
	"  created_at INTEGER NOT NULL,"
	"  last_used INTEGER"
	");",
	/*
	 * 1 -> 2: the user's tag moves to the end of a proxy's key,
	 * "scheme://TAG@host:port" becoming "scheme://host:port#TAG" (see
	 * identity() in pool.c).
	 */
	"UPDATE proxies SET key = substr(key, 1, instr(key, '://') + 2) ||"
	"  substr(key, instr(key, '://') + 36) || '#' ||"
	"  substr(key, instr(key, '://') + 3, 32)"
	"  WHERE user IS NOT NULL"
	"  AND substr(key, instr(key, '://') + 35, 1) = '@';",
	/*
	 * 2 -> 3: the outbox keeps every outcome. Its key of proxy, result
	 * and millisecond took two processes' outcomes of one millisecond
	 * for one, and dropped the second without a word.
	 */
	"CREATE TABLE feedback_outbox_3 ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  proxy_id INTEGER NOT NULL,"
	"  success INTEGER NOT NULL,"
	"  latency_ms REAL,"
	"  error TEXT,"
	"  ts_ms INTEGER NOT NULL,"
	"  lease_until INTEGER);"	/* being sent by a flush until then */
	"INSERT INTO feedback_outbox_3 SELECT id, proxy_id, success,"
	"  latency_ms, error, ts_ms, lease_until FROM feedback_outbox;"
	"DROP TABLE feedback_outbox;"
	"ALTER TABLE feedback_outbox_3 RENAME TO feedback_outbox;",
};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
_Static_assert(NMIGRATIONS == PW_SCHEMA_VERSION, "a migration a version");

static int
db_fail(struct pw_store *st, int rc, struct pw_err *err, const char *what)
{
	const char	*msg = st->db ? sqlite3_errmsg(st->db) :
	    sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return pw_failf(err, PW_ESTATE, "%s: state file is corrupt: %s",
		    st->path, msg);
	case SQLITE_READONLY:
		if (rc == SQLITE_READONLY_DIRECTORY)
			return pw_failf(err, PW_ESTATE, "%s: state directory "
			    "is not writable (WAL needs it even to read)",
			    st->path);
		return pw_failf(err, PW_ESTATE, "%s: state file is read-only",
		    st->path);
	case SQLITE_FULL:
		return pw_failf(err, PW_ESTATE, "%s: disk full", st->path);
	case SQLITE_CANTOPEN:
		/* What the system said is clearer than SQLite's words. */
		if (st->db != NULL && sqlite3_system_errno(st->db) != 0)
			msg = strerror(sqlite3_system_errno(st->db));
		return pw_failf(err, PW_ESTATE, "%s: cannot open: %s",
		    st->path, msg);
	case SQLITE_BUSY:
		return pw_failf(err, PW_EBUSY, "%s: state file busy for over "
		    "%d s", st->path, BUSY_TIMEOUT_MS / 1000);
	default:
		return pw_failf(err, PW_EFAIL, "%s: %s: %s", st->path, what,
		    msg);
	}
}

static int
exec_sql(struct pw_store *st, const char *sql, struct pw_err *err)
{
	int	rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_fail(st, rc, err, "query");
}

static sqlite3_stmt *
stmt_get(struct pw_store *st, enum stmt_id id, struct pw_err *err)
{
	int	rc;

	if (st->stmt[id] == NULL) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[id], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[id], NULL);
		if (rc != SQLITE_OK) {
			db_fail(st, rc, err, "prepare");
			return NULL;
		}
	}
	return st->stmt[id];
}

/* The one integer that statement id, without parameters, answers. */
static int
stmt_int(struct pw_store *st, enum stmt_id id, int64_t *out,
    const char *what, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt_get(st, id, err)) == NULL)
		return err->code;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, rc, err, what);
}

/*
 * The statement of sql, prepared once per connection. A statement still
 * in use by a caller further up (the same SQL run again from inside its
 * loop) is not shared: that caller gets one of its own. Give it back
 * with cached_put.
 */
static int
cached_get(struct pw_store *st, const char *sql, sqlite3_stmt **out)
{
	struct cached	*c, *lru = NULL;
	int		 rc;

	for (c = st->cache; c < st->cache + CACHED; c++) {
		if (c->sql != NULL && !c->busy && strcmp(c->sql, sql) == 0) {
			c->used = ++st->cache_tick;
			c->busy = 1;
			*out = c->s;
			return SQLITE_OK;
		}
		if (!c->busy && (lru == NULL || c->used < lru->used))
			lru = c;
	}
	if (lru == NULL)
		return sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
	rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    out, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_finalize(lru->s);
	free(lru->sql);
	lru->sql = pw_xstrdup(sql);
	lru->s = *out;
	lru->used = ++st->cache_tick;
	lru->busy = 1;
	return SQLITE_OK;
}

static void
cached_put(struct pw_store *st, sqlite3_stmt *s)
{
	for (struct cached *c = st->cache; c < st->cache + CACHED; c++) {
		if (c->s == s) {
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			c->busy = 0;
			return;
		}
	}
	sqlite3_finalize(s);
}

/* Run one statement of SQL without parameters, prepared once. */
static int
cached_run(struct pw_store *st, const char *sql, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((rc = cached_get(st, sql, &s)) != SQLITE_OK)
		return db_fail(st, rc, err, "query");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	cached_put(st, s);
	return rc == SQLITE_DONE ? 0 : db_fail(st, rc, err, "query");
}

/*
 * The pool's generation (meta 'pool_gen') moves with every commit that
 * changed a table a reader of the pool in memory (view.c) holds, so that
 * it reloads for those and not for the others: rate-limit counters (a
 * WITHOUT ROWID table, which this hook never hears of), the delegation's
 * cache, breakers and outbox, API keys' last use, counters of the stats
 * table. A key added or removed moves it (pw serve then knows whether
 * any key exists without asking each request). Every such change is
 * made inside pw_store_begin and pw_store_commit.
 */
static void
on_update(void *arg, int op, const char *db, const char *table,
    sqlite3_int64 rowid)
{
	static const char *const quiet[] = { "feedback_outbox",
	    "service_cache", "breakers", "api_keys", "stats",
	    "sqlite_sequence", NULL };
	struct pw_store	*st = arg;

	(void)op;
	(void)db;
	(void)rowid;
	if (st->pool_dirty)
		return;
	for (size_t i = 0; quiet[i] != NULL; i++)
		if (strcmp(table, quiet[i]) == 0)
			return;
	st->pool_dirty = 1;
}

static int
pragma_int(struct pw_store *st, const char *sql, int64_t *out,
    struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "read");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE) {
		sqlite3_finalize(s);
		return db_fail(st, rc, err, "read");
	}
	sqlite3_finalize(s);
	return 0;
}

/*
 * Whether the file is an SQLite database (1), empty (0), or neither (an
 * error), read through SQLite's own handle, before SQLite reads it: to
 * open and close the file here would drop every lock this process holds
 * on it (POSIX locks belong to the process, not to the descriptor), under
 * the feet of its other connections -- pw serve's threads.
 */
static int
check_header(struct pw_store *st, struct pw_err *err)
{
	static const char	 magic[16] = "SQLite format 3";
	sqlite3_file		*f = NULL;
	sqlite3_int64		 size = 0;
	char			 buf[16];

	if (sqlite3_file_control(st->db, "main", SQLITE_FCNTL_FILE_POINTER,
	    &f) != SQLITE_OK || f == NULL || f->pMethods == NULL ||
	    f->pMethods->xFileSize(f, &size) != SQLITE_OK)
		return pw_failf(err, PW_ESTATE, "%s: cannot open: %s",
		    st->path, strerror(errno));
	if (size == 0)
		return 0;
	if (size < (sqlite3_int64)sizeof buf ||
	    f->pMethods->xRead(f, buf, sizeof buf, 0) != SQLITE_OK ||
	    memcmp(buf, magic, sizeof buf) != 0)
		return pw_failf(err, PW_ESTATE, "%s: not a pw state file (not "
		    "an SQLite database)", st->path);
	return 1;
}

/*
 * Switching a new file to WAL needs it to itself for a moment, and SQLite
 * answers busy at once, without its busy handler, while other processes
 * creating the same file hold it: so wait here, as the handler would.
 */
static int
set_wal(struct pw_store *st, struct pw_err *err)
{
	int	rc, waited = 0;

	while ((rc = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL", NULL,
	    NULL, NULL)) != SQLITE_OK) {
		if ((rc & 0xff) != SQLITE_BUSY || waited >= BUSY_TIMEOUT_MS)
			return db_fail(st, rc, err, "set WAL mode");
		waited += sqlite3_sleep(5);
	}
	return 0;
}

static int
migrate(struct pw_store *st, int64_t from, struct pw_err *err)
{
	int	r;
	char	sql[64];

	if (from == 0 && (r = set_wal(st, err)) != 0)
		return r;
	if ((r = pw_store_begin(st, err)) != 0)
		return r;
	/* Another process may have migrated while we waited for the lock. */
	if ((r = pragma_int(st, "PRAGMA user_version", &from, err)) != 0)
		goto fail;
	for (int v = (int)from; v < NMIGRATIONS; v++) {
		if ((r = exec_sql(st, migrations[v], err)) != 0)
			goto fail;
	}
	snprintf(sql, sizeof sql, "PRAGMA application_id=%d;"
	    "PRAGMA user_version=%d", PW_APPLICATION_ID, NMIGRATIONS);
	if ((r = exec_sql(st, sql, err)) != 0)
		goto fail;
	return pw_store_commit(st, err);
fail:
	pw_store_rollback(st);
	return r;
}

static int
check_schema(struct pw_store *st, int writable, struct pw_err *err)
{
	int64_t	app = 0, ver = 0, tables = 0;
	int	r;

	/*
	 * One read transaction, so that all three come from one snapshot:
	 * another process may be creating the schema at this moment. (Not
	 * the pragma table functions in one statement: compiling those took
	 * 6% of a fetch's work in SQLite.)
	 */
	if ((r = exec_sql(st, "BEGIN", err)) != 0)
		return r;
	if ((r = pragma_int(st, "PRAGMA application_id", &app, err)) != 0 ||
	    (r = pragma_int(st, "PRAGMA user_version", &ver, err)) != 0 ||
	    (r = pragma_int(st, "SELECT count(*) FROM sqlite_master",
	    &tables, err)) != 0 || (r = exec_sql(st, "COMMIT", err)) != 0) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return r;
	}
	if (app == 0 && ver == 0) {
		if (tables != 0)
			return pw_failf(err, PW_ESTATE, "%s: not a pw state "
			    "file (an SQLite database of something else)",
			    st->path);
	} else if (app != PW_APPLICATION_ID)
		return pw_failf(err, PW_ESTATE, "%s: not a pw state file "
		    "(application id %#llx)", st->path, (long long)app);
	if (ver > NMIGRATIONS)
		return pw_failf(err, PW_ESTATE, "%s: state file has schema "
		    "version %lld, newer than this pw knows (%d): upgrade pw",
		    st->path, (long long)ver, NMIGRATIONS);
	if (ver == NMIGRATIONS)
		return 0;
	if (!writable)
		return pw_failf(err, PW_ESTATE, "%s: state file needs an "
		    "upgrade but is read-only", st->path);
	return migrate(st, ver, err);
}

static int
writable_dir_of(const char *path, struct pw_err *err)
{
	char	*dir = pw_dirname(path);
	int	 r = 0;

	if (access(dir, W_OK) != 0)
		r = pw_failf(err, PW_ESTATE, "%s: state directory is not "
		    "writable: %s", dir, strerror(errno));
	free(dir);
	return r;
}

/*
 * Checkpoint a WAL grown past limit and truncate it, without waiting for
 * anyone: while other processes read or write, this copies what it can
 * (as a passive checkpoint) and leaves the rest to the next process that
 * finds the WAL too big.
 *
 * The process that empties the WAL pays its fsyncs, and so does the
 * first to write after it: SQLite syncs a new WAL's header (and, once a
 * process, the directory). Done on open, both fall on the one command,
 * before its first write; done on close, they would fall on two. So a
 * short command leaves a WAL a little over the limit to the next one;
 * only a command that wrote much (a warm, an import) empties on its way
 * out what it made.
 */
static void
wal_trim(struct pw_store *st, off_t limit)
{
	struct stat	sb;

	if (st->wal == NULL || stat(st->wal, &sb) != 0 ||
	    sb.st_size <= limit)
		return;
	sqlite3_busy_timeout(st->db, 0);
	(void)sqlite3_wal_checkpoint_v2(st->db, "main",
	    SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
}

static pthread_once_t	sqlite_once = PTHREAD_ONCE_INIT;

/*
 * Before SQLite's first use in this process. Most pw processes live for
 * one command, so SQLite's defaults for long-lived ones cost more than
 * they give: counting every allocation (a mutex and a counter each:
 * 15% of a fetch's time in SQLite), and a first slab of 20 pages for each
 * connection's page cache, made ready page by page whether used or
 * not (40 page faults of a fetch's 700).
 */
static void
sqlite_setup(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

int
pw_store_open(const char *path, int mode, struct pw_store **out,
    struct pw_err *err)
{
	struct pw_store	*st;
	struct stat	 sb;
	int		 r, flags, writable, exists, fd, defer;
	char		*dir;

	if ((defer = mode == PW_OPEN_DEFER))
		mode = PW_OPEN_RW;
	pthread_once(&sqlite_once, sqlite_setup);
	exists = stat(path, &sb) == 0;
	/* Only a file that is not there reads as an empty pool. */
	if (!exists && errno != ENOENT)
		return pw_failf(err, PW_ESTATE, "%s: cannot open: %s", path,
		    strerror(errno));
	if (exists && !S_ISREG(sb.st_mode))
		return pw_failf(err, PW_ESTATE, "%s: not a regular file", path);
	st = pw_xcalloc(1, sizeof *st);
	st->path = pw_xstrdup(path);

	if (!exists && (mode != PW_OPEN_RW || defer)) {
		/*
		 * Nothing to read: an empty pool. PW_OPEN_DEFER makes the file
		 * only at the first write (materialize), so that a command
		 * that refuses its input leaves no state file behind.
		 */
		r = sqlite3_open_v2(":memory:", &st->db, SQLITE_OPEN_READWRITE,
		    NULL);
		if (r != SQLITE_OK || (r = check_schema(st, 1, err)) != 0)
			goto fail;
		st->pending = defer;
		*out = st;
		return 0;
	}
	if (!exists) {
		dir = pw_dirname(path);
		r = pw_mkdirs(dir, 0700, err);
		free(dir);
		if (r != 0)
			goto fail;
		if ((r = writable_dir_of(path, err)) != 0)
			goto fail;
		/* Create it 0600 ourselves: SQLite would make it 0644. */
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST) {
			r = pw_failf(err, PW_ESTATE, "%s: cannot create: %s",
			    path, strerror(errno));
			goto fail;
		}
		if (fd >= 0)
			close(fd);
	}
	if (access(path, R_OK) != 0) {
		r = pw_failf(err, PW_ESTATE, "%s: cannot open: %s", path,
		    strerror(errno));
		goto fail;
	}
	writable = access(path, W_OK) == 0;
	if (mode == PW_OPEN_RW && !writable) {
		r = pw_failf(err, PW_ESTATE, "%s: state file is read-only",
		    path);
		goto fail;
	}
	if (mode == PW_OPEN_RW && (r = writable_dir_of(path, err)) != 0)
		goto fail;
	flags = (writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) |
	    SQLITE_OPEN_NOMUTEX;
	r = sqlite3_open_v2(path, &st->db, flags, NULL);
	if (r != SQLITE_OK) {
		r = db_fail(st, r, err, "open");
		goto fail;
	}
	if ((r = check_header(st, err)) < 0)
		goto fail;
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_update_hook(st->db, on_update, st);
	if ((r = check_schema(st, writable, err)) != 0)
		goto fail;
	/*
	 * pw runs as many short processes. SQLite's last connection out
	 * checkpoints the WAL into the file on close, at the price of four
	 * fsyncs, which is most of a short command's time. So a command
	 * leaves its commits in the WAL, and whoever finds the WAL grown
	 * past WAL_TRIM_BYTES, on open or on close, checkpoints and empties
	 * it (wal_trim). The WAL each process reads on open (SQLite's
	 * recovery) stays small, and durability is that of
	 * synchronous=NORMAL: a power loss may take back the last commits,
	 * never corrupt the file. The WAL file is kept, not unlinked:
	 * making it each run costs more than the work. Only for a file
	 * known to be ours: a refused one is closed the ordinary way, which
	 * removes the -wal and -shm reading it made.
	 */
	if (writable) {
		int	one = 1;

		sqlite3_file_control(st->db, "main", SQLITE_FCNTL_PERSIST_WAL,
		    &one);
		sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
		    NULL);
		st->wal = pw_xasprintf("%s-wal", path);
	}
	/*
	 * Reads come straight from a memory map of the file: a selection
	 * over a large pool then costs no copies into SQLite's page cache.
	 */
	if ((r = exec_sql(st, "PRAGMA foreign_keys=ON;"
	    "PRAGMA synchronous=NORMAL;PRAGMA mmap_size=1073741824;"
	    "PRAGMA journal_size_limit=0", err)) != 0)
		goto fail;
	wal_trim(st, WAL_TRIM_BYTES);
	*out = st;
	return 0;
fail:
	pw_store_close(st);
	return r != 0 ? r : PW_ESTATE;
}

void
pw_store_close(struct pw_store *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_finalize(st->many);
	for (int i = 0; i < SVC_STMTS; i++)
		sqlite3_finalize(st->svc[i]);
	for (int i = 0; i < CACHED; i++) {
		sqlite3_finalize(st->cache[i].s);
		free(st->cache[i].sql);
	}
	if (!st->in_txn)
		wal_trim(st, WAL_TRIM_CLOSE_BYTES);
	sqlite3_close(st->db);
	free(st->wal);
	free(st->path);
	free(st);
}

const char *
pw_store_path(struct pw_store *st)
{
	return st->path;
}

/* Make the state file that was not there at open, and use it from now. */
static int
materialize(struct pw_store *st, struct pw_err *err)
{
	struct pw_store	*real, tmp;
	int		 r;

	if ((r = pw_store_open(st->path, PW_OPEN_RW, &real, err)) != 0)
		return r;
	tmp = *st;
	*st = *real;
	*real = tmp;
	sqlite3_update_hook(st->db, on_update, st);
	pw_store_close(real);	/* the empty stand-in */
	return 0;
}

int
pw_store_begin(struct pw_store *st, struct pw_err *err)
{
	int	r;

	if (st->pending && (r = materialize(st, err)) != 0)
		return r;
	if ((r = cached_run(st, "BEGIN IMMEDIATE", err)) == 0) {
		st->in_txn = 1;
		st->pool_dirty = 0;
	}
	return r;
}

int
pw_store_commit(struct pw_store *st, struct pw_err *err)
{
	int	r;

	/*
	 * Move the pool's generation, inside the transaction that changed
	 * it (an upsert: its change is made at the first step).
	 */
	st->bumped = 0;
	if ((r = st->pool_dirty ? stmt_int(st, S_GEN_BUMP, &st->bumped,
	    "count a change", err) : 0) == 0)
		r = cached_run(st, "COMMIT", err);
	st->pool_dirty = 0;
	if (r != 0)
		pw_store_rollback(st);
	st->in_txn = 0;
	return r;
}

void
pw_store_rollback(struct pw_store *st)
{
	struct pw_err	ignored;

	if (!sqlite3_get_autocommit(st->db))
		cached_run(st, "ROLLBACK", &ignored);
	st->in_txn = 0;
}

/* ------------------------------------------------------------- config */

int
pw_store_config_each(struct pw_store *st, pw_kv_fn *fn, void *arg,
    struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc, r = 0;

	rc = cached_get(st, "SELECT key, value FROM config", &s);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "read config");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		r = fn(arg, (const char *)sqlite3_column_text(s, 0),
		    (const char *)sqlite3_column_text(s, 1));
		if (r != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = db_fail(st, rc, err, "read config");
	cached_put(st, s);
	return r;
}

static int
step_done(struct pw_store *st, sqlite3_stmt *s, struct pw_err *err,
    const char *what)
{
	int	rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : db_fail(st, rc, err, what);
}

/*
 * Run prepared statement id with parameters ?1.. bound from the
 * arguments as fmt says: 't' text (const char *), 'i' int64_t.
 */
static int
run_stmt(struct pw_store *st, enum stmt_id id, struct pw_err *err,
    const char *what, const char *fmt, ...)
{
	sqlite3_stmt	*s;
	va_list		 ap;

	if ((s = stmt_get(st, id, err)) == NULL)
		return err->code;
	va_start(ap, fmt);
	for (int i = 0; fmt[i] != '\0'; i++) {
		if (fmt[i] == 't')
			sqlite3_bind_text(s, i + 1, va_arg(ap, const char *),
			    -1, SQLITE_STATIC);
		else
			sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
	}
	va_end(ap);
	return step_done(st, s, err, what);
}

int
pw_store_config_put(struct pw_store *st, const char *key, const char *value,
    struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 r, own = !st->in_txn;

	/* In a transaction, its own if need be: see on_update. */
	if (own && (r = pw_store_begin(st, err)) != 0)
		return r;
	if ((s = stmt_get(st, value ? S_CONFIG_PUT : S_CONFIG_DEL,
	    err)) == NULL)
		r = err->code;
	else {
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		if (value != NULL)
			sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
		r = step_done(st, s, err, "write config");
	}
	if (own && r == 0)
		return pw_store_commit(st, err);
	if (own)
		pw_store_rollback(st);
	return r;
}

/* ------------------------------------------------------------ proxies */

static void
bind_opt_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* Bind the insert parameters ?off+1..?off+13 of r to s. */
static void
bind_row(sqlite3_stmt *s, int off, const struct pw_row *r)
{
	const struct pw_proxy	*p = &r->p;

	sqlite3_bind_text(s, off + 1, r->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, off + 2, r->url, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, off + 3, pw_scheme_name(p->addr.scheme), -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(s, off + 4, p->addr.host, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, off + 5, p->addr.port);
	if (r->user != NULL)
		sqlite3_bind_blob(s, off + 6, r->user, r->user_len,
		    SQLITE_STATIC);
	if (r->pass != NULL)
		sqlite3_bind_blob(s, off + 7, r->pass, r->pass_len,
		    SQLITE_STATIC);
	bind_opt_text(s, off + 8, p->source);
	bind_opt_text(s, off + 9, p->country);
	bind_opt_text(s, off + 10, p->region);
	if (p->weight >= 0)
		sqlite3_bind_double(s, off + 11, p->weight);
	sqlite3_bind_int64(s, off + 12, p->added_at);
	if (p->expires_at > 0)
		sqlite3_bind_int64(s, off + 13, p->expires_at);
}

int
pw_store_proxy_insert(struct pw_store *st, const struct pw_row *r,
    int64_t *id, int *dup, struct pw_err *err)
{
	sqlite3_stmt		*s;
	int			 rc;

	/*
	 * Look first: an insert that a duplicate key refuses would still
	 * use up an id (AUTOINCREMENT), leaving gaps in a batch's ids.
	 */
	*dup = 0;
	if ((rc = pw_store_proxy_find(st, r->key, id, err)) == 0) {
		*dup = 1;
		return 0;
	}
	if (rc != PW_ENOTFOUND)
		return rc;
	if ((s = stmt_get(st, S_INSERT, err)) == NULL)
		return err->code;
	bind_row(s, 0, r);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, rc, err, "add proxy");
	*id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int
pw_store_proxy_pass(struct pw_store *st, int64_t id, unsigned char **pass,
    size_t *len, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	*pass = NULL;
	*len = 0;
	if ((s = stmt_get(st, S_PASS_GET, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_BLOB) {
		*len = sqlite3_column_bytes(s, 0);
		*pass = pw_xmalloc(*len);
		memcpy(*pass, sqlite3_column_blob(s, 0), *len);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return PW_ENOTFOUND;
	return db_fail(st, rc, err, "read proxy");
}

int
pw_store_proxy_set_pass(struct pw_store *st, int64_t id,
    const unsigned char *pass, size_t len, int64_t now, struct pw_err *err)
{
	sqlite3_stmt	*s;

	if ((s = stmt_get(st, S_PASS_PUT, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, id);
	if (pass != NULL)
		sqlite3_bind_blob(s, 2, pass, len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, now);
	return step_done(st, s, err, "update proxy");
}

int
pw_store_proxy_find(struct pw_store *st, const char *key, int64_t *id,
    struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt_get(st, S_FIND, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return PW_ENOTFOUND;
	return db_fail(st, rc, err, "find proxy");
}

int
pw_store_proxy_exists(struct pw_store *st, int64_t id, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt_get(st, S_EXISTS, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return PW_ENOTFOUND;
	return db_fail(st, rc, err, "find proxy");
}

int
pw_store_proxy_delete(struct pw_store *st, int64_t id, struct pw_err *err)
{
	sqlite3_stmt	*s;

	if ((s = stmt_get(st, S_DELETE, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, id);
	return step_done(st, s, err, "remove proxy");
}

int
pw_store_proxy_clear(struct pw_store *st, int64_t *n, struct pw_err *err)
{
	int	r;

	if ((r = exec_sql(st, "DELETE FROM proxies", err)) != 0)
		return r;
	*n = sqlite3_changes64(st->db);
	return 0;
}

int
pw_store_proxy_update_meta(struct pw_store *st, int64_t id,
    const struct pw_meta *m, int64_t now, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	rc = cached_get(st, "UPDATE proxies SET "
	    "source = coalesce(?2, source), country = coalesce(?3, country), "
	    "region = coalesce(?4, region), weight = coalesce(?5, weight), "
	    "expires_at = coalesce(?6, expires_at), updated_at = ?7 "
	    "WHERE id = ?1", &s);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "update proxy");
	sqlite3_bind_int64(s, 1, id);
	bind_opt_text(s, 2, m->source);
	bind_opt_text(s, 3, m->country);
	bind_opt_text(s, 4, m->region);
	if (m->weight >= 0)
		sqlite3_bind_double(s, 5, m->weight);
	if (m->ttl > 0)
		sqlite3_bind_int64(s, 6, now + m->ttl);
	sqlite3_bind_int64(s, 7, now);
	rc = sqlite3_step(s);
	cached_put(st, s);
	if (rc != SQLITE_DONE)
		return db_fail(st, rc, err, "update proxy");
	return sqlite3_changes(st->db) == 1 ? 0 : PW_ENOTFOUND;
}

#define PROXY_COLS "id, key, url, scheme, host, port, user, pass, source, " \
	"country, region, status, anonymity, weight, added_at, updated_at, " \
	"expires_at, last_checked, last_used, cooldown_until, started, " \
	"completed, succeeded, failed, consec_fail, latency_ms, " \
	"window_count"

static const char *
col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

static int64_t
col_i64(sqlite3_stmt *s, int i, int64_t null)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return null;
	return sqlite3_column_int64(s, i);
}

static double
col_real(sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return -1;
	return sqlite3_column_double(s, i);
}

/* Fill r with views into the current row of s (valid until next step). */
static void
row_read(sqlite3_stmt *s, struct pw_row *r)
{
	struct pw_proxy	*p = &r->p;
	enum pw_scheme	 sch = PW_HTTP;
	int		 status = PW_UNKNOWN;

	memset(r, 0, sizeof *r);
	p->id = sqlite3_column_int64(s, 0);
	r->key = col_text(s, 1);
	r->url = col_text(s, 2);
	pw_scheme_parse(col_text(s, 3), &sch);
	p->addr.scheme = sch;
	p->addr.host = (char *)col_text(s, 4);
	p->addr.port = sqlite3_column_int(s, 5);
	r->user = sqlite3_column_blob(s, 6);
	r->user_len = sqlite3_column_bytes(s, 6);
	r->pass = sqlite3_column_blob(s, 7);
	r->pass_len = sqlite3_column_bytes(s, 7);
	p->has_creds = r->user != NULL;
	p->source = (char *)col_text(s, 8);
	p->country = (char *)col_text(s, 9);
	p->region = (char *)col_text(s, 10);
	pw_status_parse(col_text(s, 11), &status);
	p->status = status;
	p->anonymity = (char *)col_text(s, 12);
	p->weight = col_real(s, 13);
	p->added_at = col_i64(s, 14, 0);
	p->updated_at = col_i64(s, 15, 0);
	p->expires_at = col_i64(s, 16, 0);
	p->last_checked = col_i64(s, 17, 0);
	p->last_used = col_i64(s, 18, 0);
	p->cooldown_until = col_i64(s, 19, 0);
	p->started = col_i64(s, 20, 0);
	p->completed = col_i64(s, 21, 0);
	p->succeeded = col_i64(s, 22, 0);
	p->failed = col_i64(s, 23, 0);
	p->consec_fail = col_i64(s, 24, 0);
	p->latency_ms = col_real(s, 25);
	p->window_count = col_i64(s, 26, 0);
}

/*
 * Append the WHERE terms of f to q; texts[] gets the values to bind from
 * parameter ?first on. Returns how many.
 */
static int
filter_sql(struct pw_buf *q, const struct pw_filter *f, int first,
    const char *texts[8], double *maxlat)
{
	int	n = 0;

	*maxlat = -1;
	if (f == NULL)
		return 0;
	if (f->status >= 0) {
		pw_buf_addf(q, " AND status = ?%d", first + n);
		texts[n++] = pw_status_name(f->status);
	}
	if (f->scheme >= 0) {
		pw_buf_addf(q, " AND scheme = ?%d", first + n);
		texts[n++] = pw_scheme_name(f->scheme);
	}
#define TEXT_FILTER(field) do {						\
	if (f->field != NULL) {						\
		pw_buf_addf(q, " AND " #field " = ?%d", first + n);	\
		texts[n++] = f->field;					\
	}								\
} while (0)
	TEXT_FILTER(source);
	TEXT_FILTER(country);
	TEXT_FILTER(anonymity);
#undef TEXT_FILTER
	/* Regions, like countries, match in any (ASCII) case. */
	if (f->region != NULL) {
		pw_buf_addf(q, " AND region = ?%d COLLATE NOCASE", first + n);
		texts[n++] = f->region;
	}
	if (f->unmeasured)
		pw_buf_adds(q, " AND latency_ms IS NULL");
	if (f->max_latency_ms > 0) {
		/* The last parameter, bound as a number by the caller. */
		pw_buf_addf(q, " AND latency_ms <= ?%d", first + n);
		*maxlat = f->max_latency_ms;
	}
	return n;
}

static void
filter_bind(sqlite3_stmt *s, int first, const char *const *texts, int n,
    double maxlat)
{
	for (int i = 0; i < n; i++)
		sqlite3_bind_text(s, first + i, texts[i], -1, SQLITE_STATIC);
	if (maxlat > 0)
		sqlite3_bind_double(s, first + n, maxlat);
}

int
pw_store_proxy_each(struct pw_store *st, const struct pw_filter *f,
    int64_t id, pw_row_fn *fn, void *arg, struct pw_err *err)
{
	struct pw_buf	 q;
	sqlite3_stmt	*s;
	struct pw_row	 row;
	int		 rc, r = 0, n = 0, ntexts;
	const char	*texts[8];
	double		 maxlat;

	pw_buf_init(&q);
	pw_buf_adds(&q, "SELECT " PROXY_COLS " FROM proxies WHERE 1");
	if (id != 0)
		pw_buf_adds(&q, " AND id = ?1");
	ntexts = filter_sql(&q, f, 2, texts, &maxlat);
	pw_buf_adds(&q, " ORDER BY id");
	rc = cached_get(st, q.data, &s);
	pw_buf_release(&q);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "list proxies");
	if (id != 0)
		sqlite3_bind_int64(s, 1, id);
	filter_bind(s, 2, texts, ntexts, maxlat);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row_read(s, &row);
		n++;
		if ((r = fn(arg, &row)) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = db_fail(st, rc, err, "list proxies");
	cached_put(st, s);
	if (r == 0 && id != 0 && n == 0)
		r = PW_ENOTFOUND;
	return r;
}

/* ------------------------------------------------------------ selection */

#define ELIGIBLE "status != 'unhealthy' AND status != 'pending' AND " \
	"(cooldown_until IS NULL OR cooldown_until <= ?1) AND " \
	"(expires_at IS NULL OR expires_at > ?1)"

#define CAND_COLS "id, weight, latency_ms, started, succeeded, failed, " \
	"window_count"

static void
cand_read(sqlite3_stmt *s, struct pw_candidate *k)
{
	k->id = sqlite3_column_int64(s, 0);
	k->weight = col_real(s, 1);
	k->latency_ms = col_real(s, 2);
	k->started = sqlite3_column_int64(s, 3);
	k->succeeded = sqlite3_column_int64(s, 4);
	k->failed = sqlite3_column_int64(s, 5);
	k->window_count = sqlite3_column_int64(s, 6);
}

/*
 * Prepare "SELECT <cols> FROM proxies WHERE <eligible, sel> <tail>" with
 * ?1 bound to now; the caller binds ?2 and ?3 when tail uses them.
 * Exclusions are our own integers, written into the SQL.
 */
static int
sel_prepare(struct pw_store *st, const char *cols, const struct pw_sel *sel,
    const char *tail, sqlite3_stmt **out, struct pw_err *err)
{
	struct pw_buf	 q;
	const char	*texts[8];
	double		 maxlat;
	int		 rc, ntexts;

	pw_buf_init(&q);
	pw_buf_addf(&q, "SELECT %s FROM proxies WHERE " ELIGIBLE, cols);
	ntexts = filter_sql(&q, sel->f, 4, texts, &maxlat);
	if (sel->not_degraded)
		pw_buf_adds(&q, " AND status != 'degraded'");
	if (sel->nex > 0) {
		pw_buf_adds(&q, " AND id NOT IN (");
		for (size_t i = 0; i < sel->nex; i++)
			pw_buf_addf(&q, "%s%lld", i ? "," : "",
			    (long long)sel->ex[i]);
		pw_buf_addc(&q, ')');
	}
	pw_buf_addf(&q, " %s", tail);
	rc = cached_get(st, q.data, out);
	pw_buf_release(&q);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "select proxies");
	sqlite3_bind_int64(*out, 1, sel->now);
	filter_bind(*out, 4, texts, ntexts, maxlat);
	return 0;
}

int
pw_store_candidates(struct pw_store *st, const struct pw_sel *sel,
    struct pw_candidate **out, size_t *nout, struct pw_err *err)
{
	sqlite3_stmt		*s;
	struct pw_candidate	*c = NULL;
	size_t			 n = 0, cap = 0;
	int			 rc;

	if ((rc = sel_prepare(st, CAND_COLS, sel, "ORDER BY id", &s,
	    err)) != 0)
		return rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			c = pw_xrealloc(c, cap * sizeof *c);
		}
		cand_read(s, &c[n++]);
	}
	cached_put(st, s);
	if (rc != SQLITE_DONE) {
		free(c);
		return db_fail(st, rc, err, "select proxies");
	}
	*out = c;
	*nout = n;
	return 0;
}

int
pw_store_first(struct pw_store *st, const struct pw_sel *sel, int order,
    int64_t after, int64_t *id, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	rc = sel_prepare(st, "id", sel, order == PW_FIRST_LEAST_USED ?
	    "ORDER BY window_count, id LIMIT 1" :
	    "AND id > ?2 ORDER BY id LIMIT 1", &s, err);
	if (rc != 0)
		return rc;
	if (order != PW_FIRST_LEAST_USED)
		sqlite3_bind_int64(s, 2, after);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	cached_put(st, s);
	if (rc == SQLITE_DONE)
		return PW_ENOTFOUND;
	return rc == SQLITE_ROW ? 0 : db_fail(st, rc, err, "select proxy");
}

struct pw_probe {
	struct pw_store	*st;
	sqlite3_stmt	*s;
};

int
pw_store_probe_new(struct pw_store *st, const struct pw_sel *sel,
    struct pw_probe **out, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 r;

	if ((r = sel_prepare(st, CAND_COLS, sel, "AND id = ?2", &s,
	    err)) != 0)
		return r;
	*out = pw_xmalloc(sizeof **out);
	(*out)->st = st;
	(*out)->s = s;
	return 0;
}

int
pw_store_probe(struct pw_probe *p, int64_t id, struct pw_candidate *c,
    struct pw_err *err)
{
	int	rc;

	sqlite3_bind_int64(p->s, 2, id);
	rc = sqlite3_step(p->s);
	if (rc == SQLITE_ROW)
		cand_read(p->s, c);
	sqlite3_reset(p->s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : db_fail(p->st, rc, err, "probe proxy");
}

void
pw_store_probe_free(struct pw_probe *p)
{
	if (p == NULL)
		return;
	cached_put(p->st, p->s);
	free(p);
}

int
pw_store_bounds(struct pw_store *st, struct pw_bounds *b, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt_get(st, S_BOUNDS, err)) == NULL)
		return err->code;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		b->min_id = col_i64(s, 0, 0);
		b->max_id = col_i64(s, 1, 0);
		b->max_weight = col_real(s, 2);
		b->min_latency_ms = col_real(s, 3);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : db_fail(st, rc, err, "read bounds");
}

int
pw_store_window_reset(struct pw_store *st, struct pw_err *err)
{
	return run_stmt(st, S_WINDOW_RESET, err, "reset window", "");
}

int
pw_store_ineligible(struct pw_store *st, const struct pw_filter *f,
    int64_t now, int64_t counts[6], struct pw_err *err)
{
	struct pw_buf	 q;
	sqlite3_stmt	*s;
	const char	*texts[8];
	double		 maxlat;
	int		 rc, ntexts;

	pw_buf_init(&q);
	pw_buf_adds(&q, "SELECT (SELECT count(*) FROM proxies), "
	    "coalesce(sum(status = 'unhealthy'), 0), "
	    "coalesce(sum(status != 'unhealthy' AND status != 'pending' AND "
	    "cooldown_until > ?1), 0), "
	    "coalesce(sum(expires_at <= ?1), 0), count(*), "
	    "coalesce(sum(status = 'pending'), 0) "
	    "FROM proxies WHERE 1");
	ntexts = filter_sql(&q, f, 2, texts, &maxlat);
	rc = cached_get(st, q.data, &s);
	pw_buf_release(&q);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "count proxies");
	sqlite3_bind_int64(s, 1, now);
	filter_bind(s, 2, texts, ntexts, maxlat);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		for (int i = 0; i < 6; i++)
			counts[i] = sqlite3_column_int64(s, i);
	cached_put(st, s);
	if (rc != SQLITE_ROW)
		return db_fail(st, rc, err, "count proxies");
	return 0;
}

int
pw_store_rotation_get(struct pw_store *st, const char *name, int64_t *value,
    struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt_get(st, S_ROT_GET, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	*value = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, rc, err, "read cursor");
	return 0;
}

int
pw_store_rotation_put(struct pw_store *st, const char *name, int64_t value,
    struct pw_err *err)
{
	return run_stmt(st, S_ROT_PUT, err, "write cursor", "ti", name,
	    value);
}

int
pw_store_proxy_started(struct pw_store *st, int64_t id, int64_t now,
    struct pw_err *err)
{
	return run_stmt(st, S_STARTED, err, "mark proxy used", "ii", id, now);
}

int
pw_store_proxy_report(struct pw_store *st, int64_t id, int outcome,
    double latency_ms, double alpha, int64_t threshold, int64_t cooldown,
    int64_t now, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt_get(st, S_REPORT, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int(s, 2, outcome);
	if (latency_ms >= 0)
		sqlite3_bind_double(s, 3, latency_ms);
	sqlite3_bind_double(s, 4, alpha);
	sqlite3_bind_int64(s, 5, threshold);
	sqlite3_bind_int64(s, 6, now + cooldown);
	sqlite3_bind_int64(s, 7, now);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return db_fail(st, rc, err, "record outcome");
	return sqlite3_changes(st->db) == 1 ? 0 : PW_ENOTFOUND;
}

/* ------------------------------------------------------------- sessions */

int
pw_store_session_get(struct pw_store *st, const char *sid, int64_t now,
    int64_t *proxy_id, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt_get(st, S_SESSION_GET, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, sid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*proxy_id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return PW_ENOTFOUND;
	if (rc != SQLITE_ROW)
		return db_fail(st, rc, err, "read session");
	return 0;
}

int
pw_store_session_put(struct pw_store *st, const char *sid, int64_t proxy_id,
    int64_t now, int64_t expires_at, struct pw_err *err)
{
	return run_stmt(st, S_SESSION_PUT, err, "write session", "tiii", sid,
	    proxy_id, now, expires_at);
}

int
pw_store_session_prune(struct pw_store *st, int64_t now, int64_t *removed,
    struct pw_err *err)
{
	int	r;

	r = run_stmt(st, S_SESSION_PRUNE, err, "prune sessions", "i", now);
	if (r == 0 && removed != NULL)
		*removed = sqlite3_changes(st->db);
	return r;
}

int
pw_store_session_each(struct pw_store *st, int64_t now, pw_session_fn *fn,
    void *arg, struct pw_err *err)
{
	sqlite3_stmt		*s;
	struct pw_session	 ss;
	int			 rc, r = 0;

	rc = cached_get(st, "SELECT id, proxy_id, created_at, "
	    "last_used, expires_at, requests, failovers FROM sessions "
	    "WHERE expires_at > ?1 ORDER BY id", &s);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "list sessions");
	sqlite3_bind_int64(s, 1, now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ss.id = col_text(s, 0);
		ss.proxy_id = sqlite3_column_int64(s, 1);
		ss.created_at = sqlite3_column_int64(s, 2);
		ss.last_used = sqlite3_column_int64(s, 3);
		ss.expires_at = sqlite3_column_int64(s, 4);
		ss.requests = sqlite3_column_int64(s, 5);
		ss.failovers = sqlite3_column_int64(s, 6);
		if ((r = fn(arg, &ss)) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = db_fail(st, rc, err, "list sessions");
	cached_put(st, s);
	return r;
}

/* --------------------------------------------------------------- health */

int
pw_store_health_record(struct pw_store *st, int64_t id, int ok,
    double latency_ms, double alpha, int64_t threshold, const char *anonymity,
    int64_t now, int *status, int64_t *consec, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc, r = 0, v = PW_UNKNOWN;

	if ((s = stmt_get(st, S_HEALTH, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int(s, 2, ok != 0);
	if (latency_ms >= 0)
		sqlite3_bind_double(s, 3, latency_ms);
	sqlite3_bind_double(s, 4, alpha);
	sqlite3_bind_int64(s, 5, threshold);
	sqlite3_bind_int64(s, 6, now);
	bind_opt_text(s, 7, anonymity);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		pw_status_parse(col_text(s, 0), &v);
		*status = v;
		*consec = sqlite3_column_int64(s, 1);
		rc = sqlite3_step(s);
	} else if (rc == SQLITE_DONE)
		r = PW_ENOTFOUND;
	if (rc != SQLITE_DONE)
		r = db_fail(st, rc, err, "record health check");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

/* ---------------------------------------------------------------- cache */

int
pw_store_proxy_refresh(struct pw_store *st, int64_t id, const struct pw_row *r,
    int64_t now, struct pw_err *err)
{
	const struct pw_proxy	*p = &r->p;
	sqlite3_stmt		*s;

	if ((s = stmt_get(st, S_REFRESH, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, id);
	if (p->expires_at > 0)
		sqlite3_bind_int64(s, 2, p->expires_at);
	bind_opt_text(s, 3, p->source);
	bind_opt_text(s, 4, p->country);
	bind_opt_text(s, 5, p->region);
	if (p->weight >= 0)
		sqlite3_bind_double(s, 6, p->weight);
	sqlite3_bind_int64(s, 7, now);
	return step_done(st, s, err, "refresh proxy");
}

int
pw_store_stat_add(struct pw_store *st, const char *name, int64_t n,
    struct pw_err *err)
{
	return run_stmt(st, S_STAT_ADD, err, "count", "ti", name, n);
}

int
pw_store_meta_put(struct pw_store *st, const char *key, int64_t value,
    struct pw_err *err)
{
	return run_stmt(st, S_META_PUT, err, "write meta", "ti", key, value);
}

int
pw_store_evict(struct pw_store *st, int what, int64_t now, int64_t limit,
    int64_t *n, struct pw_err *err)
{
	int	r;

	r = run_stmt(st, what == PW_EVICT_TTL ? S_EVICT_TTL : S_EVICT_HEALTH,
	    err, "evict proxies", "ii", now, limit);
	if (r == 0)
		*n = sqlite3_changes64(st->db);
	return r;
}

/* Run sql (?1 = now) and hand each row's text and integer to fn. */
static int
each_pair(struct pw_store *st, const char *sql, int64_t now,
    void (*fn)(void *, const char *, int64_t), void *arg, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	rc = cached_get(st, sql, &s);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "read stats");
	if (sqlite3_bind_parameter_count(s) > 0)
		sqlite3_bind_int64(s, 1, now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		fn(arg, col_text(s, 0), sqlite3_column_int64(s, 1));
	cached_put(st, s);
	return rc == SQLITE_DONE ? 0 : db_fail(st, rc, err, "read stats");
}

static void
stat_status(void *arg, const char *name, int64_t n)
{
	struct pw_cache_stats	*cs = arg;
	int			 i;

	if (name != NULL && pw_status_parse(name, &i) == 0)
		cs->by_status[i] += n;
	cs->total += n;
}

static void
stat_source(void *arg, const char *name, int64_t n)
{
	struct pw_cache_stats	*cs = arg;

	cs->by_source = pw_xrealloc(cs->by_source, (cs->nsources + 1) *
	    sizeof *cs->by_source);
	cs->by_source[cs->nsources].name = name ? pw_xstrdup(name) : NULL;
	cs->by_source[cs->nsources++].n = n;
}

/* The delegation counters (service.c, delegate.c). */
static void
stat_service(struct pw_cache_stats *cs, const char *name, int64_t n)
{
	static const struct {
		const char	*name;
		size_t		 off;
	} m[] = {
#define M(n, f) { n, offsetof(struct pw_cache_stats, f) }
		M("service.calls", svc_calls),
		M("service.errors", svc_errors),
		M("service.cache_hits", svc_cache_hits),
		M("service.fallbacks", svc_fallbacks),
		M("service.breaker.opened", svc_breaker_opened),
		M("service.breaker.half_opened", svc_breaker_half_opened),
		M("service.breaker.closed", svc_breaker_closed),
		M("service.outbox.depth", svc_outbox_depth),
		M("service.outbox.sent", svc_outbox_sent),
		M("service.outbox.dropped", svc_outbox_dropped),
		M("delegate.requests", dlg_requests),
		M("delegate.feedback", dlg_feedback),
#undef M
	};

	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
		if (strcmp(name, m[i].name) == 0)
			*(int64_t *)((char *)cs + m[i].off) = n;
}

static void
stat_one(void *arg, const char *name, int64_t n)
{
	struct pw_cache_stats	*cs = arg;
	static const char *const ev[PW_EVICT_COUNT] = {
		"evict.ttl", "evict.health", "evict.manual",
		"evict.corruption"
	};

	if (name == NULL)
		return;
	if (strcmp(name, "expired") == 0)
		cs->expired = n;
	else if (strcmp(name, "select.hits") == 0)
		cs->hits = n;
	else if (strcmp(name, "select.misses") == 0)
		cs->misses = n;
	else if (strcmp(name, "last_warm") == 0)
		cs->last_warm = n;
	else if (strcmp(name, "last_health") == 0)
		cs->last_health = n;
	for (int i = 0; i < PW_EVICT_COUNT; i++)
		if (strcmp(name, ev[i]) == 0)
			cs->evictions[i] = n;
	if (strncmp(name, "service.", 8) == 0 ||
	    strncmp(name, "delegate.", 9) == 0)
		stat_service(cs, name, n);
}

int
pw_store_cache_stats(struct pw_store *st, int64_t now,
    struct pw_cache_stats *cs, struct pw_err *err)
{
	int	r;

	/* One snapshot for every figure. */
	if ((r = cached_run(st, "BEGIN", err)) != 0)
		return r;
	if ((r = each_pair(st, "SELECT status, count(*) FROM proxies "
	    "GROUP BY status", now, stat_status, cs, err)) != 0 ||
	    (r = each_pair(st, "SELECT source, count(*) FROM proxies "
	    "GROUP BY source ORDER BY source", now, stat_source, cs,
	    err)) != 0 ||
	    (r = each_pair(st, "SELECT 'expired', count(*) FROM proxies "
	    "WHERE expires_at <= ?1", now, stat_one, cs, err)) != 0 ||
	    (r = each_pair(st, "SELECT name, value FROM stats", now, stat_one,
	    cs, err)) != 0 ||
	    (r = each_pair(st, "SELECT key, value FROM meta WHERE key IN "
	    "('last_warm', 'last_health')", now, stat_one, cs, err)) != 0 ||
	    (r = each_pair(st, "SELECT 'service.outbox.depth', count(*) "
	    "FROM feedback_outbox", now, stat_one, cs, err)) != 0) {
		pw_store_rollback(st);
		return r;
	}
	pw_store_rollback(st);
	return 0;
}

int
pw_store_bulk(struct pw_store *st, struct pw_err *err)
{
	/*
	 * Index pages of a large pool stay cached between batches. The
	 * WAL is copied into the file (and both synced) once it holds 32
	 * MiB, not 4: a few checkpoints for a large warm, not one a batch.
	 */
	return exec_sql(st, "PRAGMA cache_size=-65536;"
	    "PRAGMA wal_autocheckpoint=8192", err);
}

/* "INSERT OR IGNORE ... VALUES (...), ..." of k rows, like S_INSERT. */
static int
many_prepare(struct pw_store *st, size_t k, sqlite3_stmt **out,
    struct pw_err *err)
{
	struct pw_buf	q;
	int		rc;

	pw_buf_init(&q);
	pw_buf_adds(&q, "INSERT OR IGNORE INTO proxies(key, url, scheme, host, "
	    "port, user, pass, source, country, region, weight, added_at, "
	    "updated_at, expires_at) VALUES ");
	for (size_t j = 0; j < k; j++) {
		int b = (int)j * 13;
		pw_buf_addf(&q, "%s(?%d, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d, "
		    "?%d, ?%d, ?%d, ?%d, ?%d, ?%d)", j ? ", " : "", b + 1,
		    b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9,
		    b + 10, b + 11, b + 12, b + 12, b + 13);
	}
	rc = sqlite3_prepare_v3(st->db, q.data, -1, k == MANY_ROWS ?
	    SQLITE_PREPARE_PERSISTENT : 0, out, NULL);
	pw_buf_release(&q);
	return rc == SQLITE_OK ? 0 : db_fail(st, rc, err, "prepare");
}

int
pw_store_proxy_insert_many(struct pw_store *st, const struct pw_row *rows,
    size_t n, int64_t *ids, struct pw_err *err)
{
	sqlite3_stmt	*s;
	size_t		 i, j, k;
	int64_t		 before = 0, last, changes;
	int		 rc, r, dup;

	for (i = 0; i < n; i += k) {
		k = n - i < MANY_ROWS ? n - i : MANY_ROWS;
		/* The id every new proxy gets one above, at the least. */
		if ((r = stmt_int(st, S_SEQ, &before, "read ids", err)) != 0)
			return r;
		if (k == MANY_ROWS) {
			if (st->many == NULL && (r = many_prepare(st, k,
			    &st->many, err)) != 0)
				return r;
			s = st->many;
		} else if ((r = many_prepare(st, k, &s, err)) != 0)
			return r;
		for (j = 0; j < k; j++)
			bind_row(s, (int)j * 13, &rows[i + j]);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		changes = sqlite3_changes64(st->db);
		last = sqlite3_last_insert_rowid(st->db);
		if (rc != SQLITE_DONE) {
			r = db_fail(st, rc, err, "add proxies");
			goto out;
		}
		if ((size_t)changes == k) {
			/* All new: their ids follow one another. */
			for (j = 0; j < k; j++)
				ids[i + j] = last - (int64_t)(k - 1 - j);
			r = 0;
			goto out;
		}
		/*
		 * Some were there already, and each refused row used up an
		 * id: take back the rows this statement added and the ids it
		 * used (nobody else writes inside our transaction), and
		 * insert one at a time, with no gaps in the ids. A savepoint
		 * would do the same, at the price of copying every page the
		 * statement touches first, on the path every row takes.
		 */
		if ((changes > 0 && (r = run_stmt(st, S_UNDO_ROWS, err,
		    "add proxies", "i", before)) != 0) ||
		    (r = run_stmt(st, S_UNDO_SEQ, err, "add proxies", "i",
		    before)) != 0)
			goto out;
		for (j = 0; j < k && r == 0; j++)
			r = pw_store_proxy_insert(st, &rows[i + j], &ids[i + j],
			    &dup, err);
out:
		if (s != st->many)
			sqlite3_finalize(s);
		if (r != 0)
			return r;
	}
	return 0;
}

int
pw_store_max_id(struct pw_store *st, int64_t *max, struct pw_err *err)
{
	return stmt_int(st, S_MAX_ID, max, "read ids", err);
}

/* --------------------------------------------------------- delegation */

enum svc_stmt { V_BRK_GET, V_BRK_PUT, V_BRK_CLAIM, V_CACHE_GET, V_CACHE_PUT,
    V_CACHE_DROP, V_HANDOUT_PUT, V_HANDOUT_PRUNE, V_OUTBOX_ADD, V_COUNT };
_Static_assert(V_COUNT == SVC_STMTS, "a statement slot each");

static const char *const svc_sql[V_COUNT] = {
	[V_BRK_GET] = "SELECT state, failures, since_ms FROM breakers "
	    "WHERE endpoint = ?1",
	[V_BRK_PUT] = "INSERT INTO breakers(endpoint, state, failures, "
	    "since_ms) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(endpoint) DO UPDATE "
	    "SET state = ?2, failures = ?3, since_ms = ?4",
	/*
	 * One process wins the trial call: the breaker open for long
	 * enough, or half-open for so long that its trial must have died.
	 */
	[V_BRK_CLAIM] = "UPDATE breakers SET state = 2, since_ms = ?3 "
	    "WHERE endpoint = ?1 AND state != 0 AND since_ms <= ?2",
	[V_CACHE_GET] = "SELECT proxy_id, url, sealed, strategy, endpoint, "
	    "expires_at FROM service_cache WHERE key = ?1",
	[V_CACHE_PUT] = "INSERT INTO service_cache(key, proxy_id, url, "
	    "sealed, strategy, endpoint, expires_at) "
	    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(key) DO UPDATE SET "
	    "proxy_id = ?2, url = ?3, sealed = ?4, strategy = ?5, "
	    "endpoint = ?6, expires_at = ?7",
	/* Kept, not deleted: pw pool report still knows whose it was. */
	[V_CACHE_DROP] = "UPDATE service_cache SET expires_at = 0 "
	    "WHERE proxy_id = ?1 AND expires_at != 0",
	/*
	 * Each proxy the service handed out, under a key no answer has
	 * ("handout:ID"; an answer's starts with "|" or a scheme), never
	 * live (expires_at 0): REPLACE gives it the newest rowid, and the
	 * rows older than the last ?1 inserts go.
	 */
	[V_HANDOUT_PUT] = "INSERT OR REPLACE INTO service_cache(key, "
	    "proxy_id, url, endpoint, expires_at) "
	    "VALUES('handout:' || ?1, ?1, ?2, ?3, 0)",
	[V_HANDOUT_PRUNE] = "DELETE FROM service_cache WHERE "
	    "key >= 'handout:' AND key < 'handout;' AND "
	    "rowid <= last_insert_rowid() - ?1",
	[V_OUTBOX_ADD] = "INSERT INTO feedback_outbox(proxy_id, "
	    "success, latency_ms, error, ts_ms) VALUES(?1, ?2, ?3, ?4, ?5)",
};

static sqlite3_stmt *
svc_get(struct pw_store *st, enum svc_stmt id, struct pw_err *err)
{
	int	rc;

	if (st->svc[id] == NULL) {
		rc = sqlite3_prepare_v3(st->db, svc_sql[id], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->svc[id], NULL);
		if (rc != SQLITE_OK) {
			db_fail(st, rc, err, "prepare");
			return NULL;
		}
	}
	return st->svc[id];
}

int
pw_store_breaker_get(struct pw_store *st, const char *endpoint,
    struct pw_breaker *b, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = svc_get(st, V_BRK_GET, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, endpoint, -1, SQLITE_STATIC);
	memset(b, 0, sizeof *b);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		b->state = sqlite3_column_int(s, 0);
		b->failures = sqlite3_column_int64(s, 1);
		b->since_ms = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, rc, err, "read breaker");
	return 0;
}

int
pw_store_breaker_put(struct pw_store *st, const char *endpoint,
    const struct pw_breaker *b, struct pw_err *err)
{
	sqlite3_stmt	*s;

	if ((s = svc_get(st, V_BRK_PUT, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, endpoint, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, b->state);
	sqlite3_bind_int64(s, 3, b->failures);
	sqlite3_bind_int64(s, 4, b->since_ms);
	return step_done(st, s, err, "write breaker");
}

int
pw_store_breaker_claim(struct pw_store *st, const char *endpoint,
    int64_t older_ms, int64_t now_ms, int *won, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 r;

	if ((s = svc_get(st, V_BRK_CLAIM, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, endpoint, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, older_ms);
	sqlite3_bind_int64(s, 3, now_ms);
	if ((r = step_done(st, s, err, "write breaker")) == 0)
		*won = sqlite3_changes(st->db) == 1;
	return r;
}

static char *
dup_text(sqlite3_stmt *s, int i)
{
	const char	*t = col_text(s, i);

	return t != NULL ? pw_xstrdup(t) : NULL;
}

int
pw_store_svc_cache_get(struct pw_store *st, const char *key,
    struct pw_svc_cached *c, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc, r = 0;

	if ((s = svc_get(st, V_CACHE_GET, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(c, 0, sizeof *c);
		c->proxy_id = sqlite3_column_int64(s, 0);
		c->url = dup_text(s, 1);
		if (sqlite3_column_type(s, 2) == SQLITE_BLOB) {
			c->sealed_len = sqlite3_column_bytes(s, 2);
			c->sealed = pw_xmalloc(c->sealed_len);
			memcpy(c->sealed, sqlite3_column_blob(s, 2),
			    c->sealed_len);
		}
		c->strategy = dup_text(s, 3);
		c->endpoint = dup_text(s, 4);
		c->expires_at = sqlite3_column_int64(s, 5);
	} else if (rc == SQLITE_DONE)
		r = PW_ENOTFOUND;
	else
		r = db_fail(st, rc, err, "read service cache");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

int
pw_store_svc_cache_put(struct pw_store *st, const char *key,
    const struct pw_svc_cached *c, struct pw_err *err)
{
	sqlite3_stmt	*s;

	if ((s = svc_get(st, V_CACHE_PUT, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, c->proxy_id);
	sqlite3_bind_text(s, 3, c->url, -1, SQLITE_STATIC);
	if (c->sealed != NULL)
		sqlite3_bind_blob(s, 4, c->sealed, (int)c->sealed_len,
		    SQLITE_STATIC);
	bind_opt_text(s, 5, c->strategy);
	sqlite3_bind_text(s, 6, c->endpoint, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 7, c->expires_at);
	return step_done(st, s, err, "write service cache");
}

int
pw_store_svc_cache_drop(struct pw_store *st, int64_t proxy_id, int64_t *n,
    struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 r;

	if ((s = svc_get(st, V_CACHE_DROP, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, proxy_id);
	if ((r = step_done(st, s, err, "write service cache")) == 0 &&
	    n != NULL)
		*n = sqlite3_changes(st->db);
	return r;
}

int
pw_store_svc_handout(struct pw_store *st, int64_t proxy_id, const char *url,
    const char *endpoint, int64_t max, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 r;

	if ((s = svc_get(st, V_HANDOUT_PUT, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, proxy_id);
	sqlite3_bind_text(s, 2, url, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, endpoint, -1, SQLITE_STATIC);
	if ((r = step_done(st, s, err, "write service cache")) != 0)
		return r;
	if ((s = svc_get(st, V_HANDOUT_PRUNE, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, max);
	return step_done(st, s, err, "write service cache");
}

int
pw_store_svc_cache_find(struct pw_store *st, const char *url, int64_t id,
    int64_t *proxy_id, char **found_url, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc, r = PW_ENOTFOUND;

	/* The newest record first: a service may give an id a new URL. */
	rc = cached_get(st, url != NULL ?
	    "SELECT proxy_id, url FROM service_cache WHERE url = ?1 "
	    "ORDER BY rowid DESC LIMIT 1" :
	    "SELECT proxy_id, url FROM service_cache WHERE proxy_id = ?2 "
	    "ORDER BY rowid DESC LIMIT 1", &s);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "read service cache");
	if (url != NULL)
		sqlite3_bind_text(s, 1, url, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(s, 2, id);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*proxy_id = sqlite3_column_int64(s, 0);
		if (found_url != NULL)
			*found_url = dup_text(s, 1);
		r = 0;
	} else if (rc != SQLITE_DONE)
		r = db_fail(st, rc, err, "read service cache");
	cached_put(st, s);
	return r;
}

void
pw_svc_cached_release(struct pw_svc_cached *c)
{
	free(c->url);
	free(c->sealed);
	free(c->strategy);
	free(c->endpoint);
	memset(c, 0, sizeof *c);
}

int
pw_store_outbox_add(struct pw_store *st, const struct pw_outcome *o,
    int64_t max, int *added, int64_t *dropped, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int64_t		 n = 0;
	int		 r;

	if ((s = svc_get(st, V_OUTBOX_ADD, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, o->proxy_id);
	sqlite3_bind_int(s, 2, o->success != 0);
	if (o->latency_ms >= 0)
		sqlite3_bind_double(s, 3, o->latency_ms);
	bind_opt_text(s, 4, o->error);
	sqlite3_bind_int64(s, 5, o->ts_ms);
	if ((r = step_done(st, s, err, "write outbox")) != 0)
		return r;
	*added = sqlite3_changes(st->db) == 1;
	*dropped = 0;
	if (!*added)
		return 0;
	/* Bounded: past max, the oldest outcomes go. */
	if ((r = pragma_int(st, "SELECT count(*) FROM feedback_outbox", &n,
	    err)) != 0)
		return r;
	if (n > max) {
		char	sql[160];

		snprintf(sql, sizeof sql, "DELETE FROM feedback_outbox WHERE "
		    "id IN (SELECT id FROM feedback_outbox ORDER BY id "
		    "LIMIT %lld)", (long long)(n - max));
		if ((r = exec_sql(st, sql, err)) != 0)
			return r;
		*dropped = n - max;
	}
	return 0;
}

static int
cmp_outcome(const void *a, const void *b)
{
	int64_t	x = ((const struct pw_outcome *)a)->id;
	int64_t	y = ((const struct pw_outcome *)b)->id;

	return (x > y) - (x < y);
}

int
pw_store_outbox_claim(struct pw_store *st, size_t limit, int64_t now_ms,
    int64_t until_ms, struct pw_outcome **out, size_t *n, struct pw_err *err)
{
	sqlite3_stmt		*s;
	struct pw_outcome	*v = NULL;
	size_t			 k = 0;
	int			 rc;

	/* Oldest first; one statement, so two flushes never share one. */
	rc = cached_get(st, "UPDATE feedback_outbox "
	    "SET lease_until = ?3 WHERE id IN (SELECT id FROM feedback_outbox "
	    "WHERE coalesce(lease_until, 0) <= ?2 ORDER BY id LIMIT ?1) "
	    "RETURNING id, proxy_id, success, latency_ms, error, ts_ms", &s);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "read outbox");
	sqlite3_bind_int64(s, 1, (int64_t)limit);
	sqlite3_bind_int64(s, 2, now_ms);
	sqlite3_bind_int64(s, 3, until_ms);
	v = pw_xcalloc(limit ? limit : 1, sizeof *v);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && k < limit) {
		v[k].id = sqlite3_column_int64(s, 0);
		v[k].proxy_id = sqlite3_column_int64(s, 1);
		v[k].success = sqlite3_column_int(s, 2);
		v[k].latency_ms = col_real(s, 3);
		v[k].error = dup_text(s, 4);
		v[k].ts_ms = sqlite3_column_int64(s, 5);
		k++;
	}
	cached_put(st, s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		pw_outcomes_free(v, k);
		return db_fail(st, rc, err, "read outbox");
	}
	/* RETURNING promises no order: the service hears them in order. */
	qsort(v, k, sizeof *v, cmp_outcome);
	*out = v;
	*n = k;
	return 0;
}

void
pw_outcomes_free(struct pw_outcome *v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i].error);
	free(v);
}

/* Run sql, whose one parameter is an outbox id, for each of v[0..n). */
static int
outbox_each(struct pw_store *st, const char *sql, const struct pw_outcome *v,
    size_t n, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc, r = 0;

	if ((rc = cached_get(st, sql, &s)) != SQLITE_OK)
		return db_fail(st, rc, err, "write outbox");
	for (size_t i = 0; i < n && r == 0; i++) {
		sqlite3_bind_int64(s, 1, v[i].id);
		r = step_done(st, s, err, "write outbox");
	}
	cached_put(st, s);
	return r;
}

int
pw_store_outbox_delete(struct pw_store *st, const struct pw_outcome *v,
    size_t n, struct pw_err *err)
{
	return outbox_each(st, "DELETE FROM feedback_outbox WHERE id = ?1", v,
	    n, err);
}

int
pw_store_outbox_release(struct pw_store *st, const struct pw_outcome *v,
    size_t n, struct pw_err *err)
{
	return outbox_each(st, "UPDATE feedback_outbox SET lease_until = NULL "
	    "WHERE id = ?1", v, n, err);
}

int
pw_store_outbox_count(struct pw_store *st, int64_t *n, struct pw_err *err)
{
	*n = 0;
	return pragma_int(st, "SELECT count(*) FROM feedback_outbox", n, err);
}

/* ---------------------------------------------------------- ratelimit */

#define RL_PRUNE_MS	60000

static int
rl_read(struct pw_store *st, const char *key, int64_t window_ms,
    struct pw_rl_state *rs, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	memset(rs, 0, sizeof *rs);
	if ((s = stmt_get(st, S_RL_GET, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	/* A key's window follows its latest limit. */
	if (rc == SQLITE_ROW && sqlite3_column_int64(s, 3) == window_ms) {
		rs->win = sqlite3_column_int64(s, 0);
		rs->cur = sqlite3_column_int64(s, 1);
		rs->prev = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, rc, err, "read rate limit");
	return 0;
}

/* The check, inside the caller's transaction; no pruning. */
static int
rl_txn(struct pw_store *st, const char *const *keys,
    const struct pw_rl_limit *l, size_t n, int64_t now, int commit,
    const struct pw_rl_giveback *gb, struct pw_rl_verdict *v,
    struct pw_err *err)
{
	struct pw_rl_state	s[PW_RL_KEYS_MAX];
	int			r;

	if (n > PW_RL_KEYS_MAX)
		return pw_failf(err, PW_EUSAGE, "too many counters");
	for (size_t i = 0; i < n; i++) {
		if ((r = rl_read(st, keys[i], l[i].window_ms, &s[i],
		    err)) != 0)
			return r;
		pw_rl_roll(&s[i], now, l[i].window_ms);
		if (gb != NULL)
			pw_rl_unspend(&s[i], l[i].window_ms, gb->win[i],
			    gb->n);
	}
	pw_rl_apply(s, l, n, now, commit, v);
	for (size_t i = 0; ((commit && v->allowed) || gb != NULL) && i < n;
	    i++)
		if ((r = run_stmt(st, S_RL_PUT, err, "count", "tiiii", keys[i],
		    s[i].win, s[i].cur, s[i].prev, l[i].window_ms)) != 0)
			return r;
	return 0;
}

int
pw_store_rl_check_txn(struct pw_store *st, const char *const *keys,
    const struct pw_rl_limit *l, size_t n, int64_t now, int commit,
    struct pw_rl_verdict *v, struct pw_err *err)
{
	return rl_txn(st, keys, l, n, now, commit, NULL, v, err);
}

int
pw_store_rl_check(struct pw_store *st, const char *const *keys,
    const struct pw_rl_limit *l, size_t n, int64_t now, int commit,
    const struct pw_rl_giveback *gb, struct pw_rl_verdict *v,
    struct pw_err *err)
{
	struct pw_rl_state	s[PW_RL_KEYS_MAX];
	int			r;

	if (n > PW_RL_KEYS_MAX)
		return pw_failf(err, PW_EUSAGE, "too many counters");
	/* A peek at a file not made yet: every counter is 0. */
	if (!commit && st->pending) {
		memset(s, 0, sizeof s);
		for (size_t i = 0; i < n; i++)
			pw_rl_roll(&s[i], now, l[i].window_ms);
		pw_rl_apply(s, l, n, now, 0, v);
		return 0;
	}
	if ((r = commit || gb != NULL ? pw_store_begin(st, err) :
	    cached_run(st, "BEGIN", err)) != 0)
		return r;
	if ((r = rl_txn(st, keys, l, n, now, commit, gb, v, err)) != 0)
		goto fail;
	if (commit && (now - st->rl_pruned >= RL_PRUNE_MS ||
	    now < st->rl_pruned)) {
		if ((r = run_stmt(st, S_RL_PRUNE, err, "prune rate limits",
		    "i", now)) != 0)
			goto fail;
		st->rl_pruned = now;
	}
	if (commit || gb != NULL)
		return pw_store_commit(st, err);
	cached_run(st, "COMMIT", err);
	return 0;
fail:
	pw_store_rollback(st);
	return r;
}

/* ------------------------------------------------------------- api keys */

int
pw_store_key_add(struct pw_store *st, const char *name, const char *tier,
    const unsigned char *hash, size_t len, int64_t now, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt_get(st, S_KEY_ADD, err)) == NULL)
		return err->code;
	/* Whether any key exists is read with the pool (see on_update). */
	st->pool_dirty = 1;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, tier, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, hash, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT ||
	    (rc & 0xff) == SQLITE_CONSTRAINT)
		return PW_EEXIST;
	if (rc != SQLITE_DONE)
		return db_fail(st, rc, err, "add API key");
	return 0;
}

int
pw_store_key_delete(struct pw_store *st, const char *name,
    struct pw_err *err)
{
	int	r;

	if ((r = run_stmt(st, S_KEY_DEL, err, "remove API key", "t",
	    name)) != 0)
		return r;
	st->pool_dirty = 1;
	return sqlite3_changes(st->db) == 1 ? 0 : PW_ENOTFOUND;
}

static void
key_row(sqlite3_stmt *s, struct pw_store_key *k)
{
	int	n;

	k->id = sqlite3_column_int64(s, 0);
	k->name = col_text(s, 1);
	k->tier = col_text(s, 2);
	n = sqlite3_column_bytes(s, 3);
	k->hash = sqlite3_column_blob(s, 3);
	k->hash_len = n > 0 ? (size_t)n : 0;
	k->created_at = sqlite3_column_int64(s, 4);
	k->last_used = sqlite3_column_int64(s, 5);
}

int
pw_store_key_find(struct pw_store *st, const unsigned char *hash,
    size_t len, pw_key_row_fn *fn, void *arg, struct pw_err *err)
{
	struct pw_store_key	 k;
	sqlite3_stmt		*s;
	int			 rc, r;

	if (st->pending)
		return PW_ENOTFOUND;
	if ((s = stmt_get(st, S_KEY_FIND, err)) == NULL)
		return err->code;
	sqlite3_bind_blob(s, 1, hash, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		key_row(s, &k);
		r = fn(arg, &k);
	} else if (rc == SQLITE_DONE)
		r = PW_ENOTFOUND;
	else
		r = db_fail(st, rc, err, "find API key");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

int
pw_store_key_any(struct pw_store *st, int *any, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if (st->pending) {
		*any = 0;
		return 0;
	}
	if ((s = stmt_get(st, S_KEY_ANY, err)) == NULL)
		return err->code;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*any = sqlite3_column_int(s, 0) != 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return db_fail(st, rc, err, "count API keys");
	return 0;
}

int
pw_store_key_used(struct pw_store *st, int64_t id, int64_t now,
    struct pw_err *err)
{
	int	r;

	/*
	 * Not worth waiting for: while another process holds the write
	 * lock, the request goes on and a later one records the use.
	 */
	sqlite3_busy_timeout(st->db, 0);
	r = run_stmt(st, S_KEY_USED, err, "mark API key used", "ii", id,
	    now);
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	return r;
}

int
pw_store_key_each(struct pw_store *st, pw_key_row_fn *fn, void *arg,
    struct pw_err *err)
{
	struct pw_store_key	 k;
	sqlite3_stmt		*s;
	int			 rc, r = 0;

	if (st->pending)
		return 0;
	rc = cached_get(st, "SELECT id, name, tier, hash, "
	    "created_at, last_used FROM api_keys ORDER BY name", &s);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "list API keys");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		key_row(s, &k);
		if ((r = fn(arg, &k)) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = db_fail(st, rc, err, "list API keys");
	cached_put(st, s);
	return r;
}

int
pw_store_proxy_pend(struct pw_store *st, int64_t after, struct pw_err *err)
{
	return run_stmt(st, S_PEND, err, "update proxies", "i", after);
}

/* ------------------------------------------------------------ pw serve */

int
pw_store_proxy_stats_get(struct pw_store *st, int64_t id, struct pw_stats *o,
    struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = stmt_get(st, S_STATS_GET, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		o->started = col_i64(s, 0, 0);
		o->completed = col_i64(s, 1, 0);
		o->succeeded = col_i64(s, 2, 0);
		o->failed = col_i64(s, 3, 0);
		o->consec_fail = col_i64(s, 4, 0);
		o->latency_ms = col_real(s, 5);
		o->cooldown_until = col_i64(s, 6, 0);
		o->last_used = col_i64(s, 7, 0);
		o->window_count = col_i64(s, 8, 0);
		o->updated_at = col_i64(s, 9, 0);
	}
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return PW_ENOTFOUND;
	return rc == SQLITE_ROW ? 0 : db_fail(st, rc, err, "read outcomes");
}

static void
bind_opt_i64(sqlite3_stmt *s, int i, int64_t v)
{
	if (v != 0)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

int
pw_store_proxy_stats_put(struct pw_store *st, int64_t id,
    const struct pw_stats *o, struct pw_err *err)
{
	sqlite3_stmt	*s;

	if ((s = stmt_get(st, S_STATS_PUT, err)) == NULL)
		return err->code;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, o->started);
	sqlite3_bind_int64(s, 3, o->completed);
	sqlite3_bind_int64(s, 4, o->succeeded);
	sqlite3_bind_int64(s, 5, o->failed);
	sqlite3_bind_int64(s, 6, o->consec_fail);
	if (o->latency_ms >= 0)
		sqlite3_bind_double(s, 7, o->latency_ms);
	else
		sqlite3_bind_null(s, 7);
	bind_opt_i64(s, 8, o->cooldown_until);
	bind_opt_i64(s, 9, o->last_used);
	sqlite3_bind_int64(s, 10, o->window_count);
	sqlite3_bind_int64(s, 11, o->updated_at);
	return step_done(st, s, err, "record outcomes");
}

int
pw_store_session_set(struct pw_store *st, const struct pw_session *ss,
    struct pw_err *err)
{
	sqlite3_stmt	*s;

	if ((s = stmt_get(st, S_SESSION_SET, err)) == NULL)
		return err->code;
	sqlite3_bind_text(s, 1, ss->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, ss->proxy_id);
	sqlite3_bind_int64(s, 3, ss->created_at);
	sqlite3_bind_int64(s, 4, ss->last_used);
	sqlite3_bind_int64(s, 5, ss->expires_at);
	sqlite3_bind_int64(s, 6, ss->requests);
	sqlite3_bind_int64(s, 7, ss->failovers);
	return step_done(st, s, err, "write session");
}

int
pw_store_pool_gen(struct pw_store *st, int64_t *gen, struct pw_err *err)
{
	*gen = 0;
	if (st->pending)
		return 0;
	return stmt_int(st, S_GEN_GET, gen, "read generation", err);
}

int64_t
pw_store_bumped(struct pw_store *st)
{
	return st->bumped;
}

int
pw_store_data_version(struct pw_store *st, int64_t *v, struct pw_err *err)
{
	int	rc;

	if (st->pending) {
		/* No file yet: nothing anyone wrote. */
		if (access(st->path, F_OK) != 0) {
			*v = 0;
			return 0;
		}
		if ((rc = materialize(st, err)) != 0)
			return rc;
	}
	return stmt_int(st, S_DATA_VERSION, v, "read version", err);
}

int64_t
pw_store_total_changes(struct pw_store *st)
{
	return st->pending ? 0 : sqlite3_total_changes64(st->db);
}

int
pw_store_rotation_each(struct pw_store *st, const char *prefix,
    void (*fn)(void *, const char *, int64_t), void *arg, struct pw_err *err)
{
	sqlite3_stmt	*s;
	int		 rc;
	size_t		 n = strlen(prefix);

	rc = cached_get(st, "SELECT name, value FROM rotation "
	    "WHERE substr(name, 1, ?2) = ?1", &s);
	if (rc != SQLITE_OK)
		return db_fail(st, rc, err, "read cursors");
	sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)n);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		fn(arg, col_text(s, 0), sqlite3_column_int64(s, 1));
	cached_put(st, s);
	return rc == SQLITE_DONE ? 0 : db_fail(st, rc, err, "read cursors");
}

int
pw_store_long_lived(struct pw_store *st, struct pw_err *err)
{
	if (st->pending)
		return 0;
	/*
	 * The WAL is kept up to 16 MiB, not cut back to nothing at each
	 * reset (pw_store_open's setting for short processes): cutting it
	 * would fall on a request.
	 */
	return exec_sql(st, "PRAGMA mmap_size=0;PRAGMA wal_autocheckpoint=0;"
	    "PRAGMA journal_size_limit=16777216", err);
}

void
pw_store_checkpoint(struct pw_store *st)
{
	if (!st->pending)
		sqlite3_wal_checkpoint_v2(st->db, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}
