/*
 * insert.c -- the floor under pw cache warm: the rows of a CSV file
 * (key, url, scheme, host, port, added_at, updated_at) inserted through
 * SQLite's C API with one prepared statement, in one transaction, into
 * a table with only the unique key for index, WAL and synchronous=NORMAL
 * like pw's state file. No parsing worth the name, no checks, no other
 * index, one commit: what SQLite alone costs for the same rows.
 *
 * usage: bench-insert DB CSV
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

int
main(int argc, char **argv)
{
	sqlite3		*db;
	sqlite3_stmt	*s;
	FILE		*f;
	char		*line = NULL, *field[7], *p;
	size_t		 cap = 0;
	char		 wal[4096], shm[4096];

	if (argc != 3) {
		fprintf(stderr, "usage: bench-insert DB CSV\n");
		return 2;
	}
	snprintf(wal, sizeof wal, "%s-wal", argv[1]);
	snprintf(shm, sizeof shm, "%s-shm", argv[1]);
	unlink(argv[1]);
	unlink(wal);
	unlink(shm);
	if ((f = fopen(argv[2], "r")) == NULL ||
	    sqlite3_open(argv[1], &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;"
	    "CREATE TABLE p(key TEXT NOT NULL UNIQUE, url TEXT NOT NULL, "
	    "scheme TEXT, host TEXT, port INTEGER, added_at INTEGER, "
	    "updated_at INTEGER); BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO p VALUES(?1, ?2, ?3, ?4, ?5, "
	    "?6, ?7)", -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench-insert: cannot start\n");
		return 1;
	}
	while (getline(&line, &cap, f) > 0) {
		p = line;
		for (int i = 0; i < 7; i++) {
			field[i] = p;
			p += strcspn(p, ",\n");
			*p++ = '\0';
		}
		for (int i = 0; i < 4; i++)
			sqlite3_bind_text(s, i + 1, field[i], -1,
			    SQLITE_STATIC);
		for (int i = 4; i < 7; i++)
			sqlite3_bind_int64(s, i + 1, atoll(field[i]));
		if (sqlite3_step(s) != SQLITE_DONE) {
			fprintf(stderr, "bench-insert: %s\n",
			    sqlite3_errmsg(db));
			return 1;
		}
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench-insert: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	sqlite3_close(db);
	free(line);
	fclose(f);
	return 0;
}
