/*
 * ratelimit.c -- the sliding-window limiter (see ratelimit.h for the
 * arithmetic): configuration, and the memory and Redis backends. The
 * state-file backend's SQL is in store.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "ratelimit.h"

/* ---------------------------------------------------------- arithmetic */

void
pw_rl_roll(struct pw_rl_state *s, int64_t now, int64_t w)
{
	int64_t	ws = now - now % w;

	if (s->win == ws)
		return;
	/* The window before keeps its count; older ones (or a window in
	 * the future: the clock started again) count nothing. */
	s->prev = s->win == ws - w ? s->cur : 0;
	s->cur = 0;
	s->win = ws;
}

void
pw_rl_unspend(struct pw_rl_state *s, int64_t w, int64_t win, int64_t n)
{
	if (s->win == win)
		s->cur = s->cur > n ? s->cur - n : 0;
	else if (s->win - w == win)
		s->prev = s->prev > n ? s->prev - n : 0;
}

/* Whether s allows k more under l. */
static int
allows(const struct pw_rl_state *s, const struct pw_rl_limit *l,
    int64_t now, int64_t k)
{
	int64_t	w = l->window_ms, e = now - s->win;

	if (l->limit == 0)
		return 1;
	return s->prev * (w - e) + (s->cur + k) * w <= l->limit * w;
}

/* Milliseconds from now until s allows one more under l. */
static int64_t
retry_after(const struct pw_rl_state *s, const struct pw_rl_limit *l,
    int64_t now)
{
	int64_t	w = l->window_ms, e = now - s->win, L = l->limit;

	if (allows(s, l, now, 1))
		return 0;
	/* Later in this window, once enough of prev has slid out. */
	if (s->cur + 1 <= L && s->prev > 0)
		return w - (L - s->cur - 1) * w / s->prev - e;
	/* In the next one, where cur becomes prev. */
	return w - e + w - (L - 1) * w / s->cur;
}

void
pw_rl_verdict(const struct pw_rl_state *s, const struct pw_rl_limit *l,
    size_t n, int64_t now, int allowed, struct pw_rl_verdict *v)
{
	int	bound = 0;

	memset(v, 0, sizeof *v);
	v->allowed = allowed;
	for (size_t i = 0; i < n; i++) {
		int64_t w = l[i].window_ms, e = now - s[i].win, left, retry;

		v->win[i] = s[i].win;
		if (l[i].limit == 0)
			continue;
		left = (l[i].limit * w - s[i].prev * (w - e) - s[i].cur * w) /
		    w;
		if (left < 0)
			left = 0;
		retry = allowed ? 0 : retry_after(&s[i], &l[i], now);
		if (!bound || left < v->remaining || (left == v->remaining &&
		    l[i].limit < v->limit)) {
			v->limit = l[i].limit;
			v->remaining = left;
			v->reset_ms = w - e;
		}
		if (retry > v->retry_ms)
			v->retry_ms = retry;
		bound = 1;
	}
}

void
pw_rl_apply(struct pw_rl_state *s, const struct pw_rl_limit *l, size_t n,
    int64_t now, int commit, struct pw_rl_verdict *v)
{
	int	ok = 1;

	for (size_t i = 0; i < n; i++)
		if (!allows(&s[i], &l[i], now, commit > 0 ? commit : 1))
			ok = 0;
	if (ok)
		for (size_t i = 0; i < n; i++)
			s[i].cur += commit;
	pw_rl_verdict(s, l, n, now, ok, v);
}

/* ------------------------------------------------------ memory backend */

/*
 * Counters in a hash table split into stripes, each with its own lock, so
 * that the server's threads seldom wait for one another. A check locks
 * the stripes of its counters in ascending order.
 */
#define STRIPES		64

struct mentry {
	struct mentry		*next;
	uint64_t		 hash;
	int64_t			 window_ms;
	struct pw_rl_state	 s;
	/* A lease (sqlite and redis backends; see lease_check). */
	int64_t			 tokens;	/* counted, not yet used */
	int64_t			 granted;	/* the last batch */
	int64_t			 until;		/* when what is left lapses */
	int64_t			 asked;		/* the backend's last check */
	struct pw_rl_verdict	 v;		/* and its verdict */
	char			 key[];
};

struct stripe {
	pthread_mutex_t		 mu;
	struct mentry		**b;
	size_t			 nb;
	size_t			 n;
	size_t			 sweep_at;	/* sweep when n reaches it */
};

static uint64_t
hash_key(const char *k)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	while (*k != '\0')
		h = (h ^ (unsigned char)*k++) * 0x100000001b3ULL;
	return h;
}

/* Drop counters whose windows have both passed: they would read 0. */
static void
stripe_sweep(struct stripe *sp, int64_t now)
{
	for (size_t i = 0; i < sp->nb; i++) {
		struct mentry **pp = &sp->b[i], *e;

		while ((e = *pp) != NULL) {
			if (e->s.win + 2 * e->window_ms <= now) {
				*pp = e->next;
				free(e);
				sp->n--;
			} else
				pp = &e->next;
		}
	}
	sp->sweep_at = sp->n * 2 > 1024 ? sp->n * 2 : 1024;
}

static void
stripe_grow(struct stripe *sp)
{
	size_t		  nb = sp->nb ? sp->nb * 2 : 64;
	struct mentry	**b = pw_xcalloc(nb, sizeof *b), *e, *next;

	for (size_t i = 0; i < sp->nb; i++)
		for (e = sp->b[i]; e != NULL; e = next) {
			next = e->next;
			e->next = b[(e->hash / STRIPES) % nb];
			b[(e->hash / STRIPES) % nb] = e;
		}
	free(sp->b);
	sp->b = b;
	sp->nb = nb;
}

static struct mentry *
stripe_get(struct stripe *sp, const char *key, uint64_t h, int64_t w,
    int64_t now, int create)
{
	struct mentry	*e;
	size_t		 len;

	if (sp->nb != 0)
		for (e = sp->b[(h / STRIPES) % sp->nb]; e != NULL;
		    e = e->next)
			if (e->hash == h && strcmp(e->key, key) == 0)
				return e;
	if (!create)
		return NULL;
	if (sp->n >= sp->sweep_at)
		stripe_sweep(sp, now);
	if (sp->n >= sp->nb * 2)
		stripe_grow(sp);
	len = strlen(key);
	e = pw_xmalloc(sizeof *e + len + 1);
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->window_ms = w;
	memset(&e->s, 0, offsetof(struct mentry, key) -
	    offsetof(struct mentry, s));
	e->next = sp->b[(h / STRIPES) % sp->nb];
	sp->b[(h / STRIPES) % sp->nb] = e;
	sp->n++;
	return e;
}

/* ------------------------------------------------------- Redis backend */

/*
 * One check, atomic on the server: roll each counter to Redis's clock,
 * take back ARGV[2] requests counted in window GW (a lapsed batch), allow
 * when every counter allows ARGV[1] more (one, for a peek: 0), then count
 * them in each. It returns {allowed, now, win1, cur1, prev1, ...} for the
 * verdict. After ARGV[2], the limit L, window W (ms) and GW of each key.
 */
