/*
 * store.c -- unit tests for the state file (lib/store.c): creation and
 * modes, pragmas, schema version, refusal of files that are not ours,
 * transactions, statements, and sealing of credentials at rest.
 */
#include <dirent.h>

#include <sqlite3.h>

#include "unit.h"

struct fix {
	char		*dir;
	char		*path;		/* dir/state/state.db, not yet made */
	struct pw_store	*st;
};

static int
setup(void **state)
{
	struct fix	*f = pw_xcalloc(1, sizeof *f);

	umask(022);
	f->dir = unit_tmp_new();
	f->path = unit_path(f->dir, "state/state.db");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	pw_store_close(f->st);
	free(f->path);
	unit_tmp_free(f->dir);
	free(f);
	return 0;
}

static struct pw_store *
open_ok(const char *path, int mode)
{
	struct pw_store	*st = NULL;
	struct pw_err	 err = { 0 };

	if (pw_store_open(path, mode, &st, &err) != 0)
		fail_msg("open %s: %s", path, err.msg);
	assert_non_null(st);
	return st;
}

/* Run one query on a private connection; the first column as integer. */
static int64_t
sql_int(const char *path, const char *sql)
{
	sqlite3		*db;
	sqlite3_stmt	*s;
	int64_t		 v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static char *
sql_text(const char *path, const char *sql)
{
	sqlite3		*db;
	sqlite3_stmt	*s;
	char		*v = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) == SQLITE_ROW)
		v = pw_xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* Run statements on a private read-write connection (creating it). */
static void
sql_exec(const char *path, const char *sql)
{
	sqlite3	*db;
	char	*msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

/* The names in a directory, sorted, joined by spaces; caller frees. */
static char *
dir_list(const char *dir)
{
	struct dirent	**ents;
	struct pw_buf	  b;
	int		  n;

	n = scandir(dir, &ents, NULL, alphasort);
	assert_true(n >= 0);
	pw_buf_init(&b);
	for (int i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") != 0 &&
		    strcmp(ents[i]->d_name, "..") != 0)
			pw_buf_addf(&b, "%s%s", b.len ? " " : "",
			    ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	return pw_buf_detach(&b);
}

/*
 * Open path (which must be refused with code and exactly msg, where %s
 * stands for the path) in every mode, and prove nothing changed: not the
 * bytes of the file, not the directory beside it.
 */
static void
check_refused(const char *path, int code, const char *msgfmt)
{
	static const int modes[] = { PW_OPEN_RO, PW_OPEN_RW };
	struct pw_store	*st;
	struct pw_err	 err;
	unsigned char	*before, *after;
	size_t		 nb = 0, na = 0;
	char		*dir = pw_dirname(path), *lb, *la, *want;

	before = unit_read(path, &nb);
	lb = dir_list(dir);
	want = pw_xasprintf(msgfmt, path);
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		memset(&err, 0, sizeof err);
		st = (struct pw_store *)&st;
		if (pw_store_open(path, modes[i], &st, &err) != code)
			fail_msg("mode %d: want %d, got %d: %s", modes[i], code,
			    err.code, err.msg);
		assert_int_equal(err.code, code);
		assert_string_equal(err.msg, want);
		assert_ptr_equal(st, (struct pw_store *)&st);
		after = unit_read(path, &na);
		assert_int_equal(na, nb);
		if (nb > 0)
			assert_memory_equal(after, before, nb);
		free(after);
		la = dir_list(dir);
		assert_string_equal(la, lb);
		free(la);
	}
	free(want);
	free(lb);
	free(before);
	free(dir);
}

/* ------------------------------------------------------------ creation */

static void
test_create_modes(void **state)
{
	struct fix	*f = *state;
	char		*sdir = pw_dirname(f->path);

	f->st = open_ok(f->path, PW_OPEN_RW);
	assert_int_equal(unit_mode(sdir), 0700);
	assert_int_equal(unit_mode(f->path), 0600);
	assert_string_equal(pw_store_path(f->st), f->path);
	free(sdir);
}

static void
test_create_nested_dirs(void **state)
{
	struct fix	*f = *state;
	char		*deep = unit_path(f->dir, "a/b/c/state.db");
	char		*a = unit_path(f->dir, "a"), *c = unit_path(f->dir,
	    "a/b/c");

	f->st = open_ok(deep, PW_OPEN_RW);
	assert_int_equal(unit_mode(a), 0700);
	assert_int_equal(unit_mode(c), 0700);
	assert_int_equal(unit_mode(deep), 0600);
	free(a);
	free(c);
	free(deep);
}

static void
test_existing_dir_keeps_its_mode(void **state)
{
	struct fix	*f = *state;
	char		*sdir = pw_dirname(f->path);

	assert_int_equal(mkdir(sdir, 0755), 0);
	f->st = open_ok(f->path, PW_OPEN_RW);
	assert_int_equal(unit_mode(sdir), 0755);
	assert_int_equal(unit_mode(f->path), 0600);
	free(sdir);
}

static void
test_schema_and_pragmas(void **state)
{
	struct fix	*f = *state;
	char		*s;

	f->st = open_ok(f->path, PW_OPEN_RW);
	s = sql_text(f->path, "PRAGMA journal_mode");
	assert_string_equal(s, "wal");
	free(s);
	assert_int_equal(sql_int(f->path, "PRAGMA application_id"),
	    PW_APPLICATION_ID);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"),
	    PW_SCHEMA_VERSION);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name IN ('proxies', 'config', "
	    "'sessions')"), 3);
	s = sql_text(f->path, "PRAGMA integrity_check");
	assert_string_equal(s, "ok");
	free(s);
}

