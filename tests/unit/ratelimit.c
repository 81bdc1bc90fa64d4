/*
 * ratelimit.c -- the sliding-window arithmetic at its boundaries, the
 * memory and state-file backends (many threads, many processes), the
 * configuration and the client address behind trusted proxies.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "unit.h"
#include "../../lib/ratelimit.h"

#define W	60000		/* one minute, in ms */
/* A window no test outlasts or crosses: monotonic time is below it. */
#define BIG	((int64_t)1000000000000)

static const struct pw_rl_limit L100 = { 100, W };

/* Requests at times t (ms) against one counter; how many passed. */
static int
run_at(struct pw_rl_state *s, const struct pw_rl_limit *l, int64_t t,
    int count, struct pw_rl_verdict *v)
{
	int	passed = 0;

	for (int i = 0; i < count; i++) {
		pw_rl_roll(s, t, l->window_ms);
		pw_rl_apply(s, l, 1, t, 1, v);
		passed += v->allowed;
	}
	return passed;
}

static void
test_boundaries(void **state)
{
	struct pw_rl_state	s = { 0 };
	struct pw_rl_verdict	v;
	int64_t			t0 = 10 * W;	/* a window starts here */

	(void)state;
	/* 101 at t=0: 100 pass, the last is refused. */
	assert_int_equal(run_at(&s, &L100, t0, 101, &v), 100);
	assert_false(v.allowed);
	assert_int_equal(v.remaining, 0);
	assert_int_equal(v.limit, 100);
	assert_int_equal(v.reset_ms, W);
	/* cur = L: only the next window, once 1% of it has passed. */
	assert_int_equal(v.retry_ms, W + W / 100);
	/* At exactly t=60 s the previous minute still weighs fully. */
	assert_int_equal(run_at(&s, &L100, t0 + W, 1, &v), 0);
	assert_int_equal(v.retry_ms, W / 100);
	assert_int_equal(run_at(&s, &L100, t0 + W + W / 100 - 1, 1, &v), 0);
	assert_int_equal(v.retry_ms, 1);
	/* ... and at the time it gave, one passes. */
	assert_int_equal(run_at(&s, &L100, t0 + W + W / 100, 1, &v), 1);
	assert_int_equal(run_at(&s, &L100, t0 + W + W / 100, 1, &v), 0);
	/* Two windows later nothing is left. */
	assert_int_equal(run_at(&s, &L100, t0 + 3 * W, 100, &v), 100);
}

static void
test_weighting(void **state)
{
	struct pw_rl_state	s = { 0 };
	struct pw_rl_verdict	v;
	int64_t			t0 = 7 * W;

	(void)state;
	assert_int_equal(run_at(&s, &L100, t0, 100, &v), 100);
	/* Halfway into the next window half the previous count remains. */
	assert_int_equal(run_at(&s, &L100, t0 + W + W / 2, 100, &v), 50);
	/* 3/4 in: 100/4 + 50 = 75 counted, 25 more. */
	assert_int_equal(run_at(&s, &L100, t0 + W + 3 * W / 4, 100, &v), 25);
	/* The next window: prev = 75, at 1/3 in it weighs 50. */
	assert_int_equal(run_at(&s, &L100, t0 + 2 * W + W / 3, 100, &v), 50);
	assert_int_equal(v.remaining, 0);
}

/* A window's start depends on the clock, not on the first request. */
static void
test_window_alignment(void **state)
{
	struct pw_rl_state	s = { 0 };
	struct pw_rl_verdict	v;

	(void)state;
	assert_int_equal(run_at(&s, &L100, 5 * W - 1, 100, &v), 100);
	/* 1 ms later a window began; 100 * (W - 1) / W > 99 remain. */
	assert_int_equal(run_at(&s, &L100, 5 * W, 1, &v), 0);
	assert_int_equal(run_at(&s, &L100, 5 * W + W / 100, 1, &v), 1);
}

/* A stored window in the future (the clock restarted) is reset. */
static void
test_clock_restart(void **state)
{
	struct pw_rl_state	s = { 0 };
	struct pw_rl_verdict	v;

	(void)state;
	assert_int_equal(run_at(&s, &L100, 1000 * W, 100, &v), 100);
	assert_int_equal(run_at(&s, &L100, 3 * W, 100, &v), 100);
}