static const char lua_check[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 +\n"
	"    math.floor(tonumber(t[2]) / 1000)\n"
	"local k, g = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"local ok, st = 1, {}\n"
	"for i = 1, #KEYS do\n"
	"  local L, W = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])\n"
	"  local GW = tonumber(ARGV[3 * i + 2])\n"
	"  local h = redis.call('HMGET', KEYS[i], 'w', 'c', 'p')\n"
	"  local win, cur, prev = tonumber(h[1]), tonumber(h[2]) or 0,\n"
	"      tonumber(h[3]) or 0\n"
	"  local ws = now - now % W\n"
	"  if win ~= ws then\n"
	"    if win == ws - W then prev = cur else prev = 0 end\n"
	"    cur = 0\n"
	"  end\n"
	"  if g > 0 and GW == ws then\n"
	"    cur = math.max(cur - g, 0)\n"
	"  elseif g > 0 and GW == ws - W then\n"
	"    prev = math.max(prev - g, 0)\n"
	"  end\n"
	"  local need = math.max(k, 1)\n"
	"  if prev * (W - (now - ws)) + (cur + need) * W > L * W then\n"
	"    ok = 0\n"
	"  end\n"
	"  st[i] = {ws, cur, prev, W}\n"
	"end\n"
	"if (ok == 1 and k > 0) or g > 0 then\n"
	"  for i = 1, #KEYS do\n"
	"    if ok == 1 then st[i][2] = st[i][2] + k end\n"
	"    redis.call('HSET', KEYS[i], 'w', st[i][1], 'c', st[i][2],\n"
	"        'p', st[i][3])\n"
	"    redis.call('PEXPIRE', KEYS[i], 2 * st[i][4])\n"
	"  end\n"
	"end\n"
	"local out = {ok, now}\n"
	"for i = 1, #KEYS do\n"
	"  out[#out + 1] = st[i][1]\n"
	"  out[#out + 1] = st[i][2]\n"
	"  out[#out + 1] = st[i][3]\n"
	"end\n"
	"return out\n";

/* Keys in Redis carry this prefix, so a shared Redis stays tidy. */
#define REDIS_PREFIX	"pw:rl:"
#define REDIS_IDLE_MAX	64		/* connections kept for reuse */
#define REDIS_BACKOFF	1000		/* ms without trying after a failure */

struct redis_target {
	char		*host;
	int		 port;
	char		*pass;
	char		*user;
	int		 db;
};

struct pw_rl {
	struct pw_rl_opts	 o;
	struct stripe		 stripes[STRIPES];
	/* Redis */
	struct redis_target	 rt;
	/*
	 * The threads of one process take turns at the state file here,
	 * where waiting is cheap, not in SQLite's busy handler, which
	 * sleeps for milliseconds.
	 */
	pthread_mutex_t		 file_mu;
	pthread_mutex_t		 mu;		/* guards what follows */
	redisContext		*idle[REDIS_IDLE_MAX];
	int			 nidle;
	char			 sha[41];	/* of lua_check, once loaded */
	int64_t			 down_until;	/* monotonic ms */
	char			 why[256];	/* the last failure */
	atomic_llong		 calls;		/* checks on the backend */
	/* What a change of settings may change (pw_rl_server_settings). */
	atomic_int		 fail_open;
	atomic_llong		 batch;
};

/*
 * redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]; HOST may be [IPv6]. The
 * password is never part of a message.
 */
static int
redis_parse(const char *url, struct redis_target *t, struct pw_err *err)
{
	const char	*p, *at, *hs, *he, *end;
	char		*num;
	long		 v;

	memset(t, 0, sizeof *t);
	t->port = 6379;
	if (url == NULL || strncmp(url, "redis://", 8) != 0)
		return pw_failf(err, PW_EUSAGE, "ratelimit.redis_url: want "
		    "redis://HOST[:PORT][/DB]");
	p = url + 8;
	end = p + strcspn(p, "/");
	if ((at = memchr(p, '@', end - p)) != NULL) {
		const char *colon = memchr(p, ':', at - p);

		if (colon == NULL)
			return pw_failf(err, PW_EUSAGE, "ratelimit.redis_url: "
			    "want [USER]:PASSWORD@ before the host");
		if (colon > p)
			t->user = pw_xstrndup(p, colon - p);
		t->pass = pw_xstrndup(colon + 1, at - colon - 1);
		p = at + 1;
	}
	if (*p == '[') {
		hs = p + 1;
		if ((he = memchr(hs, ']', end - hs)) == NULL)
			goto bad;
		p = he + 1;
	} else {
		hs = p;
		he = p + strcspn(p, ":/");
		if (he > end)
			he = end;
		p = he;
	}
	if (he == hs)
		goto bad;
	t->host = pw_xstrndup(hs, he - hs);
	if (*p == ':') {
		v = strtol(p + 1, &num, 10);
		if (num == p + 1 || num != end || v < 1 || v > 65535)
			goto bad;
		t->port = (int)v;
	} else if (p != end)
		goto bad;
	if (*end == '/' && end[1] != '\0') {
		v = strtol(end + 1, &num, 10);
		if (*num != '\0' || v < 0 || v > 10000)
			goto bad;
		t->db = (int)v;
	}
	return 0;
bad:
	free(t->host);
	free(t->user);
	free(t->pass);
	memset(t, 0, sizeof *t);
	return pw_failf(err, PW_EUSAGE, "ratelimit.redis_url: bad address: "
	    "want redis://HOST[:PORT][/DB]");
}

static void
redis_why(struct pw_rl *rl, redisContext *c, const redisReply *rp,
    const char *what)
{
	const char *msg = rp != NULL && rp->type == REDIS_REPLY_ERROR ?
	    rp->str : c != NULL && c->err ? c->errstr : "no answer";

	snprintf(rl->why, sizeof rl->why, "redis %s:%d: %s: %s", rl->rt.host,
	    rl->rt.port, what, msg);
}

/* Run one command; NULL (and why set) on any failure or error reply. */
static redisReply *
redis_run(struct pw_rl *rl, redisContext *c, int argc, const char **argv,
    const size_t *lens, const char *what)
{
	redisReply	*rp = redisCommandArgv(c, argc, argv, lens);

	if (rp == NULL || rp->type == REDIS_REPLY_ERROR) {
		pthread_mutex_lock(&rl->mu);
		redis_why(rl, c, rp, what);
		pthread_mutex_unlock(&rl->mu);
		if (rp != NULL)
			freeReplyObject(rp);
		return NULL;
	}
	return rp;
}

static redisContext *
redis_connect(struct pw_rl *rl)
{
	struct timeval	 tv = { rl->o.timeout_ms / 1000,
	    (rl->o.timeout_ms % 1000) * 1000 };
	redisContext	*c;
	redisReply	*rp;
	char		 db[16];

	c = redisConnectWithTimeout(rl->rt.host, rl->rt.port, tv);
	if (c == NULL || c->err) {
		pthread_mutex_lock(&rl->mu);
		redis_why(rl, c, NULL, "connect");
		pthread_mutex_unlock(&rl->mu);
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (rl->rt.pass != NULL) {
		const char *a[3] = { "AUTH", rl->rt.user, rl->rt.pass };

		if (rl->rt.user == NULL)
			a[1] = rl->rt.pass;
		if ((rp = redis_run(rl, c, rl->rt.user ? 3 : 2, a, NULL,
		    "AUTH")) == NULL) {
			redisFree(c);
			return NULL;
		}
		freeReplyObject(rp);
	}
	if (rl->rt.db != 0) {
		const char *a[2] = { "SELECT", db };

		snprintf(db, sizeof db, "%d", rl->rt.db);
		if ((rp = redis_run(rl, c, 2, a, NULL, "SELECT")) == NULL) {
			redisFree(c);
			return NULL;
		}
		freeReplyObject(rp);
	}
	return c;
}

/* Load the script (again, after NOSCRIPT) and note its SHA1. */
static int
redis_load(struct pw_rl *rl, redisContext *c)
{
	const char	*a[3] = { "SCRIPT", "LOAD", lua_check };
	redisReply	*rp;
	int		 ok;

	if ((rp = redis_run(rl, c, 3, a, NULL, "SCRIPT LOAD")) == NULL)
		return -1;
	ok = rp->type == REDIS_REPLY_STRING && rp->len == 40;
	pthread_mutex_lock(&rl->mu);
	if (ok)
		memcpy(rl->sha, rp->str, 41);
	else
		snprintf(rl->why, sizeof rl->why, "redis: SCRIPT LOAD: "
		    "unexpected answer");
	pthread_mutex_unlock(&rl->mu);
	freeReplyObject(rp);
	return ok ? 0 : -1;
}

static int
redis_check(struct pw_rl *rl, const char *const *keys,
    const struct pw_rl_limit *l, size_t n, int commit,
    const struct pw_rl_giveback *gb, struct pw_rl_verdict *v)
{
	struct pw_rl_state	 s[PW_RL_KEYS_MAX];
	redisContext		*c = NULL;
	redisReply		*rp = NULL;
	const char		*argv[5 + 4 * PW_RL_KEYS_MAX];
	char			 nums[3 * PW_RL_KEYS_MAX][24];
	char			 names[PW_RL_KEYS_MAX][256];
	char			 nk[24], nc[24], ng[24], sha[41];
	int			 argc = 0, tries;
	int64_t			 now = pw_mono_ms();

	pthread_mutex_lock(&rl->mu);
	if (now < rl->down_until) {
		pthread_mutex_unlock(&rl->mu);
		return -1;
	}
	if (rl->nidle > 0)
		c = rl->idle[--rl->nidle];
	memcpy(sha, rl->sha, sizeof sha);
	pthread_mutex_unlock(&rl->mu);
	if (c == NULL && (c = redis_connect(rl)) == NULL)
		goto fail;
	if (sha[0] == '\0') {
		if (redis_load(rl, c) != 0)
			goto fail;
		pthread_mutex_lock(&rl->mu);
		memcpy(sha, rl->sha, sizeof sha);
		pthread_mutex_unlock(&rl->mu);
	}
	snprintf(nk, sizeof nk, "%zu", n);
	argv[argc++] = "EVALSHA";
	argv[argc++] = sha;
	argv[argc++] = nk;
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof names[i], REDIS_PREFIX "%s",
		    keys[i]);
		argv[argc++] = names[i];
	}
	snprintf(nc, sizeof nc, "%d", commit);
	snprintf(ng, sizeof ng, "%lld", gb ? (long long)gb->n : 0LL);
	argv[argc++] = nc;
	argv[argc++] = ng;
	for (size_t i = 0; i < n; i++) {
		snprintf(nums[3 * i], sizeof nums[0], "%lld",
		    (long long)l[i].limit);
		snprintf(nums[3 * i + 1], sizeof nums[0], "%lld",
		    (long long)l[i].window_ms);
		snprintf(nums[3 * i + 2], sizeof nums[0], "%lld",
		    gb ? (long long)gb->win[i] : -1LL);
		for (int j = 0; j < 3; j++)
			argv[argc++] = nums[3 * i + j];
	}
	for (tries = 0; tries < 2; tries++) {
		rp = redisCommandArgv(c, argc, argv, NULL);
		if (rp != NULL && rp->type == REDIS_REPLY_ERROR &&
		    strncmp(rp->str, "NOSCRIPT", 8) == 0 && tries == 0) {
			/* Flushed or restarted: load it again, once. */
			freeReplyObject(rp);
			rp = NULL;
			if (redis_load(rl, c) != 0)
				goto fail;
			pthread_mutex_lock(&rl->mu);
			memcpy(sha, rl->sha, sizeof sha);
			pthread_mutex_unlock(&rl->mu);
			continue;
		}
		break;
	}
	if (rp == NULL || rp->type != REDIS_REPLY_ARRAY ||
	    rp->elements != 2 + 3 * n) {
		pthread_mutex_lock(&rl->mu);
		if (rp != NULL && rp->type == REDIS_REPLY_ERROR)
			redis_why(rl, c, rp, "EVALSHA");
		else if (rp == NULL)
			redis_why(rl, c, NULL, "EVALSHA");
		else
			snprintf(rl->why, sizeof rl->why, "redis: EVALSHA: "
			    "unexpected answer");
		pthread_mutex_unlock(&rl->mu);
		goto fail;
	}
	for (size_t i = 0; i < rp->elements; i++)
		if (rp->element[i]->type != REDIS_REPLY_INTEGER) {
			pthread_mutex_lock(&rl->mu);
			snprintf(rl->why, sizeof rl->why, "redis: EVALSHA: "
			    "unexpected answer");
			pthread_mutex_unlock(&rl->mu);
			goto fail;
		}
	now = rp->element[1]->integer;
	for (size_t i = 0; i < n; i++) {
		s[i].win = rp->element[2 + 3 * i]->integer;
		s[i].cur = rp->element[3 + 3 * i]->integer;
		s[i].prev = rp->element[4 + 3 * i]->integer;
	}
	pw_rl_verdict(s, l, n, now, rp->element[0]->integer == 1, v);
	freeReplyObject(rp);
	pthread_mutex_lock(&rl->mu);
	if (rl->nidle < REDIS_IDLE_MAX) {
		rl->idle[rl->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&rl->mu);
	if (c != NULL)
		redisFree(c);
	return 0;
fail:
	if (rp != NULL)
		freeReplyObject(rp);
	if (c != NULL)
		redisFree(c);
	/* The other connections most likely went the same way. */
	pthread_mutex_lock(&rl->mu);
	rl->down_until = pw_mono_ms() + REDIS_BACKOFF;
	while (rl->nidle > 0)
		redisFree(rl->idle[--rl->nidle]);
	pthread_mutex_unlock(&rl->mu);
	return -1;
}

/* --------------------------------------------------------- the limiter */

int
pw_rl_redis_url_ok(const char *url)
{
	struct redis_target	t;
	struct pw_err		err;

	if (redis_parse(url, &t, &err) != 0)
		return 0;
	free(t.host);
	free(t.user);
	if (t.pass != NULL)
		explicit_bzero(t.pass, strlen(t.pass));
	free(t.pass);
	return 1;
}

int
pw_rl_new(const struct pw_rl_opts *o, struct pw_rl **out,
    struct pw_err *err)
{
	struct pw_rl	*rl;
	int		 r;

	*out = NULL;
	rl = pw_xcalloc(1, sizeof *rl);
	rl->o = *o;
	rl->o.redis_url = NULL;
	if (rl->o.timeout_ms <= 0)
		rl->o.timeout_ms = 100;
	if (o->backend == PW_RL_REDIS &&
	    (r = redis_parse(o->redis_url, &rl->rt, err)) != 0) {
		free(rl);
		return r;
	}
	atomic_store(&rl->fail_open, o->fail_open);
	atomic_store(&rl->batch, o->batch);
	pthread_mutex_init(&rl->mu, NULL);
	pthread_mutex_init(&rl->file_mu, NULL);
	for (int i = 0; i < STRIPES; i++) {
		pthread_mutex_init(&rl->stripes[i].mu, NULL);
		rl->stripes[i].sweep_at = 1024;
	}
	*out = rl;
	return 0;
}

void
pw_rl_free(struct pw_rl *rl)
{
	struct mentry	*e, *next;

	if (rl == NULL)
		return;
	for (int i = 0; i < STRIPES; i++) {
		struct stripe *sp = &rl->stripes[i];

		for (size_t j = 0; j < sp->nb; j++)
			for (e = sp->b[j]; e != NULL; e = next) {
				next = e->next;
				free(e);
			}
		free(sp->b);
		pthread_mutex_destroy(&sp->mu);
	}
	for (int i = 0; i < rl->nidle; i++)
		redisFree(rl->idle[i]);
	pthread_mutex_destroy(&rl->mu);
	pthread_mutex_destroy(&rl->file_mu);
	free(rl->rt.host);
	free(rl->rt.user);
	if (rl->rt.pass != NULL)
		explicit_bzero(rl->rt.pass, strlen(rl->rt.pass));
	free(rl->rt.pass);
	free(rl);
}

enum pw_rl_backend
pw_rl_backend(const struct pw_rl *rl)
{
	return rl->o.backend;
}

const char *
pw_rl_last_error(struct pw_rl *rl, char *buf, size_t n)
{
	pthread_mutex_lock(&rl->mu);
	snprintf(buf, n, "%s", rl->why);
	pthread_mutex_unlock(&rl->mu);
	return buf;
}

static int
cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static void
memory_check(struct pw_rl *rl, const char *const *keys,
    const struct pw_rl_limit *l, size_t n, int commit,
    struct pw_rl_verdict *v)
{
	struct pw_rl_state	 s[PW_RL_KEYS_MAX];
	struct mentry		*e[PW_RL_KEYS_MAX];
	uint64_t		 h[PW_RL_KEYS_MAX];
	int			 order[PW_RL_KEYS_MAX], nlock = 0;
	int64_t			 now = pw_mono_ms();

	for (size_t i = 0; i < n; i++) {
		int st;

		h[i] = hash_key(keys[i]);
		st = (int)(h[i] % STRIPES);
		for (int j = 0; j < nlock; j++)
			if (order[j] == st)
				st = -1;
		if (st >= 0)
			order[nlock++] = st;
	}
	qsort(order, nlock, sizeof order[0], cmp_int);
	for (int j = 0; j < nlock; j++)
		pthread_mutex_lock(&rl->stripes[order[j]].mu);
	for (size_t i = 0; i < n; i++) {
		e[i] = stripe_get(&rl->stripes[h[i] % STRIPES], keys[i], h[i],
		    l[i].window_ms, now, commit);
		if (e[i] != NULL) {
			s[i] = e[i]->s;
			/* A key's window follows its latest limit. */
			if (e[i]->window_ms != l[i].window_ms)
				memset(&s[i], 0, sizeof s[i]);
		} else
			memset(&s[i], 0, sizeof s[i]);
		pw_rl_roll(&s[i], now, l[i].window_ms);
	}
	pw_rl_apply(s, l, n, now, commit, v);
	if (commit)
		for (size_t i = 0; i < n; i++) {
			e[i]->s = s[i];
			e[i]->window_ms = l[i].window_ms;
		}
	for (int j = nlock - 1; j >= 0; j--)
		pthread_mutex_unlock(&rl->stripes[order[j]].mu);
}

/*
 * A check of count requests on the state file or Redis, after taking gb
 * (or NULL) back.
 */
static void
shared_check(struct pw_rl *rl, struct pw_store *st, const char *const *k,
    const struct pw_rl_limit *l, size_t m, int count,
    const struct pw_rl_giveback *gb, struct pw_rl_verdict *v)
{
	struct pw_err	e = { 0, "" };
	int		r, open;

	atomic_fetch_add(&rl->calls, 1);
	if (rl->o.backend == PW_RL_SQLITE) {
		pthread_mutex_lock(&rl->file_mu);
		r = pw_store_rl_check(st, k, l, m, pw_mono_ms(), count, gb, v,
		    &e);
		pthread_mutex_unlock(&rl->file_mu);
		if (r != 0) {
			pthread_mutex_lock(&rl->mu);
			snprintf(rl->why, sizeof rl->why, "%.200s", e.msg);
			pthread_mutex_unlock(&rl->mu);
		}
	} else
		r = redis_check(rl, k, l, m, count, gb, v);
	if (r != 0) {
		/* Down: the configured mode decides, and says so. */
		memset(v, 0, sizeof *v);
		open = atomic_load(&rl->fail_open);
		v->failed = 1;
		v->allowed = open;
		v->limit = l[0].limit;
		v->remaining = open ? l[0].limit : 0;
		v->reset_ms = l[0].window_ms;
		v->retry_ms = open ? 0 : REDIS_BACKOFF;
	}
}

/*
 * On the state file or Redis, each check is a round trip that costs a
 * server about as much as the request it guards. Far from a limit that
 * is not needed: a server counts a batch of requests there in one atomic
 * check, and lets them through from memory until the batch is used or
 * LEASE_MS has passed. A batch is what the server let through in the
 * LEASE_MS before, at most ratelimit.batch and 1% of each limit, and
 * none in the last tenth of a limit: there each request is checked on
 * the backend. So no more than the limit ever pass, on however many
 * servers; what a lapsed batch left is taken back with the next check
 * (which is for one request).
 */
#define LEASE_MS	500

static void
lease_check(struct pw_rl *rl, struct pw_store *st, const char *const *k,
    const struct pw_rl_limit *l, size_t m, struct pw_rl_verdict *v)
{
	char			 key[PW_RL_KEYS_MAX * 320];
	struct pw_rl_giveback	 gb = { 0 };
	struct stripe		*sp;
	struct mentry		*e;
	uint64_t		 h;
	int64_t			 now = pw_mono_ms(), want = 1, w = 0;
	size_t			 len = 0;

	for (size_t i = 0; i < m; i++) {
		int n = snprintf(key + len, sizeof key - len, "%s\x1f%lld/%lld"
		    "\x1e", k[i], (long long)l[i].limit,
		    (long long)l[i].window_ms);

		if (n < 0 || (size_t)n >= sizeof key - len) {
			shared_check(rl, st, k, l, m, 1, NULL, v);
			return;
		}
		len += n;
		if (l[i].window_ms > w)
			w = l[i].window_ms;
	}
	h = hash_key(key);
	sp = &rl->stripes[h % STRIPES];
	pthread_mutex_lock(&sp->mu);
	e = stripe_get(sp, key, h, w, now, 1);
	e->s.win = now;		/* swept when idle for two windows */
	if (e->tokens > 0 && now < e->until) {
		e->tokens--;
		*v = e->v;
		v->remaining += e->tokens;
		v->reset_ms -= now - e->asked;
		if (v->reset_ms < 0)
			v->reset_ms = 0;
		pthread_mutex_unlock(&sp->mu);
		return;
	}
	if (e->tokens > 0) {
		/* Lapsed: this check takes them back (no other will). */
		gb.n = e->tokens;
		memcpy(gb.win, e->v.win, sizeof gb.win);
		e->tokens = 0;
	} else if (e->asked != 0) {
		want = e->granted * LEASE_MS / (now - e->asked > 1 ?
		    now - e->asked : 1);
		if (want > atomic_load(&rl->batch))
			want = atomic_load(&rl->batch);
		if (want > e->v.remaining - e->v.limit / 10)
			want = e->v.remaining - e->v.limit / 10;
		for (size_t i = 0; i < m; i++)
			if (want > l[i].limit / 100)
				want = l[i].limit / 100;
		if (want < 1)
			want = 1;
	}
	pthread_mutex_unlock(&sp->mu);

	shared_check(rl, st, k, l, m, (int)want, gb.n ? &gb : NULL, v);
	if (!v->failed && !v->allowed && want > 1) {
		want = 1;
		shared_check(rl, st, k, l, m, 1, NULL, v);
	}
	pthread_mutex_lock(&sp->mu);
	e = stripe_get(sp, key, h, w, now, 1);
	e->s.win = now;
	if (v->failed) {
		/* Not taken back: the next check tries again. */
		if (gb.n > 0 && e->tokens == 0 && e->until <= now) {
			e->tokens = gb.n;
			memcpy(e->v.win, gb.win, sizeof gb.win);
		}
		pthread_mutex_unlock(&sp->mu);
		return;
	}
	/* Another thread's batch may still run: it keeps what it has. */
	if (now >= e->until)
		e->tokens = 0;
	e->granted = v->allowed ? want : 0;
	e->tokens += v->allowed ? want - 1 : 0;
	e->until = now + (v->reset_ms < LEASE_MS ? v->reset_ms : LEASE_MS);
	e->asked = now;
	e->v = *v;
	if (v->allowed)
		v->remaining += e->tokens;
	pthread_mutex_unlock(&sp->mu);
}

int
pw_rl_check(struct pw_rl *rl, struct pw_store *st, const char *const *keys,
    const struct pw_rl_limit *lims, size_t n, int commit,
    struct pw_rl_verdict *v, struct pw_err *err)
{
	const char		*k[PW_RL_KEYS_MAX];
	struct pw_rl_limit	 l[PW_RL_KEYS_MAX];
	size_t			 m = 0;

	memset(v, 0, sizeof *v);
	if (n > PW_RL_KEYS_MAX)
		return pw_failf(err, PW_EUSAGE, "rate limit: %zu counters in "
		    "one check (at most %d)", n, PW_RL_KEYS_MAX);
	/* Unlimited counters need no backend. */
	for (size_t i = 0; i < n; i++) {
		if (lims[i].limit < 0 || lims[i].window_ms <= 0)
			return pw_failf(err, PW_EUSAGE, "rate limit: bad "
			    "limit for %s", keys[i]);
		if (lims[i].limit > 0) {
			k[m] = keys[i];
			l[m++] = lims[i];
		}
	}
	if (m == 0) {
		v->allowed = 1;
		return 0;
	}
	if (rl->o.backend == PW_RL_MEMORY)
		memory_check(rl, k, l, m, commit, v);
	else if (commit && atomic_load(&rl->batch) > 1)
		lease_check(rl, st, k, l, m, v);
	else
		shared_check(rl, st, k, l, m, commit, NULL, v);
	return 0;
}

/* ------------------------------------------------------- configuration */

static void
tier_add(struct pw_rl_config *c, const char *name, int64_t limit)
{
	c->tiers = pw_xrealloc(c->tiers, (c->ntiers + 1) *
	    sizeof *c->tiers);
	c->tiers[c->ntiers].name = pw_xstrdup(name);
	c->tiers[c->ntiers].lim.limit = limit;
	c->tiers[c->ntiers].lim.window_ms = 60000;
	c->ntiers++;
}

static void
endpoint_add(struct pw_rl_config *c, const char *path, int64_t limit)
{
	c->endpoints = pw_xrealloc(c->endpoints, (c->nendpoints + 1) *
	    sizeof *c->endpoints);
	c->endpoints[c->nendpoints].path = pw_xstrdup(path);
	c->endpoints[c->nendpoints].lim.limit = limit;
	c->endpoints[c->nendpoints].lim.window_ms = 60000;
	c->nendpoints++;
}

void
pw_rl_config_default(struct pw_rl_config *c)
{
	memset(c, 0, sizeof *c);
	c->default_tier = pw_xstrdup("default");
	tier_add(c, "default", 100);
	endpoint_add(c, "/api/v1/request", 50);
	/* Probes are never throttled; nor is looking at the limits. */
	endpoint_add(c, "/api/v1/health", 0);
	endpoint_add(c, "/api/v1/ready", 0);
	endpoint_add(c, "/metrics", 0);
	endpoint_add(c, "/api/v1/rate-limit/metrics", 0);
	endpoint_add(c, "/api/v1/rate-limit/config", 0);
	endpoint_add(c, "/api/v1/rate-limit/status/{id}", 0);
}

void
pw_rl_config_release(struct pw_rl_config *c)
{
	for (size_t i = 0; i < c->ntiers; i++)
		free(c->tiers[i].name);
	for (size_t i = 0; i < c->nendpoints; i++)
		free(c->endpoints[i].path);
	for (size_t i = 0; i < c->nwhitelist; i++)
		free(c->whitelist[i]);
	free(c->tiers);
	free(c->endpoints);
	free(c->whitelist);
	free(c->trusted);
	free(c->default_tier);
	memset(c, 0, sizeof *c);
}

const struct pw_rl_tier *
pw_rl_config_tier(const struct pw_rl_config *c, const char *name)
{
	for (size_t i = 0; name != NULL && i < c->ntiers; i++)
		if (strcmp(c->tiers[i].name, name) == 0)
			return &c->tiers[i];
	return NULL;
}

const struct pw_rl_endpoint *
pw_rl_config_endpoint(const struct pw_rl_config *c, const char *path)
{
	for (size_t i = 0; i < c->nendpoints; i++)
		if (strcmp(c->endpoints[i].path, path) == 0)
			return &c->endpoints[i];
	return NULL;
}

int
pw_rl_config_check(const struct pw_rl_config *c, struct pw_err *err)
{
	for (size_t i = 0; i < c->ntiers; i++) {
		if (c->tiers[i].name[0] == '\0')
			return pw_failf(err, PW_EUSAGE, "tiers[%zu].name: "
			    "empty", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->tiers[i].name, c->tiers[j].name) == 0)
				return pw_failf(err, PW_EUSAGE, "tiers[%zu]"
				    ".name: '%s' twice", i, c->tiers[i].name);
	}
	for (size_t i = 0; i < c->nendpoints; i++) {
		if (c->endpoints[i].path[0] != '/')
			return pw_failf(err, PW_EUSAGE, "endpoints: '%s': "
			    "a path starts with /", c->endpoints[i].path);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->endpoints[i].path,
			    c->endpoints[j].path) == 0)
				return pw_failf(err, PW_EUSAGE, "endpoints: "
				    "'%s' twice", c->endpoints[i].path);
	}
	if (pw_rl_config_tier(c, c->default_tier) == NULL)
		return pw_failf(err, PW_EUSAGE, "default_tier: '%s' is not "
		    "one of the tiers", c->default_tier);
	return 0;
}