static void
test_empty_file_becomes_state(void **state)
{
	struct fix	*f = *state;
	char		*sdir = pw_dirname(f->path);

	assert_int_equal(mkdir(sdir, 0700), 0);
	unit_write(f->path, "", 0);
	f->st = open_ok(f->path, PW_OPEN_RW);
	pw_store_close(f->st);
	f->st = NULL;
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"),
	    PW_SCHEMA_VERSION);
	free(sdir);
}

/* The file and its WAL, end to end; caller frees. */
static unsigned char *
db_and_wal(const char *path, size_t *len)
{
	unsigned char	*p;
	struct pw_buf	 b;
	char		*wal = pw_xasprintf("%s-wal", path);
	size_t		 n;

	pw_buf_init(&b);
	p = unit_read(path, &n);
	assert_non_null(p);
	pw_buf_add(&b, p, n);
	free(p);
	pw_buf_adds(&b, "|wal|");
	if ((p = unit_read(wal, &n)) != NULL) {
		pw_buf_add(&b, p, n);
		free(p);
	}
	free(wal);
	*len = b.len;
	return (unsigned char *)pw_buf_detach(&b);
}

static void
test_reopen_changes_nothing(void **state)
{
	struct fix	*f = *state;
	unsigned char	*before, *after;
	size_t		 nb, na;
	char		*sdir = pw_dirname(f->path), *lb, *la;

	f->st = open_ok(f->path, PW_OPEN_RW);
	pw_store_close(f->st);
	f->st = NULL;
	before = db_and_wal(f->path, &nb);
	lb = dir_list(sdir);

	for (int mode = PW_OPEN_RO; mode <= PW_OPEN_RW; mode++) {
		f->st = open_ok(f->path, mode);
		pw_store_close(f->st);
		f->st = NULL;
		after = db_and_wal(f->path, &na);
		assert_int_equal(na, nb);
		assert_memory_equal(after, before, nb);
		free(after);
		la = dir_list(sdir);
		assert_string_equal(la, lb);
		free(la);
	}
	free(lb);
	free(before);
	free(sdir);
}

static void
test_old_version_is_migrated(void **state)
{
	struct fix	*f = *state;
	char		*sdir = pw_dirname(f->path);

	/* Ours, at version 0: no tables yet. */
	assert_int_equal(mkdir(sdir, 0700), 0);
	sql_exec(f->path, "PRAGMA application_id = 1886846977");
	assert_int_equal(sql_int(f->path, "PRAGMA application_id"),
	    PW_APPLICATION_ID);
	f->st = open_ok(f->path, PW_OPEN_RW);
	pw_store_close(f->st);
	f->st = NULL;
	assert_int_equal(sql_int(f->path, "PRAGMA user_version"),
	    PW_SCHEMA_VERSION);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM proxies"), 0);
	free(sdir);
}