/* Two counters: the stricter one binds, and neither counts a refusal. */
static void
test_two_counters(void **state)
{
	struct pw_rl_state	s[2] = { { 0 } };
	struct pw_rl_limit	l[2] = { { 100, W }, { 5, W } };
	struct pw_rl_verdict	v;
	int			passed = 0;

	(void)state;
	for (int i = 0; i < 10; i++) {
		pw_rl_roll(&s[0], 3 * W, W);
		pw_rl_roll(&s[1], 3 * W, W);
		pw_rl_apply(s, l, 2, 3 * W, 1, &v);
		passed += v.allowed;
	}
	assert_int_equal(passed, 5);
	assert_int_equal(s[0].cur, 5);
	assert_int_equal(s[1].cur, 5);
	assert_int_equal(v.limit, 5);
	assert_int_equal(v.remaining, 0);
	/* A peek counts nothing. */
	pw_rl_apply(s, l, 2, 3 * W, 0, &v);
	assert_int_equal(s[0].cur, 5);
}

/* ----------------------------------------------------- the memory backend */

struct many {
	struct pw_rl	*rl;
	int		 first, ids, limit;
	int		 passed;
};

static void *
hammer(void *arg)
{
	struct many		*m = arg;
	struct pw_rl_limit	 l = { m->limit, BIG };
	struct pw_rl_verdict	 v;
	struct pw_err		 err = { 0 };
	char			 key[32];
	const char		*k = key;

	/* limit + 1 requests from each identifier, interleaved. */
	for (int round = 0; round <= m->limit; round++)
		for (int id = m->first; id < m->first + m->ids; id++) {
			snprintf(key, sizeof key, "client:%d", id);
			assert_int_equal(pw_rl_check(m->rl, NULL, &k, &l, 1, 1,
			    &v, &err), 0);
			m->passed += v.allowed;
		}
	return NULL;
}

/*
 * Exactly L of L+1 pass for each of many identifiers, from four threads
 * at once. Each thread has its own identifiers, and the same again with
 * all threads on the same ones, in a window too long to roll meanwhile.
 */