int
pw_rl_net_parse(const char *s, struct pw_rl_net *n)
{
	struct sockaddr_in	*in = (struct sockaddr_in *)&n->addr;
	struct sockaddr_in6	*in6 = (struct sockaddr_in6 *)&n->addr;
	char			 host[64], *end;
	const char		*slash = strchr(s, '/');
	size_t			 len = slash ? (size_t)(slash - s) : strlen(s);
	long			 bits;
	int			 max;

	memset(n, 0, sizeof *n);
	if (len == 0 || len >= sizeof host)
		return -1;
	memcpy(host, s, len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		max = 128;
	} else
		return -1;
	n->bits = max;
	if (slash != NULL) {
		bits = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end != '\0' || bits < 0 ||
		    bits > max)
			return -1;
		n->bits = (int)bits;
	}
	return 0;
}

static int
prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int	whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return 0;
	return rest == 0 || ((a[whole] ^ b[whole]) & (0xff << (8 - rest))) ==
	    0;
}

int
pw_rl_net_match(const struct pw_rl_net *n, const struct sockaddr *sa)
{
	const unsigned char	*a;
	unsigned char		 v4[4];

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		a = s6->sin6_addr.s6_addr;
		/* ::ffff:a.b.c.d is the IPv4 address it carries. */
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    n->addr.ss_family == AF_INET) {
			memcpy(v4, a + 12, 4);
			a = v4;
		} else if (n->addr.ss_family != AF_INET6)
			return 0;
		else
			return prefix_eq(a, ((const struct sockaddr_in6 *)
			    &n->addr)->sin6_addr.s6_addr, n->bits);
	} else if (sa->sa_family == AF_INET) {
		if (n->addr.ss_family != AF_INET)
			return 0;
		a = (const unsigned char *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
	} else
		return 0;
	return prefix_eq(a, (const unsigned char *)&((const struct
	    sockaddr_in *)&n->addr)->sin_addr, n->bits);
}