static void
test_ro_missing_file_not_created(void **state)
{
	struct fix	*f = *state;
	char		*sdir = pw_dirname(f->path);
	struct pw_err	 err = { 0 };
	int64_t		 id;

	f->st = open_ok(f->path, PW_OPEN_RO);
	/* An empty pool to read... */
	assert_int_equal(pw_store_proxy_find(f->st, "http://h:1", &id, &err),
	    PW_ENOTFOUND);
	/* ...and nothing on disk, not even the directory. */
	assert_false(unit_exists(f->path));
	assert_false(unit_exists(sdir));
	pw_store_close(f->st);
	f->st = open_ok(f->path, PW_OPEN_NONE);
	assert_false(unit_exists(sdir));
	free(sdir);
}

/* ------------------------------------------------------------- refusal */

static void
make_state_dir(struct fix *f)
{
	char	*sdir = pw_dirname(f->path);

	assert_int_equal(mkdir(sdir, 0700), 0);
	free(sdir);
}

static void
test_refuse_text_file(void **state)
{
	struct fix	*f = *state;
	const char	*text = "proxy list\nhttp://h:1\n";

	make_state_dir(f);
	unit_write(f->path, text, strlen(text));
	check_refused(f->path, PW_ESTATE, "%s: not a pw state file (not an "
	    "SQLite database)");
	/* Shorter than the SQLite header. */
	unit_write(f->path, "SQLite", 6);
	check_refused(f->path, PW_ESTATE, "%s: not a pw state file (not an "
	    "SQLite database)");
}

static void
test_refuse_foreign_sqlite(void **state)
{
	struct fix	*f = *state;

	make_state_dir(f);
	sql_exec(f->path, "CREATE TABLE t(x); INSERT INTO t VALUES(1)");
	check_refused(f->path, PW_ESTATE, "%s: not a pw state file (an SQLite "
	    "database of something else)");
}

static void
test_refuse_foreign_application_id(void **state)
{
	struct fix	*f = *state;

	make_state_dir(f);
	sql_exec(f->path, "PRAGMA application_id = 305419896");
	check_refused(f->path, PW_ESTATE, "%s: not a pw state file "
	    "(application id 0x12345678)");
}

static void
test_refuse_foreign_user_version(void **state)
{
	struct fix	*f = *state;

	/* Some other tool's versioned file, with no application id. */
	make_state_dir(f);
	sql_exec(f->path, "PRAGMA user_version = 7");
	check_refused(f->path, PW_ESTATE, "%s: not a pw state file "
	    "(application id 0)");
}

static void
test_refuse_newer_schema(void **state)
{
	struct fix	*f = *state;
	char		*fmt;

	f->st = open_ok(f->path, PW_OPEN_RW);
	pw_store_close(f->st);
	f->st = NULL;
	sql_exec(f->path, "PRAGMA user_version = 99");
	fmt = pw_xasprintf("%%s: state file has schema version 99, newer than "
	    "this pw knows (%d): upgrade pw", PW_SCHEMA_VERSION);
	check_refused(f->path, PW_ESTATE, fmt);
	free(fmt);
}

static void
test_refuse_corrupt_header(void **state)
{
	struct fix	*f = *state;
	unsigned char	 page[4096];

	/* The magic, then a page size no SQLite file can have. */
	make_state_dir(f);
	memset(page, 0xff, sizeof page);
	memcpy(page, "SQLite format 3", 16);
	unit_write(f->path, page, sizeof page);
	check_refused(f->path, PW_ESTATE, "%s: state file is corrupt: file is "
	    "not a database");
}

static void
test_refuse_damaged_schema(void **state)
{
	struct fix	*f = *state;
	unsigned char	*bytes;
	size_t		 n;

	/* A real state file whose schema page is overwritten. */
	f->st = open_ok(f->path, PW_OPEN_RW);
	pw_store_close(f->st);
	f->st = NULL;
	/* Everything into the file itself, and the WAL gone. */
	sql_exec(f->path, "PRAGMA wal_checkpoint(TRUNCATE)");
	bytes = unit_read(f->path, &n);
	assert_true(n > 1024);
	memset(bytes + 100, 0xa5, 924);
	unit_write(f->path, bytes, n);
	free(bytes);
	check_refused(f->path, PW_ESTATE, "%s: state file is corrupt: "
	    "database disk image is malformed");
}

