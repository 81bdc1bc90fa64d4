/*
 * rlcheck.c -- the cost of one rate-limit check, p50 and p99, on each
 * backend, beside what the backend's medium costs in the same run: a
 * clock read for memory, a bare write transaction of SQLite on a file
 * of its own for the state file, a PING for Redis. The state file's
 * connection is set up as pw serve's are, with the flusher's checkpoints
 * in a thread beside it. The shared backends are measured twice: each
 * check on the backend (ratelimit.batch 1), and as pw serve checks by
 * default, in batches (ratelimit.batch 128).
 *
 * usage: bench-rlcheck DIR [REDIS_URL]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <sqlite3.h>

#include "../lib/ratelimit.h"

#define N	20000		/* checks per figure */
#define KEYS	1000		/* identifiers they spread over */

static double
now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
cmp(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* p50 and p99 of t[0..n) in microseconds. */
static void
pct(double *t, int n, double *p50, double *p99)
{
	qsort(t, n, sizeof *t, cmp);
	*p50 = t[n / 2];
	*p99 = t[n * 99 / 100];
}

static void
report(const char *what, double *t, const char *base, double *b)
{
	double	p50, p99, b50, b99;

	pct(t, N, &p50, &p99);
	pct(b, N, &b50, &b99);
	printf("%-34s %9.1f us   %-26s %9.1f us   %6.1fx\n", what, p50, base,
	    b50, p50 / b50);
	printf("%-34s %9.1f us   %-26s %9.1f us   %6.1fx\n", "  p99", p99,
	    "  p99", b99, p99 / b99);
}

/*
 * pw serve's flusher: checkpoints from a thread of its own, every 250
 * ms, on a connection of its own (see pw_store_long_lived).
 */
static atomic_int	stop;

static void *
checkpointer(void *arg)
{
	struct pw_store	*st;
	struct pw_err	 err;

	if (pw_store_open(arg, PW_OPEN_RW, &st, &err) != 0 ||
	    pw_store_long_lived(st, &err) != 0) {
		fprintf(stderr, "bench-rlcheck: %s\n", err.msg);
		exit(1);
	}
	while (!atomic_load(&stop)) {
		usleep(250000);
		pw_store_checkpoint(st);
	}
	pw_store_close(st);
	return NULL;
}

/* Check i of tier and endpoint counters, as pw serve makes them: us. */
static double
check(struct pw_rl *rl, struct pw_store *st, int i)
{
	struct pw_rl_limit	l[2] = { { 1000000000, 60000 },
	    { 1000000000, 60000 } };
	struct pw_rl_verdict	v;
	struct pw_err		err;
	char			k0[64], k1[64];
	const char		*k[2] = { k0, k1 };
	double			t0;

	snprintf(k0, sizeof k0, "t:a:10.0.%d.%d", i % KEYS / 256,
	    i % KEYS % 256);
	snprintf(k1, sizeof k1, "e:/api/v1/proxies:a:10.0.%d.%d",
	    i % KEYS / 256, i % KEYS % 256);
	t0 = now_us();
	if (pw_rl_check(rl, st, k, l, 2, 1, &v, &err) != 0 || v.failed ||
	    !v.allowed) {
		fprintf(stderr, "bench-rlcheck: check failed\n");
		exit(1);
	}
	return now_us() - t0;
}

/* The baseline of the state file: one bare write transaction. */
static double
bare(sqlite3 *db, sqlite3_stmt *s, int i)
{
	char	k[32];
	double	t0 = now_us();

	snprintf(k, sizeof k, "%d", i % KEYS);
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	sqlite3_bind_text(s, 1, k, -1, SQLITE_TRANSIENT);
	sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return now_us() - t0;
}

static struct pw_rl *
rl_new(int backend, const char *url, int64_t batch)
{
	struct pw_rl_opts	 o = { 0 };
	struct pw_rl		*rl;
	struct pw_err		 err;

	o.backend = backend;
	o.redis_url = url;
	o.batch = batch;
	if (pw_rl_new(&o, &rl, &err) != 0) {
		fprintf(stderr, "bench-rlcheck: %s\n", err.msg);
		exit(1);
	}
	return rl;
}

/*
 * Each check is followed by one operation of its baseline, so that
 * whatever else the machine does falls on both alike.
 */
int
main(int argc, char **argv)
{
	static double		 t[N], b[N];
	struct pw_rl		*rl;
	struct pw_store		*st;
	struct pw_err		 err;
	sqlite3			*db;
	pthread_t		 ckpt;
	sqlite3_stmt		*s;
	char			*path, *bpath;

	if (argc < 2) {
		fprintf(stderr, "usage: bench-rlcheck DIR [REDIS_URL]\n");
		return 2;
	}

	/* memory */
	rl = rl_new(PW_RL_MEMORY, NULL, 0);
	for (int i = 0; i < N; i++) {
		double t0;

		t[i] = check(rl, NULL, i);
		t0 = now_us();
		(void)pw_mono_ms();
		b[i] = now_us() - t0;
		if (b[i] <= 0)
			b[i] = 0.01;
	}
	pw_rl_free(rl);
	report("ratelimit check, memory", t, "clock read", b);

	/* the state file, beside a bare SQLite file */
	if (asprintf(&path, "%s/state.db", argv[1]) < 0 ||
	    asprintf(&bpath, "%s/bare.db", argv[1]) < 0)
		return 1;
	if (pw_store_open(path, PW_OPEN_RW, &st, &err) != 0 ||
	    pw_store_long_lived(st, &err) != 0) {
		fprintf(stderr, "bench-rlcheck: %s\n", err.msg);
		return 1;
	}
	if (pthread_create(&ckpt, NULL, checkpointer, path) != 0 ||
	    sqlite3_open(bpath, &db) != SQLITE_OK)
		return 1;
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	    "CREATE TABLE c (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID",
	    NULL, NULL, NULL);
	sqlite3_prepare_v2(db, "INSERT INTO c VALUES(?1, 1) ON CONFLICT(k) "
	    "DO UPDATE SET v = v + 1", -1, &s, NULL);
	for (int batch = 1; batch <= 128; batch *= 128) {
		rl = rl_new(PW_RL_SQLITE, NULL, batch);
		for (int i = 0; i < N; i++) {
			t[i] = check(rl, st, i);
			b[i] = bare(db, s, i);
		}
		pw_rl_free(rl);
		report(batch == 1 ? "ratelimit check, sqlite, batch 1" :
		    "ratelimit check, sqlite, batch 128", t,
		    "sqlite3 write txn", b);
	}
	atomic_store(&stop, 1);
	pthread_join(ckpt, NULL);
	pw_store_close(st);
	sqlite3_finalize(s);
	sqlite3_close(db);
	free(path);
	free(bpath);

	/* Redis */
	if (argc > 2) {
		redisContext	*c;
		redisReply	*rp;
		int		 port = 6379;

		sscanf(argv[2], "redis://127.0.0.1:%d", &port);
		if ((c = redisConnect("127.0.0.1", port)) == NULL || c->err)
			return 1;
		for (int batch = 1; batch <= 128; batch *= 128) {
			rl = rl_new(PW_RL_REDIS, argv[2], batch);
			for (int i = 0; i < N; i++) {
				double t0;

				t[i] = check(rl, NULL, i);
				t0 = now_us();
				rp = redisCommand(c, "PING");
				b[i] = now_us() - t0;
				freeReplyObject(rp);
			}
			pw_rl_free(rl);
			report(batch == 1 ? "ratelimit check, redis, batch 1" :
			    "ratelimit check, redis, batch 128", t,
			    "redis PING", b);
		}
		redisFree(c);
	}
	return 0;
}