static int
trusted(const struct pw_rl_config *c, const struct sockaddr *sa)
{
	for (size_t i = 0; i < c->ntrusted; i++)
		if (pw_rl_net_match(&c->trusted[i], sa))
			return 1;
	return 0;
}

static void
addr_text(const struct sockaddr *sa, char *buf, size_t n)
{
	const struct sockaddr_in6 *s6 = (const void *)sa;

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr, buf, n);
	else if (sa->sa_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		inet_ntop(AF_INET, s6->sin6_addr.s6_addr + 12, buf, n);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, n);
	else
		snprintf(buf, n, "unknown");
}

/* Parse one address of a header into ss; 0 when it is one. */
static int
header_addr(const char *p, size_t len, struct sockaddr_storage *ss)
{
	struct pw_rl_net	n;
	char			tmp[64];

	while (len > 0 && (*p == ' ' || *p == '\t'))
		p++, len--;
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof tmp)
		return -1;
	memcpy(tmp, p, len);
	tmp[len] = '\0';
	if (strchr(tmp, '/') != NULL || pw_rl_net_parse(tmp, &n) != 0)
		return -1;
	*ss = n.addr;
	return 0;
}

void
pw_rl_client(const struct pw_rl_config *c, const struct sockaddr *peer,
    const char *xff, const char *xreal, char *buf, size_t n)
{
	struct sockaddr_storage	ss;
	const char		*end;

	addr_text(peer, buf, n);
	if (!trusted(c, peer))
		return;
	/*
	 * From the right: each hop appended the address it saw. The first
	 * one that is not a trusted proxy is the client; what lies left of
	 * it could have been written by anyone.
	 */
	if (xff != NULL && *xff != '\0') {
		end = xff + strlen(xff);
		while (end > xff) {
			const char *start = end;

			while (start > xff && start[-1] != ',')
				start--;
			if (header_addr(start, end - start, &ss) != 0)
				return;
			if (!trusted(c, (struct sockaddr *)&ss)) {
				addr_text((struct sockaddr *)&ss, buf, n);
				return;
			}
			addr_text((struct sockaddr *)&ss, buf, n);
			end = start > xff ? start - 1 : xff;
		}
		return;
	}
	if (xreal != NULL && header_addr(xreal, strlen(xreal), &ss) == 0)
		addr_text((struct sockaddr *)&ss, buf, n);
}