static void
test_refuse_directory(void **state)
{
	struct fix	*f = *state;
	struct pw_store	*st = NULL;
	struct pw_err	 err = { 0 };
	char		*want;

	assert_int_equal(pw_mkdirs(f->path, 0700, &err), 0);
	assert_int_equal(pw_store_open(f->path, PW_OPEN_RW, &st, &err),
	    PW_ESTATE);
	want = pw_xasprintf("%s: not a regular file", f->path);
	assert_string_equal(err.msg, want);
	assert_null(st);
	free(want);
}

static void
test_refuse_dir_through_file(void **state)
{
	struct fix	*f = *state;
	struct pw_store	*st = NULL;
	struct pw_err	 err = { 0 };
	char		*sdir = pw_dirname(f->path), *want;

	/* The state directory's name is taken by a file. */
	unit_write(sdir, "x", 1);
	assert_int_equal(pw_store_open(f->path, PW_OPEN_RW, &st, &err),
	    PW_ESTATE);
	want = pw_xasprintf("%s: cannot open: Not a directory", f->path);
	assert_string_equal(err.msg, want);
	assert_null(st);
	free(want);
	free(sdir);
}

/* -------------------------------------------------------- transactions */

static void
row_init(struct pw_row *r, const char *key, const char *host, int port)
{
	memset(r, 0, sizeof *r);
	r->key = key;
	r->url = key;
	r->p.addr.scheme = PW_HTTP;
	r->p.addr.host = (char *)host;
	r->p.addr.port = port;
	r->p.weight = -1;
	r->p.added_at = 1000;
}

static int
count_row(void *arg, const struct pw_row *r)
{
	(void)r;
	(*(int *)arg)++;
	return 0;
}

static int
count_rows(struct pw_store *st, const struct pw_filter *flt)
{
	struct pw_err	err = { 0 };
	int		n = 0;

	assert_int_equal(pw_store_proxy_each(st, flt, 0, count_row, &n,
	    &err), 0);
	return n;
}

static void
insert(struct pw_store *st, const char *key, int64_t *id, int *dup)
{
	struct pw_row	r;
	struct pw_err	err = { 0 };

	row_init(&r, key, "h", 1);
	if (pw_store_proxy_insert(st, &r, id, dup, &err) != 0)
		fail_msg("insert %s: %s", key, err.msg);
}

static void
test_commit_and_rollback(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	struct pw_store	*other;
	int64_t		 id;
	int		 dup;

	f->st = open_ok(f->path, PW_OPEN_RW);
	other = open_ok(f->path, PW_OPEN_RO);

	assert_int_equal(pw_store_begin(f->st, &err), 0);
	insert(f->st, "http://a:1", &id, &dup);
	/* Not visible elsewhere before the commit. */
	assert_int_equal(count_rows(other, NULL), 0);
	assert_int_equal(pw_store_commit(f->st, &err), 0);
	assert_int_equal(count_rows(other, NULL), 1);

	assert_int_equal(pw_store_begin(f->st, &err), 0);
	insert(f->st, "http://b:1", &id, &dup);
	assert_int_equal(count_rows(f->st, NULL), 2);
	pw_store_rollback(f->st);
	assert_int_equal(count_rows(f->st, NULL), 1);
	assert_int_equal(count_rows(other, NULL), 1);
	/* A rollback outside a transaction is harmless. */
	pw_store_rollback(f->st);
	pw_store_close(other);

	/* What was committed survives a reopen. */
	pw_store_close(f->st);
	f->st = open_ok(f->path, PW_OPEN_RO);
	assert_int_equal(count_rows(f->st, NULL), 1);
}

static void
test_begin_twice_fails(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	char		*want;

	f->st = open_ok(f->path, PW_OPEN_RW);
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	assert_int_equal(pw_store_begin(f->st, &err), PW_EFAIL);
	want = pw_xasprintf("%s: query: cannot start a transaction within a "
	    "transaction", f->path);
	assert_string_equal(err.msg, want);
	free(want);
	pw_store_rollback(f->st);
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	assert_int_equal(pw_store_commit(f->st, &err), 0);
}

/* ------------------------------------------------------------- proxies */