static void
test_memory_exact(void **state)
{
	struct pw_rl_opts	 o = { .backend = PW_RL_MEMORY };
	struct pw_rl		*rl;
	struct pw_err		 err = { 0 };
	struct many		 m[4];
	pthread_t		 t[4];
	int			 total = 0;

	(void)state;
	assert_int_equal(pw_rl_new(&o, &rl, &err), 0);
	for (int i = 0; i < 4; i++) {
		m[i] = (struct many){ rl, i * 1000, 1000, 10, 0 };
		pthread_create(&t[i], NULL, hammer, &m[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(m[i].passed, 1000 * 10);
	}
	/* Shared identifiers: 4 threads x 11 rounds, still 10 each. */
	for (int i = 0; i < 4; i++) {
		m[i] = (struct many){ rl, 10000, 500, 10, 0 };
		pthread_create(&t[i], NULL, hammer, &m[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		total += m[i].passed;
	}
	assert_int_equal(total, 500 * 10);
	pw_rl_free(rl);
}

static void
test_memory_unlimited_and_bad(void **state)
{
	struct pw_rl_opts	 o = { .backend = PW_RL_MEMORY };
	struct pw_rl		*rl;
	struct pw_err		 err = { 0 };
	struct pw_rl_limit	 none = { 0, W }, bad = { -1, W };
	struct pw_rl_verdict	 v;
	const char		*k = "x";

	(void)state;
	assert_int_equal(pw_rl_new(&o, &rl, &err), 0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(pw_rl_check(rl, NULL, &k, &none, 1, 1, &v,
		    &err), 0);
		assert_true(v.allowed);
	}
	assert_int_equal(pw_rl_check(rl, NULL, &k, &bad, 1, 1, &v, &err),
	    PW_EUSAGE);
	pw_rl_free(rl);
}

/* ------------------------------------------------- the state-file backend */

struct fix {
	char	*dir;
	char	*path;
};

static int
setup(void **state)
{
	struct fix	*f = pw_xcalloc(1, sizeof *f);

	f->dir = unit_tmp_new();
	f->path = unit_path(f->dir, "state.db");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	free(f->path);
	unit_tmp_free(f->dir);
	free(f);
	return 0;
}

static int
sqlite_run(const char *path, const char *key, int count, int64_t limit)
{
	struct pw_rl_opts	 o = { .backend = PW_RL_SQLITE };
	struct pw_rl		*rl;
	struct pw_store		*st;
	struct pw_err		 err = { 0 };
	struct pw_rl_limit	 l = { limit, BIG };
	struct pw_rl_verdict	 v;
	int			 passed = 0;

	if (pw_store_open(path, PW_OPEN_RW, &st, &err) != 0)
		fail_msg("open: %s", err.msg);
	assert_int_equal(pw_rl_new(&o, &rl, &err), 0);
	for (int i = 0; i < count; i++) {
		assert_int_equal(pw_rl_check(rl, st, &key, &l, 1, 1, &v,
		    &err), 0);
		if (v.failed) {
			char why[256];
			fail_msg("backend: %s", pw_rl_last_error(rl, why,
			    sizeof why));
		}
		passed += v.allowed;
	}
	pw_rl_free(rl);
	pw_store_close(st);
	return passed;
}

/* count checks of key under limit a window; how many passed. */
static int
burst(struct pw_rl *rl, struct pw_store *st, const char *key, int count,
    int64_t limit, int *failed)
{
	struct pw_rl_limit	l = { limit, BIG };
	struct pw_rl_verdict	v;
	struct pw_err		err = { 0 };
	int			passed = 0;

	for (int i = 0; i < count; i++) {
		assert_int_equal(pw_rl_check(rl, st, &key, &l, 1, 1, &v,
		    &err), 0);
		passed += v.allowed;
		*failed += v.failed;
	}
	return passed;
}

/* What the backend has counted for key: a peek of a limiter of its own. */
static int64_t
counted(const struct pw_rl_opts *o, struct pw_store *st, const char *key,
    int64_t limit)
{
	struct pw_rl_opts	 one = *o;
	struct pw_rl		*rl;
	struct pw_rl_limit	 l = { limit, BIG };
	struct pw_rl_verdict	 v;
	struct pw_err		 err = { 0 };

	one.batch = 0;
	assert_int_equal(pw_rl_new(&one, &rl, &err), 0);
	assert_int_equal(pw_rl_check(rl, st, &key, &l, 1, 0, &v, &err), 0);
	assert_false(v.failed);
	pw_rl_free(rl);
	return limit - v.remaining;
}

/*
 * Two servers (limiters) sharing a limit on the backend o names: in
 * batches far from it, they ask the backend a small part of the time,
 * and exactly the limit passes.
 */
static void
batches(const struct pw_rl_opts *o, struct pw_store *sa, struct pw_store *sb)
{
	struct pw_rl		*a, *b;
	struct pw_err		 err = { 0 };
	struct timespec		 lapse = { 0, 600 * 1000 * 1000 };
	int64_t			 before, changes = 0;
	int			 passed = 0, failed = 0;

	assert_int_equal(pw_rl_new(o, &a, &err), 0);
	assert_int_equal(pw_rl_new(o, &b, &err), 0);
	if (sa != NULL)
		changes = pw_store_total_changes(sa) +
		    pw_store_total_changes(sb);
	for (int i = 0; i < 40; i++) {
		passed += burst(a, sa, "batch", 300, 10000, &failed);
		passed += burst(b, sb, "batch", 300, 10000, &failed);
	}
	assert_int_equal(failed, 0);
	assert_int_equal(passed, 10000);
	assert_int_equal(counted(o, sa, "batch", 10000), 10000);
	if (sa != NULL) {
		changes = pw_store_total_changes(sa) +
		    pw_store_total_changes(sb) - changes;
		/* 10000 let through; most of them counted in batches. */
		assert_true(changes < 10000 / 4);
	}
	/*
	 * A batch counts ahead; when it lapses, the next check takes back
	 * what it left.
	 */
	passed = burst(a, sa, "lapse", 2000, 1000000, &failed);
	assert_int_equal(passed, 2000);
	before = counted(o, sa, "lapse", 1000000);
	assert_true(before > passed && before <= passed + o->batch);
	nanosleep(&lapse, NULL);
	assert_int_equal(burst(a, sa, "lapse", 1, 1000000, &failed), 1);
	assert_int_equal(counted(o, sa, "lapse", 1000000), passed + 1);
	pw_rl_free(a);
	pw_rl_free(b);
}

static void
test_sqlite_batches(void **state)
{
	struct fix		*f = *state;
	struct pw_rl_opts	 o = { .backend = PW_RL_SQLITE, .batch = 128 };
	struct pw_store		*sa, *sb;
	struct pw_err		 err = { 0 };

	assert_int_equal(pw_store_open(f->path, PW_OPEN_RW, &sa, &err), 0);
	assert_int_equal(pw_store_open(f->path, PW_OPEN_RW, &sb, &err), 0);
	batches(&o, sa, sb);
	pw_store_close(sa);
	pw_store_close(sb);
}

/* Counts persist in the file and hold across processes. */
static void
test_sqlite_processes(void **state)
{
	struct fix	*f = *state;
	pid_t		 pid[8];
	int		 fds[2], passed = 0, n, status;

	assert_int_equal(sqlite_run(f->path, "a", 30, 50), 30);
	assert_int_equal(sqlite_run(f->path, "a", 30, 50), 20);
	/* 8 processes, 40 requests each, on one limit of 100. */
	assert_int_equal(pipe(fds), 0);
	for (int i = 0; i < 8; i++) {
		if ((pid[i] = fork()) == 0) {
			n = sqlite_run(f->path, "b", 40, 100);
			_exit(write(fds[1], &n, sizeof n) == sizeof n ? 0 : 1);
		}
		assert_true(pid[i] > 0);
	}
	close(fds[1]);
	while (read(fds[0], &n, sizeof n) == sizeof n)
		passed += n;
	close(fds[0]);
	for (int i = 0; i < 8; i++) {
		waitpid(pid[i], &status, 0);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(passed, 100);
}

/* A peek changes nothing, not even on a file not made yet. */
static void
test_sqlite_peek(void **state)
{
	struct fix		*f = *state;
	struct pw_rl_opts	 o = { .backend = PW_RL_SQLITE };
	struct pw_rl		*rl;
	struct pw_store		*st;
	struct pw_err		 err = { 0 };
	struct pw_rl_limit	 l = { 3, BIG };
	struct pw_rl_verdict	 v;
	const char		*k = "p";

	assert_int_equal(pw_store_open(f->path, PW_OPEN_DEFER, &st, &err), 0);
	assert_int_equal(pw_rl_new(&o, &rl, &err), 0);
	assert_int_equal(pw_rl_check(rl, st, &k, &l, 1, 0, &v, &err), 0);
	assert_true(v.allowed);
	assert_int_equal(v.remaining, 3);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(pw_rl_check(rl, st, &k, &l, 1, 1, &v, &err), 0);
	assert_int_equal(v.remaining, 2);
	assert_int_equal(pw_rl_check(rl, st, &k, &l, 1, 0, &v, &err), 0);
	assert_int_equal(v.remaining, 2);
	pw_rl_free(rl);
	pw_store_close(st);
}

/* ------------------------------------------------------------ redis */

static void
test_redis_url(void **state)
{
	struct pw_rl_opts	 o = { .backend = PW_RL_REDIS };
	struct pw_rl		*rl;
	struct pw_err		 err = { 0 };
	const char		*bad[] = { "http://x", "redis://",
	    "redis://h:0",
	    "redis://h:70000", "redis://h:1x", "redis://[::1", "redis://h/x",
	    "redis://secret@h" };

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o.redis_url = bad[i];
		assert_int_equal(pw_rl_new(&o, &rl, &err), PW_EUSAGE);
		assert_null(rl);
		assert_null(strstr(err.msg, "secret"));
	}
	o.redis_url = "redis://:s3cret@[::1]:6380/2";
	assert_int_equal(pw_rl_new(&o, &rl, &err), 0);
	pw_rl_free(rl);
}

/* Redis down: the check answers at once, open or closed as configured. */
static void
test_redis_down(void **state)
{
	struct pw_rl_opts	 o = { .backend = PW_RL_REDIS,
	    .redis_url = "redis://127.0.0.1:1/0" };
	struct pw_rl		*rl;
	struct pw_err		 err = { 0 };
	struct pw_rl_limit	 l = { 5, W };
	struct pw_rl_verdict	 v;
	const char		*k = "k";
	char			 why[256];

	(void)state;
	for (int open = 0; open < 2; open++) {
		o.fail_open = open;
		assert_int_equal(pw_rl_new(&o, &rl, &err), 0);
		for (int i = 0; i < 3; i++) {
			assert_int_equal(pw_rl_check(rl, NULL, &k, &l, 1, 1,
			    &v, &err), 0);
			assert_true(v.failed);
			assert_int_equal(v.allowed, open);
		}
		assert_non_null(strstr(pw_rl_last_error(rl, why, sizeof why),
		    "127.0.0.1:1"));
		pw_rl_free(rl);
	}
}

/* A real redis-server on loopback, on *port or a free one; its pid. */
static pid_t
redis_start(int *port)
{
	struct sockaddr_in	 a = { .sin_family = AF_INET };
	socklen_t		 len = sizeof a;
	redisContext		*c;
	char			 p[16];
	pid_t			 pid;
	int			 fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (*port == 0) {
		assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
		getsockname(fd, (struct sockaddr *)&a, &len);
		*port = ntohs(a.sin_port);
	}
	close(fd);
	snprintf(p, sizeof p, "%d", *port);
	if ((pid = fork()) == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execlp("redis-server", "redis-server", "--port", p, "--bind",
		    "127.0.0.1", "--save", "", "--appendonly", "no", NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		c = redisConnect("127.0.0.1", *port);
		if (c != NULL && c->err == 0) {
			redisFree(c);
			return pid;
		}
		if (c != NULL)
			redisFree(c);
		nanosleep(&ts, NULL);
	}
	fail_msg("redis-server did not start on port %d", *port);
	return -1;
}

static void
redis_stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/*
 * Two limiters on one Redis (two hosts) share one limit exactly; the
 * script comes back after SCRIPT FLUSH; a dead Redis fails as configured
 * and a live one again is used without a restart.
 */
static void
test_redis_shared(void **state)
{
	struct pw_rl_opts	 o = { .backend = PW_RL_REDIS };
	struct pw_rl		*a, *b;
	struct pw_err		 err = { 0 };
	redisContext		*c;
	char			 url[64];
	int			 port = 0, failed = 0, passed = 0;
	pid_t			 pid;
	struct timespec		 backoff = { 1, 100 * 1000 * 1000 };

	(void)state;
	pid = redis_start(&port);
	snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port);
	o.redis_url = url;
	assert_int_equal(pw_rl_new(&o, &a, &err), 0);
	assert_int_equal(pw_rl_new(&o, &b, &err), 0);
	for (int i = 0; i < 6; i++) {
		passed += burst(a, NULL, "shared", 10, 100, &failed);
		passed += burst(b, NULL, "shared", 10, 100, &failed);
	}
	assert_int_equal(failed, 0);
	assert_int_equal(passed, 100);
	/* The counter lives in db 3, under pw's prefix, with an expiry. */
	c = redisConnect("127.0.0.1", port);
	freeReplyObject(redisCommand(c, "SELECT 3"));
	redisReply *rp = redisCommand(c, "HGET pw:rl:shared c");
	assert_int_equal(rp->type, REDIS_REPLY_STRING);
	assert_string_equal(rp->str, "100");
	freeReplyObject(rp);
	rp = redisCommand(c, "PTTL pw:rl:shared");
	assert_true(rp->integer > 0);
	freeReplyObject(rp);
	/* In batches, far below a larger limit. */
	o.batch = 64;
	batches(&o, NULL, NULL);
	o.batch = 0;
	/* NOSCRIPT: loaded again, the answer unchanged. */
	freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
	redisFree(c);
	assert_int_equal(burst(a, NULL, "other", 5, 3, &failed), 3);
	assert_int_equal(failed, 0);
	/* Killed: closed refuses at once; back: counted again. */
	redis_stop(pid);
	assert_int_equal(burst(a, NULL, "k", 3, 100, &failed), 0);
	assert_int_equal(failed, 3);
	pid = redis_start(&port);
	nanosleep(&backoff, NULL);
	failed = 0;
	assert_int_equal(burst(a, NULL, "k", 3, 100, &failed), 3);
	assert_int_equal(failed, 0);
	pw_rl_free(a);
	pw_rl_free(b);
	redis_stop(pid);
}

/* ---------------------------------------------------------- config */

static void
test_config(void **state)
{
	struct pw_rl_config	 c;
	struct pw_err		 err = { 0 };

	(void)state;
	pw_rl_config_default(&c);
	assert_int_equal(pw_rl_config_check(&c, &err), 0);
	assert_int_equal(pw_rl_config_tier(&c, c.default_tier)->lim.limit,
	    100);
	assert_int_equal(pw_rl_config_endpoint(&c,
	    "/api/v1/request")->lim.limit, 50);
	assert_int_equal(pw_rl_config_endpoint(&c,
	    "/api/v1/health")->lim.limit, 0);
	assert_null(pw_rl_config_endpoint(&c, "/api/v1/proxies"));
	free(c.default_tier);
	c.default_tier = pw_xstrdup("gold");
	assert_int_equal(pw_rl_config_check(&c, &err), PW_EUSAGE);
	assert_non_null(strstr(err.msg, "default_tier"));
	pw_rl_config_release(&c);
}

static void
sa4(struct sockaddr_storage *ss, const char *a)
{
	struct pw_rl_net	n;

	assert_int_equal(pw_rl_net_parse(a, &n), 0);
	*ss = n.addr;
}

static void
test_nets(void **state)
{
	struct pw_rl_net	n;
	struct sockaddr_storage	ss;

	(void)state;
	assert_int_equal(pw_rl_net_parse("10.0.0.0/8", &n), 0);
	sa4(&ss, "10.200.1.1");
	assert_true(pw_rl_net_match(&n, (struct sockaddr *)&ss));
	sa4(&ss, "11.0.0.1");
	assert_false(pw_rl_net_match(&n, (struct sockaddr *)&ss));
	/* IPv4-mapped IPv6 is the IPv4 address. */
	sa4(&ss, "::ffff:10.1.2.3");
	assert_true(pw_rl_net_match(&n, (struct sockaddr *)&ss));
	assert_int_equal(pw_rl_net_parse("fd00::/8", &n), 0);
	sa4(&ss, "fd12::1");
	assert_true(pw_rl_net_match(&n, (struct sockaddr *)&ss));
	sa4(&ss, "127.0.0.1");
	assert_false(pw_rl_net_match(&n, (struct sockaddr *)&ss));
	assert_int_equal(pw_rl_net_parse("172.16.0.0/12", &n), 0);
	sa4(&ss, "172.31.255.255");
	assert_true(pw_rl_net_match(&n, (struct sockaddr *)&ss));
	sa4(&ss, "172.32.0.0");
	assert_false(pw_rl_net_match(&n, (struct sockaddr *)&ss));
	assert_int_equal(pw_rl_net_parse("10.0.0.0/33", &n), -1);
	assert_int_equal(pw_rl_net_parse("host", &n), -1);
	assert_int_equal(pw_rl_net_parse("/8", &n), -1);
	assert_int_equal(pw_rl_net_parse("10.0.0.0/", &n), -1);
}

static void
test_client_behind_proxies(void **state)
{
	struct pw_rl_config	c;
	struct sockaddr_storage	peer;
	char			buf[64];

	(void)state;
	pw_rl_config_default(&c);
	/* Nobody trusted: the headers are ignored. */
	sa4(&peer, "127.0.0.1");
	pw_rl_client(&c, (struct sockaddr *)&peer, "1.2.3.4", "5.6.7.8", buf,
	    sizeof buf);
	assert_string_equal(buf, "127.0.0.1");
	c.trusted = pw_xcalloc(2, sizeof *c.trusted);
	assert_int_equal(pw_rl_net_parse("127.0.0.0/8", &c.trusted[0]), 0);
	assert_int_equal(pw_rl_net_parse("10.0.0.0/8", &c.trusted[1]), 0);
	c.ntrusted = 2;
	/* The last untrusted hop, not what the client wrote before it. */
	pw_rl_client(&c, (struct sockaddr *)&peer,
	    "6.6.6.6, 1.2.3.4, 10.0.0.5", NULL, buf, sizeof buf);
	assert_string_equal(buf, "1.2.3.4");
	pw_rl_client(&c, (struct sockaddr *)&peer, NULL, " 9.9.9.9 ", buf,
	    sizeof buf);
	assert_string_equal(buf, "9.9.9.9");
	/* Garbage in the header: the proxy itself is the client. */
	pw_rl_client(&c, (struct sockaddr *)&peer, "nonsense", NULL, buf,
	    sizeof buf);
	assert_string_equal(buf, "127.0.0.1");
	/* An untrusted peer's headers count for nothing. */
	sa4(&peer, "8.8.8.8");
	pw_rl_client(&c, (struct sockaddr *)&peer, "1.2.3.4", NULL, buf,
	    sizeof buf);
	assert_string_equal(buf, "8.8.8.8");
	pw_rl_config_release(&c);
}

static void
test_whitelist(void **state)
{
	struct pw_rl_config	c;

	(void)state;
	pw_rl_config_default(&c);
	c.whitelist = pw_xcalloc(2, sizeof *c.whitelist);
	c.whitelist[0] = pw_xstrdup("key:monitor");
	c.whitelist[1] = pw_xstrdup("192.168.0.0/16");
	c.nwhitelist = 2;
	assert_true(pw_rl_config_whitelisted(&c, "monitor", "8.8.8.8"));
	assert_false(pw_rl_config_whitelisted(&c, "monitor2", "8.8.8.8"));
	assert_true(pw_rl_config_whitelisted(&c, NULL, "192.168.4.4"));
	assert_false(pw_rl_config_whitelisted(&c, NULL, "192.169.4.4"));
	pw_rl_config_release(&c);
}

static void
test_config_parse(void **state)
{
	struct pw_rl_config	 c;
	struct pw_err		 err = { 0 };
	const char		*good = "{\"default_tier\": \"free\", "
	    "\"tiers\": [{\"name\": \"free\", \"limit\": 100}, "
	    "{\"name\": \"premium\", \"limit\": 1000, \"window\": 30}, "
	    "{\"name\": \"unlimited\", \"limit\": null}], "
	    "\"endpoints\": {\"/api/v1/request\": 20, "
	    "\"/api/v1/health\": {\"limit\": 1000, \"window\": 60}}, "
	    "\"whitelist\": [\"key:ops\", \"10.0.0.0/8\"], "
	    "\"trusted_proxies\": [\"127.0.0.1\"]}";

	(void)state;
	if (pw_rl_config_parse(good, strlen(good), &c, &err) != 0)
		fail_msg("%s", err.msg);
	assert_string_equal(c.default_tier, "free");
	assert_int_equal(c.ntiers, 3);
	assert_int_equal(pw_rl_config_tier(&c, "premium")->lim.limit, 1000);
	assert_int_equal(pw_rl_config_tier(&c, "premium")->lim.window_ms,
	    30000);
	assert_int_equal(pw_rl_config_tier(&c, "unlimited")->lim.limit, 0);
	/* Laid over the built-in endpoints. */
	assert_int_equal(pw_rl_config_endpoint(&c,
	    "/api/v1/request")->lim.limit, 20);
	assert_int_equal(pw_rl_config_endpoint(&c,
	    "/api/v1/health")->lim.limit, 1000);
	assert_int_equal(pw_rl_config_endpoint(&c,
	    "/api/v1/ready")->lim.limit, 0);
	assert_int_equal(c.nwhitelist, 2);
	assert_int_equal(c.ntrusted, 1);
	pw_rl_config_release(&c);

	/* Each bad input names its field. */
	static const char *const bad[][2] = {
		{ "[]", "want a JSON object, not an array" },
		{ "{", "not valid JSON" },
		{ "{} {\"tiers\": []}", "not valid JSON" },
		{ "{\"whitelist\": []}]", "not valid JSON" },
		{ "{\"tier\": 1}", "tier: unknown field" },
		/* Found by fuzz_ratelimit: a name is shown on one line. */
		{ "{\"a\\nb\": 1}", "a?b: unknown field" },
		{ "{\"endpoints\": {\"/x\": {\"a\\u0001\": 1}}}",
		  "endpoints./x.a?: unknown field" },
		{ "{\"tiers\": []}", "tiers: want a non-empty array" },
		{ "{\"tiers\": [{\"name\": \"a\"}]}",
		  "tiers[0].limit: missing" },
		{ "{\"tiers\": [{\"name\": \"a\", \"limit\": -1}]}",
		  "tiers[0].limit: want an integer from 0" },
		{ "{\"tiers\": [{\"name\": \"a\", \"limit\": 1.5}]}",
		  "tiers[0].limit: want an integer" },
		{ "{\"tiers\": [{\"name\": \"a\", \"limit\": 1}, "
		  "{\"name\": \"b c\", \"limit\": 1}]}",
		  "tiers[1].name: want a name" },
		{ "{\"tiers\": [{\"name\": \"a\", \"limit\": 1, "
		  "\"window\": 0}]}", "tiers[0].window: want seconds" },
		{ "{\"tiers\": [{\"name\": \"a\", \"limit\": 1, "
		  "\"burst\": 0}]}", "tiers[0].burst: unknown field" },
		{ "{\"tiers\": [{\"name\": \"a\", \"limit\": 1}, "
		  "{\"name\": \"a\", \"limit\": 2}]}",
		  "tiers[1].name: 'a' twice" },
		{ "{\"default_tier\": \"gold\"}",
		  "default_tier: 'gold' is not one of the tiers" },
		{ "{\"endpoints\": {\"api\": 1}}",
		  "endpoints.api: a path starts with /" },
		{ "{\"endpoints\": {\"/x\": \"10\"}}",
		  "endpoints./x: want an integer" },
		{ "{\"endpoints\": {\"/x\": {\"limit\": 1, \"rate\": 2}}}",
		  "endpoints./x.rate: unknown field" },
		{ "{\"whitelist\": [\"nonsense\"]}",
		  "whitelist[0]: want an address, a network or key:NAME" },
		{ "{\"whitelist\": \"10.0.0.1\"}",
		  "whitelist: want an array of strings" },
		{ "{\"trusted_proxies\": [\"10.0.0.0/8\", \"key:x\"]}",
		  "trusted_proxies[1]: want an address or a network" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&err, 0, sizeof err);
		assert_int_equal(pw_rl_config_parse(bad[i][0],
		    strlen(bad[i][0]), &c, &err), PW_EUSAGE);
		if (strstr(err.msg, bad[i][1]) != err.msg)
			fail_msg("%s: got '%s', want '%s...'", bad[i][0],
			    err.msg, bad[i][1]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_boundaries),
		cmocka_unit_test(test_weighting),
		cmocka_unit_test(test_window_alignment),
		cmocka_unit_test(test_clock_restart),
		cmocka_unit_test(test_two_counters),
		cmocka_unit_test(test_memory_exact),
		cmocka_unit_test(test_memory_unlimited_and_bad),
		cmocka_unit_test_setup_teardown(test_sqlite_processes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sqlite_batches, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sqlite_peek, setup,
		    teardown),
		cmocka_unit_test(test_redis_url),
		cmocka_unit_test(test_redis_down),
		cmocka_unit_test(test_redis_shared),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_parse),
		cmocka_unit_test(test_nets),
		cmocka_unit_test(test_client_behind_proxies),
		cmocka_unit_test(test_whitelist),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