int
pw_rl_config_whitelisted(const struct pw_rl_config *c, const char *key_name,
    const char *client)
{
	struct pw_rl_net	net;
	struct sockaddr_storage	ss;
	int			have = client != NULL &&
	    header_addr(client, strlen(client), &ss) == 0;

	for (size_t i = 0; i < c->nwhitelist; i++) {
		const char *w = c->whitelist[i];

		if (strncmp(w, "key:", 4) == 0) {
			if (key_name != NULL && strcmp(w + 4, key_name) == 0)
				return 1;
		} else if (have && pw_rl_net_parse(w, &net) == 0 &&
		    pw_rl_net_match(&net, (struct sockaddr *)&ss))
			return 1;
	}
	return 0;
}

/* ------------------------------------------------- pw serve's limiter */

#define LOOK_EVERY_MS	5000		/* how often the file is looked at */
#define FILE_MAX	(1 << 20)
#define THROTTLED_MAX	1024		/* identifiers whose refusals count */
#define TOP_SHOWN	10
#define IDENT_MAX	160

const double pw_rl_hist_le[PW_RL_HIST] = { 0.000005, 0.00001, 0.000025,
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025 };

struct throttled {
	char		*id;
	int64_t		 count;
	int64_t		 logged;	/* window of the last log line */
};