static void
test_insert_duplicate(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	int64_t		 a, b, c, found;
	int		 dup;

	f->st = open_ok(f->path, PW_OPEN_RW);
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	insert(f->st, "http://a:1", &a, &dup);
	assert_int_equal(dup, 0);
	insert(f->st, "http://b:1", &b, &dup);
	assert_int_equal(dup, 0);
	assert_true(b != a);
	/* The same key again: the first row's id, flagged as duplicate. */
	c = -1;
	insert(f->st, "http://a:1", &c, &dup);
	assert_int_equal(dup, 1);
	assert_int_equal(c, a);
	assert_int_equal(pw_store_commit(f->st, &err), 0);
	assert_int_equal(count_rows(f->st, NULL), 2);

	assert_int_equal(pw_store_proxy_find(f->st, "http://b:1", &found,
	    &err), 0);
	assert_int_equal(found, b);
	found = -1;
	assert_int_equal(pw_store_proxy_find(f->st, "http://c:1", &found,
	    &err), PW_ENOTFOUND);
	assert_int_equal(found, -1);
}

static void
test_exists_delete_clear(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	int64_t		 a, b, n = -1;
	int		 dup;

	f->st = open_ok(f->path, PW_OPEN_RW);
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	insert(f->st, "http://a:1", &a, &dup);
	insert(f->st, "http://b:1", &b, &dup);
	insert(f->st, "http://c:1", &b, &dup);
	assert_int_equal(pw_store_proxy_exists(f->st, a, &err), 0);
	assert_int_equal(pw_store_proxy_exists(f->st, b + 1, &err),
	    PW_ENOTFOUND);
	assert_int_equal(pw_store_proxy_delete(f->st, a, &err), 0);
	assert_int_equal(pw_store_proxy_exists(f->st, a, &err), PW_ENOTFOUND);
	/* Deleting what is not there is no error at this level. */
	assert_int_equal(pw_store_proxy_delete(f->st, a, &err), 0);
	assert_int_equal(pw_store_proxy_clear(f->st, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(pw_store_proxy_clear(f->st, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(pw_store_commit(f->st, &err), 0);
	assert_int_equal(count_rows(f->st, NULL), 0);
}

/* Each row seen, the whole list again from inside the loop. */
struct nested {
	struct pw_store	*st;
	int		 outer, inner;
};

static int
nested_row(void *arg, const struct pw_row *r)
{
	struct nested	*n = arg;
	struct pw_err	 err = { 0 };

	(void)r;
	n->outer++;
	assert_int_equal(pw_store_proxy_each(n->st, NULL, 0, count_row,
	    &n->inner, &err), 0);
	return 0;
}

/*
 * Statements are kept prepared by their SQL: the same SQL run again
 * while it runs gets a statement of its own, and both finish; many
 * different ones (more than are kept) all run.
 */
static void
test_statements_kept(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	struct pw_filter flt;
	struct nested	 n = { NULL, 0, 0 };
	char		 key[32];
	int64_t		 id;
	int		 dup;

	f->st = open_ok(f->path, PW_OPEN_RW);
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "http://h%d:1", i);
		insert(f->st, key, &id, &dup);
	}
	assert_int_equal(pw_store_commit(f->st, &err), 0);
	n.st = f->st;
	for (int round = 0; round < 2; round++)
		assert_int_equal(pw_store_proxy_each(f->st, NULL, 0,
		    nested_row, &n, &err), 0);
	assert_int_equal(n.outer, 6);
	assert_int_equal(n.inner, 18);
	/* Exclusions are written into the SQL: a text of its own each. */
	pw_filter_init(&flt);
	for (int64_t i = 0; i < 100; i++) {
		int64_t			 ex[2] = { 1, 100 + i % 40 };
		struct pw_sel		 sel = { &flt, ex, 2, 1000, 0 };
		struct pw_candidate	*c;
		size_t			 nc;

		assert_int_equal(pw_store_candidates(f->st, &sel, &c, &nc,
		    &err), 0);
		assert_int_equal(nc, 2);
		assert_int_equal(c[0].id, 2);
		free(c);
	}
	assert_int_equal(count_rows(f->st, NULL), 3);
}

struct seen {
	int64_t		 id;
	char		 host[64];
	int		 port;
	char		 source[32], country[8], region[32];
	double		 weight;
	int64_t		 added, updated, expires;
	int		 status, scheme, has_creds;
};

static int
seen_row(void *arg, const struct pw_row *r)
{
	struct seen	*s = arg;

	s->id = r->p.id;
	snprintf(s->host, sizeof s->host, "%s", r->p.addr.host);
	s->port = r->p.addr.port;
	snprintf(s->source, sizeof s->source, "%s",
	    r->p.source ? r->p.source : "-");
	snprintf(s->country, sizeof s->country, "%s",
	    r->p.country ? r->p.country : "-");
	snprintf(s->region, sizeof s->region, "%s",
	    r->p.region ? r->p.region : "-");
	s->weight = r->p.weight;
	s->added = r->p.added_at;
	s->updated = r->p.updated_at;
	s->expires = r->p.expires_at;
	s->status = r->p.status;
	s->scheme = r->p.addr.scheme;
	s->has_creds = r->p.has_creds;
	return 0;
}

static void
test_row_round_trip(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	struct pw_row	 r;
	struct seen	 s;
	int64_t		 id;
	int		 dup;
	static const unsigned char sealed[] = { 1, 2, 3, 0, 4 };

	f->st = open_ok(f->path, PW_OPEN_RW);
	row_init(&r, "socks5://x", "::1", 1080);
	r.p.addr.scheme = PW_SOCKS5;
	r.p.source = "list";
	r.p.country = "DE";
	r.p.region = "Berlin";
	r.p.weight = 2.5;
	r.p.added_at = 1700000000;
	r.p.expires_at = 1700003600;
	r.user = sealed;
	r.user_len = sizeof sealed;
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	assert_int_equal(pw_store_proxy_insert(f->st, &r, &id, &dup, &err), 0);
	assert_int_equal(pw_store_commit(f->st, &err), 0);

	memset(&s, 0, sizeof s);
	assert_int_equal(pw_store_proxy_each(f->st, NULL, id, seen_row, &s,
	    &err), 0);
	assert_int_equal(s.id, id);
	assert_string_equal(s.host, "::1");
	assert_int_equal(s.port, 1080);
	assert_int_equal(s.scheme, PW_SOCKS5);
	assert_string_equal(s.source, "list");
	assert_string_equal(s.country, "DE");
	assert_string_equal(s.region, "Berlin");
	assert_true(s.weight == 2.5);
	assert_int_equal(s.added, 1700000000);
	assert_int_equal(s.updated, 1700000000);
	assert_int_equal(s.expires, 1700003600);
	assert_int_equal(s.status, PW_UNKNOWN);
	assert_int_equal(s.has_creds, 1);

	/* Unset fields read back as unset. */
	row_init(&r, "http://plain", "h", 1);
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	assert_int_equal(pw_store_proxy_insert(f->st, &r, &id, &dup, &err), 0);
	assert_int_equal(pw_store_commit(f->st, &err), 0);
	assert_int_equal(pw_store_proxy_each(f->st, NULL, id, seen_row, &s,
	    &err), 0);
	assert_string_equal(s.source, "-");
	assert_string_equal(s.country, "-");
	assert_true(s.weight < 0);
	assert_int_equal(s.expires, 0);
	assert_int_equal(s.has_creds, 0);

	/* One id that is not there. */
	assert_int_equal(pw_store_proxy_each(f->st, NULL, id + 1, seen_row, &s,
	    &err), PW_ENOTFOUND);
}

static void
test_update_meta(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	struct pw_row	 r;
	struct pw_meta	 m = { NULL, NULL, NULL, -1, 0 };
	struct seen	 s;
	int64_t		 id;
	int		 dup;

	f->st = open_ok(f->path, PW_OPEN_RW);
	row_init(&r, "http://h:1", "h", 1);
	r.p.source = "old";
	r.p.country = "FR";
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	assert_int_equal(pw_store_proxy_insert(f->st, &r, &id, &dup, &err), 0);

	/* Only what is set changes; updated_at always does. */
	m.region = "Paris";
	m.weight = 0;
	m.ttl = 60;
	assert_int_equal(pw_store_proxy_update_meta(f->st, id, &m, 5000, &err),
	    0);
	assert_int_equal(pw_store_proxy_each(f->st, NULL, id, seen_row, &s,
	    &err), 0);
	assert_string_equal(s.source, "old");
	assert_string_equal(s.country, "FR");
	assert_string_equal(s.region, "Paris");
	assert_true(s.weight == 0);
	assert_int_equal(s.expires, 5060);
	assert_int_equal(s.added, 1000);
	assert_int_equal(s.updated, 5000);

	assert_int_equal(pw_store_proxy_update_meta(f->st, id + 1, &m, 5000,
	    &err), PW_ENOTFOUND);
	assert_int_equal(pw_store_commit(f->st, &err), 0);
}

static void
test_each_filters(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	struct pw_row	 r;
	struct pw_filter flt;
	int64_t		 id;
	int		 dup;

	f->st = open_ok(f->path, PW_OPEN_RW);
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	row_init(&r, "k1", "h", 1);
	r.p.source = "a";
	r.p.country = "DE";
	assert_int_equal(pw_store_proxy_insert(f->st, &r, &id, &dup, &err), 0);
	row_init(&r, "k2", "h", 2);
	r.p.addr.scheme = PW_SOCKS5;
	r.p.source = "b";
	r.p.country = "DE";
	r.p.region = "Berlin";
	assert_int_equal(pw_store_proxy_insert(f->st, &r, &id, &dup, &err), 0);
	row_init(&r, "k3", "h", 3);
	r.p.source = "a";
	r.p.country = "FR";
	assert_int_equal(pw_store_proxy_insert(f->st, &r, &id, &dup, &err), 0);
	assert_int_equal(pw_store_commit(f->st, &err), 0);

	pw_filter_init(&flt);
	assert_int_equal(count_rows(f->st, &flt), 3);
	flt.scheme = PW_SOCKS5;
	assert_int_equal(count_rows(f->st, &flt), 1);
	flt.scheme = PW_HTTPS;
	assert_int_equal(count_rows(f->st, &flt), 0);
	pw_filter_init(&flt);
	flt.source = "a";
	assert_int_equal(count_rows(f->st, &flt), 2);
	flt.country = "FR";
	assert_int_equal(count_rows(f->st, &flt), 1);
	pw_filter_init(&flt);
	flt.region = "Berlin";
	assert_int_equal(count_rows(f->st, &flt), 1);
	pw_filter_init(&flt);
	flt.status = PW_UNKNOWN;
	assert_int_equal(count_rows(f->st, &flt), 3);
	flt.status = PW_HEALTHY;
	assert_int_equal(count_rows(f->st, &flt), 0);
	pw_filter_init(&flt);
	flt.anonymity = "elite";
	assert_int_equal(count_rows(f->st, &flt), 0);
}

static int
stop_at_second(void *arg, const struct pw_row *r)
{
	int	*n = arg;

	(void)r;
	return ++*n == 2 ? 42 : 0;
}

static void
test_each_stops(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	int64_t		 id;
	int		 dup, n = 0;

	f->st = open_ok(f->path, PW_OPEN_RW);
	assert_int_equal(pw_store_begin(f->st, &err), 0);
	insert(f->st, "k1", &id, &dup);
	insert(f->st, "k2", &id, &dup);
	insert(f->st, "k3", &id, &dup);
	assert_int_equal(pw_store_commit(f->st, &err), 0);
	assert_int_equal(pw_store_proxy_each(f->st, NULL, 0, stop_at_second,
	    &n, &err), 42);
	assert_int_equal(n, 2);
}

/* -------------------------------------------------------------- config */

struct kv {
	struct pw_buf	b;
};

static int
kv_add(void *arg, const char *key, const char *value)
{
	struct kv	*kv = arg;

	pw_buf_addf(&kv->b, "%s=%s;", key, value);
	return 0;
}

static void
test_config_put_each(void **state)
{
	struct fix	*f = *state;
	struct pw_err	 err = { 0 };
	struct kv	 kv;

	f->st = open_ok(f->path, PW_OPEN_RW);
	assert_int_equal(pw_store_config_put(f->st, "strategy", "random",
	    &err), 0);
	assert_int_equal(pw_store_config_put(f->st, "fetch.retries", "5",
	    &err), 0);
	assert_int_equal(pw_store_config_put(f->st, "strategy", "weighted",
	    &err), 0);
	pw_buf_init(&kv.b);
	assert_int_equal(pw_store_config_each(f->st, kv_add, &kv, &err), 0);
	assert_string_equal(kv.b.data, "strategy=weighted;fetch.retries=5;");
	assert_int_equal(pw_store_config_put(f->st, "strategy", NULL, &err),
	    0);
	/* Deleting what is not there is fine. */
	assert_int_equal(pw_store_config_put(f->st, "nothing", NULL, &err),
	    0);
	pw_buf_reset(&kv.b);
	assert_int_equal(pw_store_config_each(f->st, kv_add, &kv, &err), 0);
	assert_string_equal(kv.b.data, "fetch.retries=5;");
	pw_buf_release(&kv.b);
}

/* ------------------------------------------------------------- sealing */

/* Every byte pw keeps on disk for path: the file, its WAL and journal. */
static unsigned char *
all_bytes(const char *path, size_t *len)
{
	static const char *const sfx[] = { "", "-wal", "-journal", "-shm" };
	struct pw_buf	 b;
	unsigned char	*p;
	char		*name;
	size_t		 n;

	pw_buf_init(&b);
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		name = pw_xasprintf("%s%s", path, sfx[i]);
		if ((p = unit_read(name, &n)) != NULL) {
			pw_buf_add(&b, p, n);
			free(p);
		}
		free(name);
	}
	*len = b.len;
	return (unsigned char *)pw_buf_detach(&b);
}

static void
test_credentials_sealed_at_rest(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	 ctx = { 0 };
	struct pw_addr	 a;
	struct pw_meta	 m = { NULL, NULL, NULL, -1, 0 };
	unsigned char	*bytes;
	size_t		 n;
	int		 res;
	int64_t		 id;

	setenv("PW_SECRET_KEY", UNIT_KEY_HEX, 1);
	assert_int_equal(pw_open(&ctx, f->path, PW_OPEN_RW), 0);
	assert_int_equal(pw_addr_parse("socks5://AliceUserName:"
	    "Sup3rS3cretPassw0rd@h.example:1080", &a, NULL), 0);
	assert_int_equal(pw_pool_add(&ctx, &a, 1, &m, &res, &id), 0);
	pw_addr_release(&a);

	/* Neither in the WAL while open... */
	bytes = all_bytes(f->path, &n);
	assert_true(n > 0);
	assert_true(unit_contains(bytes, n, "h.example"));
	assert_false(unit_contains(bytes, n, "Sup3rS3cretPassw0rd"));
	assert_false(unit_contains(bytes, n, "AliceUserName"));
	free(bytes);
	/* ...nor in the file after the last close. */
	pw_close(&ctx);
	bytes = all_bytes(f->path, &n);
	assert_true(unit_contains(bytes, n, "h.example"));
	assert_false(unit_contains(bytes, n, "Sup3rS3cretPassw0rd"));
	assert_false(unit_contains(bytes, n, "AliceUserName"));
	free(bytes);

	/* The columns hold nonce, MAC and ciphertext. */
	assert_int_equal(sql_int(f->path, "SELECT length(pass) FROM proxies"),
	    24 + 16 + strlen("Sup3rS3cretPassw0rd"));
	assert_int_equal(sql_int(f->path, "SELECT typeof(pass) = 'blob' FROM "
	    "proxies"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_create_modes),
		T(test_statements_kept),
		T(test_create_nested_dirs),
		T(test_existing_dir_keeps_its_mode),
		T(test_schema_and_pragmas),
		T(test_empty_file_becomes_state),
		T(test_reopen_changes_nothing),
		T(test_old_version_is_migrated),
		T(test_ro_missing_file_not_created),
		T(test_refuse_text_file),
		T(test_refuse_foreign_sqlite),
		T(test_refuse_foreign_application_id),
		T(test_refuse_foreign_user_version),
		T(test_refuse_newer_schema),
		T(test_refuse_corrupt_header),
		T(test_refuse_damaged_schema),
		T(test_refuse_directory),
		T(test_refuse_dir_through_file),
		T(test_commit_and_rollback),
		T(test_begin_twice_fails),
		T(test_insert_duplicate),
		T(test_exists_delete_clear),
		T(test_row_round_trip),
		T(test_update_meta),
		T(test_each_filters),
		T(test_each_stops),
		T(test_config_put_each),
		T(test_credentials_sealed_at_rest),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