struct pw_rl_server {
	struct pw_rl		*rl;
	atomic_int		 enabled;
	const char		*backend;
	pthread_rwlock_t	 lock;		/* guards cfg and the file's */
	struct pw_rl_config	 cfg;
	char			*file;		/* ratelimit.config, or NULL */
	struct timespec		 mtime;
	off_t			 size;
	atomic_llong		 next_look;	/* written under lock */
	struct pw_rl_net	*set_trusted;	/* ratelimit.trusted_proxies */
	size_t			 nset_trusted;
	pthread_mutex_t		 mu;		/* guards the counts */
	struct pw_rl_stats	 st;
	struct throttled	*thr;
	size_t			 nthr;
};

/* The file of the configuration, whole, or an error naming it. */
static int
file_read(const char *path, char **out, size_t *len, struct stat *sb,
    struct pw_err *err)
{
	FILE	*f = fopen(path, "r");
	size_t	 n;

	*out = NULL;
	if (f == NULL)
		return pw_failf(err, PW_EUSAGE, "ratelimit.config: %s: %s",
		    path, strerror(errno));
	if (fstat(fileno(f), sb) != 0 || sb->st_size > FILE_MAX) {
		fclose(f);
		return pw_failf(err, PW_EUSAGE, "ratelimit.config: %s: over "
		    "%d bytes", path, FILE_MAX);
	}
	*out = pw_xmalloc((size_t)sb->st_size + 1);
	n = fread(*out, 1, (size_t)sb->st_size, f);
	fclose(f);
	(*out)[n] = '\0';
	*len = n;
	return 0;
}

/* Add the trusted proxies of the setting to c's. */
static void
trusted_add(struct pw_rl_server *s, struct pw_rl_config *c)
{
	if (s->nset_trusted == 0)
		return;
	c->trusted = pw_xrealloc(c->trusted, (c->ntrusted + s->nset_trusted) *
	    sizeof *c->trusted);
	memcpy(c->trusted + c->ntrusted, s->set_trusted, s->nset_trusted *
	    sizeof *c->trusted);
	c->ntrusted += s->nset_trusted;
}

static void
config_swap(struct pw_rl_server *s, struct pw_rl_config *c)
{
	pthread_rwlock_wrlock(&s->lock);
	pw_rl_config_release(&s->cfg);
	s->cfg = *c;
	pthread_rwlock_unlock(&s->lock);
	memset(c, 0, sizeof *c);
}

static int
file_load(struct pw_rl_server *s, struct pw_err *err)
{
	struct pw_rl_config	 c;
	struct stat		 sb;
	char			*json;
	size_t			 len = 0;
	int			 r;

	if ((r = file_read(s->file, &json, &len, &sb, err)) != 0)
		return r;
	r = pw_rl_config_parse(json, len, &c, err);
	free(json);
	if (r != 0)
		return pw_err_prefix(err, "ratelimit.config: %s", s->file);
	trusted_add(s, &c);
	config_swap(s, &c);
	pthread_rwlock_wrlock(&s->lock);
	s->mtime = sb.st_mtim;
	s->size = sb.st_size;
	pthread_rwlock_unlock(&s->lock);
	return 0;
}

/* Every LOOK_EVERY_MS, read the file again if it changed on disk. */
static void
maybe_reload(struct pw_rl_server *s)
{
	struct stat	sb;
	struct pw_err	err = { 0, "" };
	int64_t		now = pw_mono_ms();
	int		changed;

	/* Most requests come between two looks: no lock for them. */
	if (s->file == NULL || now < atomic_load(&s->next_look))
		return;
	pthread_rwlock_wrlock(&s->lock);
	if (now < atomic_load(&s->next_look)) {
		pthread_rwlock_unlock(&s->lock);
		return;
	}
	atomic_store(&s->next_look, now + LOOK_EVERY_MS);
	changed = stat(s->file, &sb) == 0 && (sb.st_size != s->size ||
	    sb.st_mtim.tv_sec != s->mtime.tv_sec ||
	    sb.st_mtim.tv_nsec != s->mtime.tv_nsec);
	pthread_rwlock_unlock(&s->lock);
	if (!changed)
		return;
	if (file_load(s, &err) != 0) {
		/* Keep what works; say why once per change. */
		pthread_rwlock_wrlock(&s->lock);
		s->mtime = sb.st_mtim;
		s->size = sb.st_size;
		pthread_rwlock_unlock(&s->lock);
		pw_log(PW_LOG_ERROR, "%s (the configuration in force is "
		    "kept)", err.msg);
	} else
		pw_log(PW_LOG_INFO, "ratelimit.config: %s read again",
		    s->file);
}

int
pw_rl_server_new(struct pw_ctx *ctx, struct pw_rl_server **out)
{
	struct pw_rl_server	*s;
	struct pw_rl_opts	 o = { 0 };
	struct pw_rl_config	 c;
	const char		*v;
	int			 r;

	*out = NULL;
	s = pw_xcalloc(1, sizeof *s);
	pthread_rwlock_init(&s->lock, NULL);
	pthread_mutex_init(&s->mu, NULL);
	s->backend = pw_config_get(ctx, "ratelimit.backend", NULL);
	o.backend = strcmp(s->backend, "redis") == 0 ? PW_RL_REDIS :
	    strcmp(s->backend, "sqlite") == 0 ? PW_RL_SQLITE : PW_RL_MEMORY;
	o.redis_url = pw_config_get(ctx, "ratelimit.redis_url", NULL);
	/* The setting was checked when it was set. */
	v = pw_config_get(ctx, "ratelimit.trusted_proxies", NULL);
	for (v += strspn(v, " \t,"); *v != '\0'; v += strspn(v, " \t,")) {
		char tok[64];
		size_t n = strcspn(v, " \t,");

		snprintf(tok, sizeof tok, "%.*s", (int)n, v);
		s->set_trusted = pw_xrealloc(s->set_trusted,
		    (s->nset_trusted + 1) * sizeof *s->set_trusted);
		if (pw_rl_net_parse(tok, &s->set_trusted[s->nset_trusted]) ==
		    0)
			s->nset_trusted++;
		v += n;
	}
	v = pw_config_get(ctx, "ratelimit.config", NULL);
	if (v != NULL && *v != '\0') {
		s->file = pw_xstrdup(v);
		r = file_load(s, &ctx->err);
	} else {
		pw_rl_config_default(&c);
		trusted_add(s, &c);
		config_swap(s, &c);
		r = 0;
	}
	if (r == 0)
		r = pw_rl_new(&o, &s->rl, &ctx->err);
	if (r != 0) {
		pw_rl_server_free(s);
		return r;
	}
	pw_rl_server_settings(s, ctx);
	atomic_store(&s->next_look, pw_mono_ms() + LOOK_EVERY_MS);
	*out = s;
	return 0;
}

static void
counts_free(struct pw_rl_count *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].name);
	free(c);
}

void
pw_rl_stats_release(struct pw_rl_stats *st)
{
	counts_free(st->tiers, st->ntiers);
	counts_free(st->endpoints, st->nendpoints);
	counts_free(st->top, st->ntop);
	memset(st, 0, sizeof *st);
}

void
pw_rl_server_free(struct pw_rl_server *s)
{
	if (s == NULL)
		return;
	pw_rl_free(s->rl);
	pw_rl_config_release(&s->cfg);
	pw_rl_stats_release(&s->st);
	for (size_t i = 0; i < s->nthr; i++)
		free(s->thr[i].id);
	free(s->thr);
	free(s->set_trusted);
	free(s->file);
	pthread_rwlock_destroy(&s->lock);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int
pw_rl_server_enabled(const struct pw_rl_server *s)
{
	return atomic_load(&s->enabled);
}

void
pw_rl_server_settings(struct pw_rl_server *s, struct pw_ctx *ctx)
{
	atomic_store(&s->enabled, pw_config_int(ctx, "ratelimit.enabled") !=
	    0);
	atomic_store(&s->rl->fail_open, strcmp(pw_config_get(ctx,
	    "ratelimit.fail_mode", NULL), "open") == 0);
	atomic_store(&s->rl->batch, pw_config_int(ctx, "ratelimit.batch"));
}

const char *
pw_rl_server_backend(const struct pw_rl_server *s)
{
	return s->backend;
}

/* The count named name in *c, made when new. Under mu. */
static struct pw_rl_count *
count_of(struct pw_rl_count **c, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*c)[i].name, name) == 0)
			return &(*c)[i];
	*c = pw_xrealloc(*c, (*n + 1) * sizeof **c);
	(*c)[*n].name = pw_xstrdup(name);
	(*c)[*n].checks = (*c)[*n].throttled = 0;
	return &(*c)[(*n)++];
}

/* A refusal of id: counted, and logged once per window. Under mu. */
static void
throttled(struct pw_rl_server *s, const char *id, const char *endpoint,
    const struct pw_rl_verdict *v, const char *tier, int64_t window)
{
	struct throttled	*t = NULL;
	int64_t			 win = pw_mono_ms() / window;

	for (size_t i = 0; i < s->nthr; i++)
		if (strcmp(s->thr[i].id, id) == 0)
			t = &s->thr[i];
	if (t == NULL && s->nthr < THROTTLED_MAX) {
		s->thr = pw_xrealloc(s->thr, (s->nthr + 1) * sizeof *s->thr);
		t = &s->thr[s->nthr++];
		t->id = pw_xstrdup(id);
		t->count = 0;
		t->logged = -1;
	}
	if (t == NULL)
		return;
	t->count++;
	if (t->logged != win) {
		t->logged = win;
		pw_log(PW_LOG_WARN, "rate limit: %s throttled on %s (%lld in "
		    "%llds, tier %s)", id, endpoint, (long long)v->limit,
		    (long long)(window / 1000), tier);
	}
}

void
pw_rl_server_check(struct pw_rl_server *s, struct pw_store *st,
    const struct pw_rl_who *who, const char *endpoint,
    struct pw_rl_verdict *v, int *limited)
{
	const struct pw_rl_endpoint	*ep;
	const struct pw_rl_tier		*tier;
	struct pw_rl_limit		 l[2];
	struct pw_err			 err = { 0, "" };
	char				 ident[IDENT_MAX], k0[IDENT_MAX + 4];
	char				 k1[IDENT_MAX + 300], tname[72];
	const char			*k[2] = { k0, k1 };
	size_t				 n = 1;
	struct timespec			 t0, t1;
	double				 secs;
	int				 b;

	*limited = 0;
	memset(v, 0, sizeof *v);
	v->allowed = 1;
	if (!atomic_load(&s->enabled))
		return;
	maybe_reload(s);
	pthread_rwlock_rdlock(&s->lock);
	ep = pw_rl_config_endpoint(&s->cfg, endpoint);
	if ((ep != NULL && ep->lim.limit == 0) ||
	    pw_rl_config_whitelisted(&s->cfg, who->key, who->client)) {
		pthread_rwlock_unlock(&s->lock);
		pthread_mutex_lock(&s->mu);
		s->st.exempt++;
		pthread_mutex_unlock(&s->mu);
		return;
	}
	if ((tier = pw_rl_config_tier(&s->cfg, who->tier)) == NULL)
		tier = pw_rl_config_tier(&s->cfg, s->cfg.default_tier);
	snprintf(tname, sizeof tname, "%s", tier->name);
	snprintf(ident, sizeof ident, "%s:%s", who->key ? "key" : "addr",
	    who->key ? who->key : who->client);
	snprintf(k0, sizeof k0, "t:%s", ident);
	l[0] = tier->lim;
	if (ep != NULL) {
		snprintf(k1, sizeof k1, "e:%s:%s", endpoint, ident);
		l[1] = ep->lim;
		n = 2;
	}
	pthread_rwlock_unlock(&s->lock);
	if (l[0].limit == 0 && n == 1)
		return;			/* an unlimited tier */
	*limited = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pw_rl_check(s->rl, st, k, l, n, 1, v, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	for (b = 0; b < PW_RL_HIST && secs > pw_rl_hist_le[b]; b++)
		;
	pthread_mutex_lock(&s->mu);
	s->st.checks++;
	s->st.hist[b]++;
	s->st.seconds += secs;
	s->st.failures += v->failed;
	count_of(&s->st.tiers, &s->st.ntiers, tname)->checks++;
	count_of(&s->st.endpoints, &s->st.nendpoints, endpoint)->checks++;
	/* A backend that failed closed throttled nobody: 503, counted so. */
	if (!v->allowed && !v->failed) {
		s->st.throttled++;
		count_of(&s->st.tiers, &s->st.ntiers, tname)->throttled++;
		count_of(&s->st.endpoints, &s->st.nendpoints,
		    endpoint)->throttled++;
		throttled(s, ident, endpoint, v, tname, l[0].limit ?
		    l[0].window_ms : l[1].window_ms);
	}
	pthread_mutex_unlock(&s->mu);
}

int
pw_rl_server_status(struct pw_rl_server *s, struct pw_store *st,
    const char *identifier, const char *tier_name, char ***names,
    struct pw_rl_verdict **v, size_t *n, struct pw_err *err)
{
	const struct pw_rl_tier	*tier;
	char			 ident[IDENT_MAX], key[IDENT_MAX + 300];
	const char		*k = key;
	struct pw_rl_limit	 l;
	int			 r = 0;

	*names = NULL;
	*v = NULL;
	*n = 0;
	if (strncmp(identifier, "key:", 4) == 0)
		snprintf(ident, sizeof ident, "%s", identifier);
	else
		snprintf(ident, sizeof ident, "addr:%s", identifier);
	pthread_rwlock_rdlock(&s->lock);
	if ((tier = pw_rl_config_tier(&s->cfg, tier_name)) == NULL)
		tier = pw_rl_config_tier(&s->cfg, s->cfg.default_tier);
	*names = pw_xcalloc(s->cfg.nendpoints + 1, sizeof **names);
	*v = pw_xcalloc(s->cfg.nendpoints + 1, sizeof **v);
	for (size_t i = 0; i <= s->cfg.nendpoints && r == 0; i++) {
		if (i == 0) {
			snprintf(key, sizeof key, "t:%s", ident);
			l = tier->lim;
			(*names)[*n] = pw_xasprintf("tier %s", tier->name);
		} else {
			const struct pw_rl_endpoint *ep =
			    &s->cfg.endpoints[i - 1];

			if (ep->lim.limit == 0)
				continue;
			snprintf(key, sizeof key, "e:%s:%s", ep->path, ident);
			l = ep->lim;
			(*names)[*n] = pw_xstrdup(ep->path);
		}
		if (l.limit == 0) {
			(*v)[*n].allowed = 1;
			(*n)++;
			continue;
		}
		r = pw_rl_check(s->rl, st, &k, &l, 1, 0, &(*v)[*n], err);
		(*n)++;
	}
	pthread_rwlock_unlock(&s->lock);
	return r;
}

void
pw_rl_server_set(struct pw_rl_server *s, struct pw_rl_config *c)
{
	trusted_add(s, c);
	config_swap(s, c);
}

int
pw_rl_server_reload(struct pw_rl_server *s, struct pw_err *err)
{
	return s->file == NULL ? 0 : file_load(s, err);
}

const struct pw_rl_config *
pw_rl_server_config_get(struct pw_rl_server *s)
{
	pthread_rwlock_rdlock(&s->lock);
	return &s->cfg;
}

void
pw_rl_server_config_put(struct pw_rl_server *s)
{
	pthread_rwlock_unlock(&s->lock);
}

static struct pw_rl_count *
counts_dup(const struct pw_rl_count *c, size_t n)
{
	struct pw_rl_count	*d = pw_xcalloc(n + 1, sizeof *d);

	for (size_t i = 0; i < n; i++) {
		d[i] = c[i];
		d[i].name = pw_xstrdup(c[i].name);
	}
	return d;
}

static int
by_throttled(const void *a, const void *b)
{
	const struct throttled	*x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 :
	    strcmp(x->id, y->id);
}

void
pw_rl_server_stats(struct pw_rl_server *s, struct pw_rl_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	out->backend_checks = atomic_load(&s->rl->calls);
	out->tiers = counts_dup(s->st.tiers, s->st.ntiers);
	out->endpoints = counts_dup(s->st.endpoints, s->st.nendpoints);
	if (s->nthr > 1)
		qsort(s->thr, s->nthr, sizeof *s->thr, by_throttled);
	out->ntop = s->nthr < TOP_SHOWN ? s->nthr : TOP_SHOWN;
	out->top = pw_xcalloc(out->ntop + 1, sizeof *out->top);
	for (size_t i = 0; i < out->ntop; i++) {
		out->top[i].name = pw_xstrdup(s->thr[i].id);
		out->top[i].throttled = s->thr[i].count;
	}
	pthread_mutex_unlock(&s->mu);
}
