/*
 * view.c -- pw serve's L1 view of the pool: every proxy in memory, chosen
 * from by the same strategies as pw pool next, with the outcomes of
 * requests kept in memory and written to the state file in batches.
 *
 * Layout. A snapshot is an array of the proxies in id order, loaded from
 * the file in one read; its strings live in an arena freed with it.
 * Readers (selections, reports, overlays) hold the read side of `lk` for
 * the few microseconds they use it; a reload builds a new snapshot
 * without any lock, then swaps it under the write side. A proxy's
 * counters change under one of NSTRIPES mutexes (by id), so requests
 * through different proxies do not wait for each other, and each change
 * is also added to that stripe's table of pending deltas.
 *
 * Deltas. What one proxy's outcomes did since the last flush is a
 * composition of its events (counts added, the latency EMA as an affine
 * map, the failure run, the cooldown set last): delta_then() composes two
 * of them and delta_apply() applies one to stored counters. The same
 * functions update the view at each event, write a batch to the file
 * (read the row, apply, write it, inside one BEGIN IMMEDIATE), and put
 * pending deltas back on top of a freshly loaded snapshot, so the three
 * always agree with what pw pool report would have stored.
 *
 * Changes by others. The view's own connection is used for flushes and
 * for PRAGMA data_version, which moves only when another connection
 * commits: pw pool add/rm, pw health, pw config set in other processes,
 * and this server's own API writes on its workers' connections. Then, if
 * the pool's generation (pw_store_pool_gen) moved too, the snapshot is
 * reloaded, and the generation bumped so that workers reload their
 * settings too; a commit of rate-limit counters or the like moves only
 * data_version and costs no reload. The connection (`conn`) is only ever
 * used by one thread at a time.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define NSTRIPES	64
#define ARENA_CHUNK	(64 << 10)
/* Tries of rejection sampling before a scan, as in pool.c. */
#define SAMPLE_TRIES	64

struct arena_chunk {
	struct arena_chunk	*next;
	size_t			 used, cap;
	char			 data[];
};

struct ventry {
	int64_t			 id;
	const char		*host;
	const char		*region, *source, *anonymity;
	const unsigned char	*user, *pass;	/* sealed */
	uint32_t		 user_len, pass_len;
	int64_t			 added_at, expires_at, last_checked;
	double			 weight;
	uint16_t		 port;
	uint8_t			 scheme;
	int8_t			 status;
	char			 country[3];
	uint32_t		 dix;		/* its pending delta + 1; 0 */
	struct pw_stats		 st;		/* under its stripe's lock */
};

struct snap {
	struct ventry		*e;
	size_t			 n;
	struct arena_chunk	*arena;
	double			 max_weight;	/* < 0: none */
	_Atomic double		 min_latency;	/* < 0: none; only falls */
	atomic_long		 unmeasured;	/* without latency: at most */
};

/* What a proxy's events did, composed (see delta_then). */
struct vdelta {
	int64_t	id;		/* 0: empty slot */
	int64_t	started, window, last_used, updated_at;
	int64_t	completed, succeeded, failed;
	int64_t	nlat;
	double	lat_a, lat_b;	/* old latency -> a * old + b */
	double	lat_null;	/* the result when there was none */
	int	had_success;
	int64_t	fails_after;	/* failures after the last success */
	int64_t	cool_end;	/* cooldown the last failure would set */
	int64_t	threshold;	/* failure threshold at that failure */
};

/* The pending deltas of the proxies whose id falls in this stripe. */
struct stripe {
	pthread_mutex_t	 mu;
	struct vdelta	*d;		/* d[e->dix - 1] is e's */
	size_t		 n, cap;
};

struct vcursor {
	char	*name;
	int64_t	 value;
	int	 dirty;
};

struct vsess {
	char	*id;		/* NULL: empty slot */
	int64_t	 proxy_id, created_at, last_used, expires_at;
	int64_t	 requests, failovers;
	int	 dirty;
};

struct pw_view {
	struct pw_ctx		 ctx;		/* the view's own connection */
	pthread_mutex_t		 conn;		/* guards ctx, dv, pool_gen */
	int64_t			 dv;
	int64_t			 pool_gen;	/* the file's, as loaded */
	int64_t			 check_ms;
	atomic_llong		 checked_ms;
	atomic_int		 checking;	/* a thread is at it */
	atomic_ullong		 gen;

	pthread_rwlock_t	 lk;		/* the snapshot pointer */
	struct snap		*snap;
	struct stripe		 stripes[NSTRIPES];
	atomic_size_t		 pending;

	pthread_mutex_t		 cur_mu;	/* cursors and the window */
	struct vcursor		*cur;
	size_t			 ncur;
	int64_t			 window_start;
	int64_t			 window_reset;	/* to write; 0: none */

	pthread_mutex_t		 ses_mu;
	struct vsess		*ses;		/* open addressing by id */
	size_t			 nses, capses;

	atomic_llong		 hits, misses;

	/* The last counts, for as long as nothing they depend on moved. */
	atomic_ullong		 cool_changes;	/* cooldowns set or cleared */
	pthread_mutex_t		 counts_mu;
	struct pw_view_counts	 counts;
	uint64_t		 counts_gen, counts_cool;
	int64_t			 counts_now;	/* 0: none */
};

static struct vcursor *cursor(struct pw_view *, const char *);

/* -------------------------------------------------------------- arena */

static void *
arena_alloc(struct arena_chunk **a, size_t n)
{
	struct arena_chunk	*c = *a;
	void			*p;

	n = (n + 7) & ~(size_t)7;
	if (c == NULL || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = pw_xmalloc(sizeof *c + cap);
		c->next = *a;
		c->used = 0;
		c->cap = cap;
		*a = c;
	}
	p = c->data + c->used;
	c->used += n;
	return p;
}

static const char *
arena_str(struct arena_chunk **a, const char *s)
{
	size_t	n;
	char	*p;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	p = arena_alloc(a, n);
	memcpy(p, s, n);
	return p;
}

static const unsigned char *
arena_blob(struct arena_chunk **a, const unsigned char *b, size_t n)
{
	unsigned char	*p;

	if (b == NULL)
		return NULL;
	p = arena_alloc(a, n ? n : 1);
	memcpy(p, b, n);
	return p;
}

static void
snap_free(struct snap *s)
{
	struct arena_chunk	*c, *next;

	if (s == NULL)
		return;
	for (c = s->arena; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(s->e);
	free(s);
}

/* ------------------------------------------------------------- deltas */

static void
delta_init(struct vdelta *d, int64_t id)
{
	memset(d, 0, sizeof *d);
	d->id = id;
	d->lat_a = 1;
}

/* a, then b: what the two did one after the other. */
static void
delta_then(struct vdelta *a, const struct vdelta *b)
{
	a->started += b->started;
	a->window += b->window;
	if (b->last_used > a->last_used)
		a->last_used = b->last_used;
	if (b->updated_at > a->updated_at)
		a->updated_at = b->updated_at;
	a->completed += b->completed;
	a->succeeded += b->succeeded;
	a->failed += b->failed;
	if (b->nlat > 0) {
		a->lat_null = a->nlat > 0 ? b->lat_a * a->lat_null + b->lat_b :
		    b->lat_null;
		a->lat_b = b->lat_a * a->lat_b + b->lat_b;
		a->lat_a *= b->lat_a;
		a->nlat += b->nlat;
	}
	if (b->fails_after > 0) {
		a->cool_end = b->cool_end;
		a->threshold = b->threshold;
	}
	a->fails_after = b->had_success ? b->fails_after : a->fails_after +
	    b->fails_after;
	a->had_success |= b->had_success;
}

/* One outcome, as S_REPORT in store.c records it. */
static void
delta_event(struct vdelta *d, int64_t id, int outcome, double latency_ms,
    double alpha, int64_t threshold, int64_t cooldown, int64_t now)
{
	delta_init(d, id);
	d->completed = 1;
	d->updated_at = now;
	if (outcome == PW_REPORT_OK) {
		d->succeeded = 1;
		d->had_success = 1;
	} else if (outcome == PW_REPORT_FAIL) {
		d->failed = 1;
		d->fails_after = 1;
		d->cool_end = now + cooldown;
		d->threshold = threshold;
	}
	if (latency_ms >= 0) {
		d->nlat = 1;
		d->lat_a = 1 - alpha;
		d->lat_b = alpha * latency_ms;
		d->lat_null = latency_ms;
	}
}

/* The counters of st after d. */
static void
delta_apply(struct pw_stats *st, const struct vdelta *d)
{
	int64_t	consec;

	st->started += d->started;
	st->window_count += d->window;
	if (d->last_used > st->last_used)
		st->last_used = d->last_used;
	if (d->updated_at > st->updated_at)
		st->updated_at = d->updated_at;
	st->completed += d->completed;
	st->succeeded += d->succeeded;
	st->failed += d->failed;
	if (d->nlat > 0)
		st->latency_ms = st->latency_ms < 0 ? d->lat_null :
		    d->lat_a * st->latency_ms + d->lat_b;
	consec = d->had_success ? d->fails_after : st->consec_fail +
	    d->fails_after;
	/*
	 * A success clears the cooldown; each failure at or past the
	 * threshold starts one, so the last failure's is what holds.
	 */
	if (d->fails_after > 0 && consec >= d->threshold)
		st->cooldown_until = d->cool_end;
	else if (d->had_success)
		st->cooldown_until = 0;
	st->consec_fail = consec;
}

/* The pending delta of e in s (s->mu held), made when missing. */
static struct vdelta *
stripe_get(struct pw_view *v, struct stripe *s, struct ventry *e)
{
	if (e->dix != 0)
		return &s->d[e->dix - 1];
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->d = pw_xrealloc(s->d, s->cap * sizeof *s->d);
	}
	delta_init(&s->d[s->n], e->id);
	e->dix = (uint32_t)++s->n;
	atomic_fetch_add(&v->pending, 1);
	return &s->d[s->n - 1];
}

static struct stripe *
stripe_of(struct pw_view *v, int64_t id)
{
	return &v->stripes[(uint64_t)id % NSTRIPES];
}

/* ----------------------------------------------------------- snapshot */

static struct ventry *
find(const struct snap *s, int64_t id)
{
	size_t	lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->e[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->e[lo].id == id ? &s->e[lo] : NULL;
}

/* The index of the first entry with an id above id. */
static size_t
after(const struct snap *s, int64_t id)
{
	size_t	lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->e[mid].id <= id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
stats_of(struct pw_view *v, const struct ventry *e, struct pw_stats *st)
{
	struct stripe	*s = stripe_of(v, e->id);

	pthread_mutex_lock(&s->mu);
	*st = e->st;
	pthread_mutex_unlock(&s->mu);
}

static void
min_latency_lower(struct snap *s, double lat)
{
	double	cur = atomic_load(&s->min_latency);

	while ((cur < 0 || lat < cur) &&
	    !atomic_compare_exchange_weak(&s->min_latency, &cur, lat))
		;
}

struct load_arg {
	struct snap	*s;
	size_t		 cap;
};

static int
load_row(void *arg, const struct pw_row *r)
{
	struct load_arg		*la = arg;
	struct snap		*s = la->s;
	const struct pw_proxy	*p = &r->p;
	struct ventry		*e;

	if (s->n == la->cap) {
		la->cap = la->cap ? la->cap * 2 : 1024;
		s->e = pw_xrealloc(s->e, la->cap * sizeof *s->e);
	}
	e = &s->e[s->n++];
	memset(e, 0, sizeof *e);
	e->id = p->id;
	e->host = arena_str(&s->arena, p->addr.host);
	e->region = arena_str(&s->arena, p->region);
	e->source = arena_str(&s->arena, p->source);
	e->anonymity = arena_str(&s->arena, p->anonymity);
	e->user = arena_blob(&s->arena, r->user, r->user_len);
	e->user_len = (uint32_t)r->user_len;
	e->pass = arena_blob(&s->arena, r->pass, r->pass_len);
	e->pass_len = (uint32_t)r->pass_len;
	e->added_at = p->added_at;
	e->expires_at = p->expires_at;
	e->last_checked = p->last_checked;
	e->weight = p->weight;
	e->port = (uint16_t)p->addr.port;
	e->scheme = (uint8_t)p->addr.scheme;
	e->status = (int8_t)p->status;
	if (p->country != NULL && strlen(p->country) == 2)
		memcpy(e->country, p->country, 3);
	e->st.started = p->started;
	e->st.completed = p->completed;
	e->st.succeeded = p->succeeded;
	e->st.failed = p->failed;
	e->st.consec_fail = p->consec_fail;
	e->st.latency_ms = p->latency_ms;
	e->st.cooldown_until = p->cooldown_until;
	e->st.last_used = p->last_used;
	e->st.window_count = p->window_count;
	e->st.updated_at = p->updated_at;
	if (p->weight > s->max_weight)
		s->max_weight = p->weight;
	if (p->latency_ms >= 0)
		min_latency_lower(s, p->latency_ms);
	else
		atomic_fetch_add(&s->unmeasured, 1);
	return 0;
}

static int
snap_load(struct pw_view *v, struct snap **out)
{
	struct load_arg	la;
	int		r;

	la.s = pw_xcalloc(1, sizeof *la.s);
	la.s->max_weight = -1;
	atomic_init(&la.s->min_latency, -1.0);
	atomic_init(&la.s->unmeasured, 0);
	la.cap = 0;
	r = pw_store_proxy_each(v->ctx.store, NULL, 0, load_row, &la,
	    &v->ctx.err);
	if (r != 0) {
		snap_free(la.s);
		return r;
	}
	/* Trim the doubling's slack: 100,000 proxies are 20 MiB. */
	if (la.s->n > 0 && la.s->n < la.cap)
		la.s->e = pw_xrealloc(la.s->e, la.s->n * sizeof *la.s->e);
	*out = la.s;
	return 0;
}

/* ----------------------------------------------------------- sessions */

static size_t
hash_str(const char *s, size_t cap)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h & (cap - 1);
}

/* ses_mu held. The slot of sid: its session, or the empty one to use. */
static struct vsess *
ses_slot(struct pw_view *v, const char *sid)
{
	size_t	i;

	if ((v->nses + 1) * 2 >= v->capses) {
		struct vsess	*old = v->ses;
		size_t		 ocap = v->capses;

		v->capses = v->capses ? v->capses * 2 : 64;
		v->ses = pw_xcalloc(v->capses, sizeof *v->ses);
		for (size_t k = 0; k < ocap; k++) {
			if (old[k].id == NULL)
				continue;
			for (i = hash_str(old[k].id, v->capses);
			    v->ses[i].id != NULL; i = (i + 1) & (v->capses - 1))
				;
			v->ses[i] = old[k];
		}
		free(old);
	}
	for (i = hash_str(sid, v->capses); v->ses[i].id != NULL;
	    i = (i + 1) & (v->capses - 1))
		if (strcmp(v->ses[i].id, sid) == 0)
			break;
	return &v->ses[i];
}

/* Rebuild the table without what keep() refuses (ses_mu held). */
static void
ses_filter(struct pw_view *v, int (*keep)(const struct vsess *, int64_t),
    int64_t arg)
{
	struct vsess	*old = v->ses;
	size_t		 ocap = v->capses;

	v->ses = NULL;
	v->nses = v->capses = 0;
	for (size_t k = 0; k < ocap; k++) {
		struct vsess *slot;

		if (old[k].id == NULL)
			continue;
		if (!keep(&old[k], arg)) {
			free(old[k].id);
			continue;
		}
		slot = ses_slot(v, old[k].id);
		*slot = old[k];
		v->nses++;
	}
	free(old);
}

static int
ses_live(const struct vsess *s, int64_t now)
{
	return s->expires_at > now;
}

static int
ses_dirty(const struct vsess *s, int64_t unused)
{
	(void)unused;
	return s->dirty;
}

static int
ses_load_one(void *arg, const struct pw_session *ss)
{
	struct pw_view	*v = arg;
	struct vsess	*slot = ses_slot(v, ss->id);

	if (slot->id != NULL)
		return 0;	/* ours, not yet written: ours holds */
	slot->id = pw_xstrdup(ss->id);
	slot->proxy_id = ss->proxy_id;
	slot->created_at = ss->created_at;
	slot->last_used = ss->last_used;
	slot->expires_at = ss->expires_at;
	slot->requests = ss->requests;
	slot->failovers = ss->failovers;
	slot->dirty = 0;
	v->nses++;
	return 0;
}

void
pw_view_prune(struct pw_view *v, int64_t now)
{
	pthread_mutex_lock(&v->ses_mu);
	ses_filter(v, ses_live, now);
	pthread_mutex_unlock(&v->ses_mu);
}

/* ------------------------------------------------------------ reload */

struct cur_load {
	struct vcursor	*c;
	size_t		 n;
};

static void
cur_load_one(void *arg, const char *name, int64_t value)
{
	struct cur_load	*cl = arg;

	cl->c = pw_xrealloc(cl->c, (cl->n + 1) * sizeof *cl->c);
	cl->c[cl->n].name = pw_xstrdup(name);
	cl->c[cl->n].value = value;
	cl->c[cl->n++].dirty = 0;
}

/*
 * Load the file again (conn held): the snapshot, the window, the cursors
 * and sessions nobody here changed since the last flush; then what is
 * pending goes back on top.
 */
static int
reload(struct pw_view *v)
{
	struct snap	*ns, *old;
	struct cur_load	 cl = { NULL, 0 };
	int64_t		 ws;
	int		 r;

	if ((r = pw_config_reload_state(&v->ctx)) != 0)
		return r;
	if ((r = snap_load(v, &ns)) != 0)
		return r;
	if ((r = pw_store_rotation_get(v->ctx.store, "window", &ws,
	    &v->ctx.err)) != 0 || (r = pw_store_rotation_each(v->ctx.store,
	    "cursor:", cur_load_one, &cl, &v->ctx.err)) != 0) {
		for (size_t i = 0; i < cl.n; i++)
			free(cl.c[i].name);
		free(cl.c);
		snap_free(ns);
		return r;
	}
	pthread_mutex_lock(&v->ses_mu);
	ses_filter(v, ses_dirty, 0);
	r = pw_store_session_each(v->ctx.store, pw_now(), ses_load_one, v,
	    &v->ctx.err);
	pthread_mutex_unlock(&v->ses_mu);
	if (r != 0) {
		for (size_t i = 0; i < cl.n; i++)
			free(cl.c[i].name);
		free(cl.c);
		snap_free(ns);
		return r;
	}
	pthread_rwlock_wrlock(&v->lk);
	pthread_mutex_lock(&v->cur_mu);
	/* The file's cursors, unless ours moved since the last flush. */
	for (size_t i = 0; i < cl.n; i++) {
		struct vcursor *c = cursor(v, cl.c[i].name);
		if (!c->dirty)
			c->value = cl.c[i].value;
		free(cl.c[i].name);
	}
	free(cl.c);
	if (v->window_reset == 0)
		v->window_start = ws;
	else
		for (size_t i = 0; i < ns->n; i++)
			ns->e[i].st.window_count = 0;
	pthread_mutex_unlock(&v->cur_mu);
	for (int k = 0; k < NSTRIPES; k++) {
		struct stripe	*s = &v->stripes[k];
		size_t		 kept = 0;

		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; i < s->n; i++) {
			struct ventry *e = find(ns, s->d[i].id);

			/* Gone from the file: its outcomes go with it. */
			if (e == NULL) {
				atomic_fetch_sub(&v->pending, 1);
				continue;
			}
			if (e->st.latency_ms < 0 && s->d[i].nlat > 0)
				atomic_fetch_sub(&ns->unmeasured, 1);
			delta_apply(&e->st, &s->d[i]);
			if (e->st.latency_ms >= 0)
				min_latency_lower(ns, e->st.latency_ms);
			s->d[kept] = s->d[i];
			e->dix = (uint32_t)++kept;
		}
		s->n = kept;
		pthread_mutex_unlock(&s->mu);
	}
	old = v->snap;
	v->snap = ns;
	pthread_rwlock_unlock(&v->lk);
	snap_free(old);
	atomic_fetch_add(&v->gen, 1);
	return 0;
}

int
pw_view_open(const char *state, const struct pw_config *cfg,
    int64_t check_ms, struct pw_view **out, struct pw_err *err)
{
	struct pw_view		*v = pw_xcalloc(1, sizeof *v);
	pthread_rwlockattr_t	 ra;
	int			 r;

	v->ctx.cfg = pw_config_dup(cfg);
	pthread_mutex_init(&v->conn, NULL);
	/*
	 * Readers hold lk for microseconds but, at full load, without a
	 * gap: a reload must not wait behind them for ever. (Nobody takes
	 * the read side twice.)
	 */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&v->lk, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&v->cur_mu, NULL);
	pthread_mutex_init(&v->ses_mu, NULL);
	pthread_mutex_init(&v->counts_mu, NULL);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&v->stripes[i].mu, NULL);
	v->check_ms = check_ms;
	if ((r = pw_open(&v->ctx, state, PW_OPEN_RW)) != 0 ||
	    (r = pw_store_long_lived(v->ctx.store, &v->ctx.err)) != 0 ||
	    (r = pw_store_data_version(v->ctx.store, &v->dv,
	    &v->ctx.err)) != 0 || (r = pw_store_pool_gen(v->ctx.store,
	    &v->pool_gen, &v->ctx.err)) != 0 || (r = reload(v)) != 0) {
		*err = v->ctx.err;
		v->ctx.err.code = 0;
		pw_view_close(v);
		return r;
	}
	atomic_store(&v->checked_ms, pw_mono_ms());
	*out = v;
	return 0;
}

void
pw_view_close(struct pw_view *v)
{
	if (v == NULL)
		return;
	if (v->ctx.store != NULL && v->snap != NULL &&
	    pw_view_flush(v, &v->ctx.err) != 0)
		pw_log(PW_LOG_WARN, "serve: %s", v->ctx.err.msg);
	pw_close(&v->ctx);
	snap_free(v->snap);
	for (int i = 0; i < NSTRIPES; i++) {
		free(v->stripes[i].d);
		pthread_mutex_destroy(&v->stripes[i].mu);
	}
	for (size_t i = 0; i < v->ncur; i++)
		free(v->cur[i].name);
	free(v->cur);
	for (size_t i = 0; i < v->capses; i++)
		free(v->ses[i].id);
	free(v->ses);
	pthread_mutex_destroy(&v->conn);
	pthread_rwlock_destroy(&v->lk);
	pthread_mutex_destroy(&v->cur_mu);
	pthread_mutex_destroy(&v->ses_mu);
	pthread_mutex_destroy(&v->counts_mu);
	free(v);
}

int
pw_view_sync(struct pw_view *v, int force, struct pw_err *err)
{
	long long	now = pw_mono_ms(), last = atomic_load(&v->checked_ms);
	int64_t		dv, gen;
	int		r = 0;

	/*
	 * One thread checks per interval; the others go on, unless it is
	 * at it now: then they wait for what it finds (a reload), not to
	 * serve a request with what it is replacing.
	 */
	if (!force && now - last < v->check_ms) {
		if (atomic_load(&v->checking)) {
			pthread_mutex_lock(&v->conn);
			pthread_mutex_unlock(&v->conn);
		}
		return 0;
	}
	pthread_mutex_lock(&v->conn);
	if (!force && now - atomic_load(&v->checked_ms) < v->check_ms) {
		/* Another thread checked while this one waited. */
		pthread_mutex_unlock(&v->conn);
		return 0;
	}
	/* In this order: a thread that sees the time sees it at it. */
	atomic_store(&v->checking, 1);
	atomic_store(&v->checked_ms, now);
	pw_err_clear(&v->ctx.err);
	r = pw_store_data_version(v->ctx.store, &dv, &v->ctx.err);
	if (r == 0 && (dv != v->dv || force)) {
		v->dv = dv;
		/* Read before the reload: a change after it is seen next. */
		r = pw_store_pool_gen(v->ctx.store, &gen, &v->ctx.err);
		if (r == 0 && (gen != v->pool_gen || force)) {
			v->pool_gen = gen;
			r = reload(v);
		}
	}
	if (r != 0)
		*err = v->ctx.err;
	atomic_store(&v->checking, 0);
	pthread_mutex_unlock(&v->conn);
	return r;
}

void
pw_view_touch(struct pw_view *v)
{
	atomic_store(&v->checked_ms, pw_mono_ms() - v->check_ms - 1);
}

uint64_t
pw_view_generation(struct pw_view *v)
{
	return atomic_load(&v->gen);
}

size_t
pw_view_pending(struct pw_view *v)
{
	return atomic_load(&v->pending);
}

/* -------------------------------------------------------------- flush */

struct batch {
	struct vdelta	*d[NSTRIPES];	/* each stripe's, moved out */
	size_t		 nd[NSTRIPES], n;
	struct vcursor	*cur;
	size_t		 ncur;
	struct vsess	*ses;
	size_t		 nses;
	int64_t		 hits, misses, window_reset, window_start;
};

/* Take what is pending out of the view, for one transaction. */
static void
batch_take(struct pw_view *v, struct batch *b)
{
	memset(b, 0, sizeof *b);
	/* Moved, not copied: 100,000 pending deltas are 10 MiB. */
	pthread_rwlock_rdlock(&v->lk);
	for (int k = 0; k < NSTRIPES; k++) {
		struct stripe	*s = &v->stripes[k];
		struct ventry	*e;

		pthread_mutex_lock(&s->mu);
		if (s->n > 0) {
			for (size_t i = 0; i < s->n; i++)
				if ((e = find(v->snap, s->d[i].id)) != NULL)
					e->dix = 0;
			b->d[k] = s->d;
			b->nd[k] = s->n;
			b->n += s->n;
			atomic_fetch_sub(&v->pending, s->n);
			s->d = NULL;
			s->n = s->cap = 0;
		}
		pthread_mutex_unlock(&s->mu);
	}
	pthread_rwlock_unlock(&v->lk);
	pthread_mutex_lock(&v->cur_mu);
	for (size_t i = 0; i < v->ncur; i++) {
		if (!v->cur[i].dirty)
			continue;
		b->cur = pw_xrealloc(b->cur, (b->ncur + 1) * sizeof *b->cur);
		b->cur[b->ncur].name = pw_xstrdup(v->cur[i].name);
		b->cur[b->ncur++].value = v->cur[i].value;
		v->cur[i].dirty = 0;
	}
	b->window_reset = v->window_reset;
	b->window_start = v->window_start;
	v->window_reset = 0;
	pthread_mutex_unlock(&v->cur_mu);
	pthread_mutex_lock(&v->ses_mu);
	for (size_t i = 0; i < v->capses; i++) {
		struct vsess *s = &v->ses[i];

		if (s->id == NULL || !s->dirty)
			continue;
		b->ses = pw_xrealloc(b->ses, (b->nses + 1) * sizeof *b->ses);
		b->ses[b->nses] = *s;
		b->ses[b->nses++].id = pw_xstrdup(s->id);
		s->dirty = 0;
	}
	pthread_mutex_unlock(&v->ses_mu);
	b->hits = atomic_exchange(&v->hits, 0);
	b->misses = atomic_exchange(&v->misses, 0);
}

/* The transaction failed: put it all back, under what came since. */
static void
batch_return(struct pw_view *v, struct batch *b)
{
	pthread_rwlock_rdlock(&v->lk);
	for (int k = 0; k < NSTRIPES; k++) {
		struct stripe *s = &v->stripes[k];

		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; i < b->nd[k]; i++) {
			struct ventry	*e = find(v->snap, b->d[k][i].id);
			struct vdelta	*d, tmp;

			if (e == NULL)
				continue;	/* gone from the file */
			d = stripe_get(v, s, e);
			tmp = b->d[k][i];
			delta_then(&tmp, d);
			*d = tmp;
		}
		pthread_mutex_unlock(&s->mu);
	}
	pthread_rwlock_unlock(&v->lk);
	pthread_mutex_lock(&v->cur_mu);
	for (size_t i = 0; i < b->ncur; i++)
		for (size_t k = 0; k < v->ncur; k++)
			if (strcmp(v->cur[k].name, b->cur[i].name) == 0)
				v->cur[k].dirty = 1;
	if (b->window_reset != 0 && v->window_reset == 0)
		v->window_reset = b->window_reset;
	pthread_mutex_unlock(&v->cur_mu);
	pthread_mutex_lock(&v->ses_mu);
	for (size_t i = 0; i < b->nses; i++) {
		struct vsess *s = ses_slot(v, b->ses[i].id);
		if (s->id != NULL)
			s->dirty = 1;
	}
	pthread_mutex_unlock(&v->ses_mu);
	atomic_fetch_add(&v->hits, b->hits);
	atomic_fetch_add(&v->misses, b->misses);
}

static void
batch_release(struct batch *b)
{
	for (size_t i = 0; i < b->ncur; i++)
		free(b->cur[i].name);
	for (size_t i = 0; i < b->nses; i++)
		free(b->ses[i].id);
	free(b->cur);
	free(b->ses);
	for (int k = 0; k < NSTRIPES; k++)
		free(b->d[k]);
}

static int
batch_write(struct pw_view *v, struct batch *b, int64_t now)
{
	struct pw_store	*st = v->ctx.store;
	struct pw_err	*err = &v->ctx.err;
	struct pw_stats	 s;
	int		 r;

	if ((r = pw_store_begin(st, err)) != 0)
		return r;
	if (b->window_reset != 0 &&
	    ((r = pw_store_window_reset(st, err)) != 0 ||
	    (r = pw_store_rotation_put(st, "window", b->window_start,
	    err)) != 0))
		goto fail;
	for (int k = 0; k < NSTRIPES; k++) {
		for (size_t i = 0; i < b->nd[k]; i++) {
			const struct vdelta *d = &b->d[k][i];

			r = pw_store_proxy_stats_get(st, d->id, &s, err);
			if (r == PW_ENOTFOUND)
				continue;	/* removed meanwhile */
			if (r != 0)
				goto fail;
			delta_apply(&s, d);
			if ((r = pw_store_proxy_stats_put(st, d->id, &s,
			    err)) != 0)
				goto fail;
		}
	}
	for (size_t i = 0; i < b->ncur; i++)
		if ((r = pw_store_rotation_put(st, b->cur[i].name,
		    b->cur[i].value, err)) != 0)
			goto fail;
	if (b->nses > 0 && (r = pw_store_session_prune(st, now, NULL,
	    err)) != 0)
		goto fail;
	for (size_t i = 0; i < b->nses; i++) {
		struct pw_session ss = { b->ses[i].id, b->ses[i].proxy_id,
		    b->ses[i].created_at, b->ses[i].last_used,
		    b->ses[i].expires_at, b->ses[i].requests,
		    b->ses[i].failovers };
		if (ss.expires_at > now &&
		    (r = pw_store_session_set(st, &ss, err)) != 0)
			goto fail;
	}
	if ((b->hits > 0 && (r = pw_store_stat_add(st, "select.hits",
	    b->hits, err)) != 0) || (b->misses > 0 &&
	    (r = pw_store_stat_add(st, "select.misses", b->misses,
	    err)) != 0))
		goto fail;
	if ((r = pw_store_commit(st, err)) != 0)
		return r;
	/*
	 * The generation this flush made is the view's own, unless another
	 * connection moved it first: that change is yet to be loaded.
	 */
	if (pw_store_bumped(st) == v->pool_gen + 1)
		v->pool_gen++;
	return 0;
fail:
	pw_store_rollback(st);
	return r;
}

int
pw_view_flush(struct pw_view *v, struct pw_err *err)
{
	struct batch	b;
	int		r = 0;

	pthread_mutex_lock(&v->conn);
	pw_err_clear(&v->ctx.err);
	batch_take(v, &b);
	if (b.n > 0 || b.ncur > 0 || b.nses > 0 || b.hits > 0 ||
	    b.misses > 0 || b.window_reset != 0) {
		if ((r = batch_write(v, &b, pw_now())) != 0) {
			batch_return(v, &b);
			*err = v->ctx.err;
		}
	}
	batch_release(&b);
	pthread_mutex_unlock(&v->conn);
	return r;
}

/* ---------------------------------------------------------- selection */

struct vsel {
	struct pw_view		*v;
	struct snap		*s;
	const struct pw_sel	*sel;
};

static int
text_eq(const char *want, const char *have)
{
	return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

/* The same in any ASCII case, as SQLite's NOCASE (regions). */
static int
text_caseeq(const char *want, const char *have)
{
	return want == NULL || (have != NULL && strcasecmp(want, have) == 0);
}

/* Whether e matches f (eligibility aside). */
static int
matches(const struct ventry *e, const struct pw_stats *st,
    const struct pw_filter *f)
{
	if (f == NULL)
		return 1;
	if ((f->status >= 0 && e->status != f->status) ||
	    (f->scheme >= 0 && e->scheme != f->scheme) ||
	    !text_eq(f->source, e->source) ||
	    !text_eq(f->country, e->country[0] ? e->country : NULL) ||
	    !text_caseeq(f->region, e->region) ||
	    !text_eq(f->anonymity, e->anonymity))
		return 0;
	if (f->unmeasured && st->latency_ms >= 0)
		return 0;
	if (f->max_latency_ms > 0 && !(st->latency_ms >= 0 &&
	    st->latency_ms <= f->max_latency_ms))
		return 0;
	return 1;
}

/* What pw_store's ELIGIBLE and sel_prepare say, over one entry. */
static int
eligible(const struct ventry *e, const struct pw_stats *st,
    const struct pw_sel *sel)
{
	if (e->status == PW_UNHEALTHY || e->status == PW_PENDING ||
	    (st->cooldown_until != 0 && st->cooldown_until > sel->now) ||
	    (e->expires_at != 0 && e->expires_at <= sel->now))
		return 0;
	if (sel->not_degraded && e->status == PW_DEGRADED)
		return 0;
	for (size_t i = 0; i < sel->nex; i++)
		if (sel->ex[i] == e->id)
			return 0;
	return matches(e, st, sel->f);
}

static void
candidate(const struct ventry *e, const struct pw_stats *st,
    struct pw_candidate *c)
{
	c->id = e->id;
	c->weight = e->weight;
	c->latency_ms = st->latency_ms;
	c->started = st->started;
	c->succeeded = st->succeeded;
	c->failed = st->failed;
	c->window_count = st->window_count;
}

static int
entry_ok(struct vsel *vs, const struct ventry *e, struct pw_candidate *c)
{
	struct pw_stats	st;

	stats_of(vs->v, e, &st);
	if (!eligible(e, &st, vs->sel))
		return 0;
	if (c != NULL)
		candidate(e, &st, c);
	return 1;
}

static int
probe(void *arg, int64_t id, struct pw_candidate *c, struct pw_err *err)
{
	struct vsel	*vs = arg;
	struct ventry	*e = find(vs->s, id);

	(void)err;
	return e != NULL && entry_ok(vs, e, c);
}

/*
 * The cursor named (cur_mu held); the file's were read with the
 * snapshot, so a name not there starts at 0, as in pool.c. No lock order
 * allows the connection here: a reload holds it while it waits for lk.
 */
static struct vcursor *
cursor(struct pw_view *v, const char *name)
{
	for (size_t i = 0; i < v->ncur; i++)
		if (strcmp(v->cur[i].name, name) == 0)
			return &v->cur[i];
	v->cur = pw_xrealloc(v->cur, (v->ncur + 1) * sizeof *v->cur);
	v->cur[v->ncur].name = pw_xstrdup(name);
	v->cur[v->ncur].value = 0;
	v->cur[v->ncur].dirty = 0;
	return &v->cur[v->ncur++];
}

static void
cursor_put(struct vcursor *c, int64_t id)
{
	if (c->value != id) {
		c->value = id;
		c->dirty = 1;
	}
}

/* Any strategy over every eligible candidate (pool.c's choose_scan). */
static int
choose_scan(struct pw_ctx *ctx, struct vsel *vs, const struct pw_strategy *s,
    const struct pw_strategy *fallback, int64_t *id)
{
	struct pw_candidate	*c;
	struct pw_pick_env	 env;
	struct vcursor		*cur;
	size_t			 n = 0;
	char			*cname;
	long			 i;
	int			 r = 0;

	c = pw_xmalloc((vs->s->n ? vs->s->n : 1) * sizeof *c);
	for (size_t k = 0; k < vs->s->n; k++)
		n += entry_ok(vs, &vs->s->e[k], &c[n]);
	if (n == 0) {
		free(c);
		return PW_ENOPROXY;
	}
	pw_pool_env_init(ctx, &env);
	cname = pw_pool_cursor_name(s, vs->sel->f);
	pthread_mutex_lock(&vs->v->cur_mu);
	cur = cursor(vs->v, cname);
	env.cursor = cur->value;
	if ((i = pw_strategy_pick(s, fallback, c, n, &env, &ctx->err)) < 0) {
		r = (int)i;
		goto out;
	}
	if (env.note != NULL)
		pw_log(PW_LOG_INFO, "%s", env.note);
	*id = c[i].id;
	cursor_put(cur, *id);
out:
	pthread_mutex_unlock(&vs->v->cur_mu);
	free(cname);
	free(c);
	return r;
}

static int
choose_round_robin(struct pw_ctx *ctx, struct vsel *vs,
    const struct pw_strategy *s, int64_t *id)
{
	struct vcursor	*cur;
	char		*cname = pw_pool_cursor_name(s, vs->sel->f);
	size_t		 n = vs->s->n, start, k;
	int		 r = PW_ENOPROXY;

	(void)ctx;
	pthread_mutex_lock(&vs->v->cur_mu);
	cur = cursor(vs->v, cname);
	start = after(vs->s, cur->value);
	for (k = 0; k < n; k++) {
		struct ventry *e = &vs->s->e[(start + k) % n];
		if (entry_ok(vs, e, NULL)) {
			*id = e->id;
			cursor_put(cur, e->id);
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&vs->v->cur_mu);
	free(cname);
	return r;
}

/* Fewest started in the window, the lowest id on a tie. */
static int
choose_least_used(struct vsel *vs, int64_t *id)
{
	struct pw_candidate	c;
	int64_t			best = INT64_MAX;

	for (size_t k = 0; k < vs->s->n; k++) {
		if (entry_ok(vs, &vs->s->e[k], &c) && c.window_count < best) {
			best = c.window_count;
			*id = c.id;
		}
	}
	return best == INT64_MAX ? PW_ENOPROXY : 0;
}

/* pool.c's choose(), over the view. */
static int
choose(struct pw_ctx *ctx, struct vsel *vs, const struct pw_strategy *s,
    const struct pw_strategy *fallback, int64_t *id)
{
	struct pw_bounds	b;
	struct pw_pick_env	env;
	int			r;

	if (s != pw_strategy_builtin(s->name))
		return choose_scan(ctx, vs, s, fallback, id);
	if (strcmp(s->name, "round-robin") == 0)
		return choose_round_robin(ctx, vs, s, id);
	if (strcmp(s->name, "least-used") == 0)
		return choose_least_used(vs, id);
	if (strcmp(s->name, "performance") == 0 && fallback != NULL &&
	    atomic_load(&vs->s->unmeasured) > 0) {
		/* Proxies never measured go first, chosen by the fallback. */
		struct pw_filter	f = *vs->sel->f;
		struct pw_sel		sub = *vs->sel;
		struct vsel		vsub = *vs;

		f.unmeasured = 1;
		sub.f = &f;
		vsub.sel = &sub;
		for (size_t k = 0; k < vs->s->n; k++) {
			if (entry_ok(&vsub, &vs->s->e[k], NULL)) {
				pw_log(PW_LOG_INFO, "performance: trying a "
				    "proxy without latency data");
				return choose(ctx, &vsub, fallback, NULL, id);
			}
		}
	}
	if (vs->s->n == 0)
		return PW_ENOPROXY;
	b.min_id = vs->s->e[0].id;
	b.max_id = vs->s->e[vs->s->n - 1].id;
	b.max_weight = vs->s->max_weight;
	b.min_latency_ms = atomic_load(&vs->s->min_latency);
	pw_pool_env_init(ctx, &env);
	r = pw_strategy_sample(s, &b, probe, vs, &env, SAMPLE_TRIES, id,
	    &ctx->err);
	if (r != 0)
		return r < 0 ? r : 0;
	return choose_scan(ctx, vs, s, fallback, id);
}

static int
choose_ranked(struct pw_ctx *ctx, struct vsel *vs,
    const struct pw_strategy *s, const struct pw_strategy *fallback,
    struct pw_sel *sel, int64_t *id)
{
	int	r;

	if (sel->f->status != PW_DEGRADED) {
		sel->not_degraded = 1;
		r = choose(ctx, vs, s, fallback, id);
		sel->not_degraded = 0;
		if (r != PW_ENOPROXY)
			return r;
	}
	return choose(ctx, vs, s, fallback, id);
}

/* The least-used window (pool.c's window_check); lk is read-held. */
static void
window_check(struct pw_ctx *ctx, struct pw_view *v, int64_t now)
{
	int64_t	len = pw_config_int(ctx, "strategy.window"), ws;

	pthread_mutex_lock(&v->cur_mu);
	ws = v->window_start;
	pthread_mutex_unlock(&v->cur_mu);
	if (ws != 0 && now >= ws && now - ws < len)
		return;
	/* Every count back to 0: nobody may be counting meanwhile. */
	pthread_rwlock_unlock(&v->lk);
	pthread_rwlock_wrlock(&v->lk);
	pthread_mutex_lock(&v->cur_mu);
	ws = v->window_start;
	if (!(ws != 0 && now >= ws && now - ws < len)) {
		for (size_t i = 0; i < v->snap->n; i++)
			v->snap->e[i].st.window_count = 0;
		for (int k = 0; k < NSTRIPES; k++) {
			struct stripe *sp = &v->stripes[k];

			pthread_mutex_lock(&sp->mu);
			for (size_t i = 0; i < sp->n; i++)
				sp->d[i].window = 0;
			pthread_mutex_unlock(&sp->mu);
		}
		v->window_start = now;
		v->window_reset = now;
	}
	pthread_mutex_unlock(&v->cur_mu);
	pthread_rwlock_unlock(&v->lk);
	pthread_rwlock_rdlock(&v->lk);
}

/* Counts for the message of a miss (pw_store_ineligible's). */
static void
ineligible(struct vsel *vs, const struct pw_filter *f, int64_t now,
    int64_t c[6])
{
	struct pw_stats	st;

	memset(c, 0, 6 * sizeof *c);
	c[0] = (int64_t)vs->s->n;
	for (size_t k = 0; k < vs->s->n; k++) {
		const struct ventry *e = &vs->s->e[k];

		stats_of(vs->v, e, &st);
		if (!matches(e, &st, f))
			continue;
		c[4]++;
		c[1] += e->status == PW_UNHEALTHY;
		c[2] += e->status != PW_UNHEALTHY && e->status != PW_PENDING &&
		    st.cooldown_until > now;
		c[3] += e->expires_at != 0 && e->expires_at <= now;
		c[5] += e->status == PW_PENDING;
	}
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? pw_xstrdup(s) : NULL;
}

/* A proxy's counters as the view holds them (updated_at aside). */
static void
stats_put(const struct pw_stats *st, struct pw_proxy *p)
{
	p->started = st->started;
	p->completed = st->completed;
	p->succeeded = st->succeeded;
	p->failed = st->failed;
	p->consec_fail = st->consec_fail;
	p->latency_ms = st->latency_ms;
	p->cooldown_until = st->cooldown_until;
	p->last_used = st->last_used;
	p->window_count = st->window_count;
}

/* A proxy of the caller's from e; credentials unsealed when asked. */
static int
fill(struct pw_ctx *ctx, struct pw_view *v, const struct ventry *e,
    int secrets, struct pw_proxy *p)
{
	struct pw_stats	st;
	int		r;

	memset(p, 0, sizeof *p);
	p->id = e->id;
	p->addr.scheme = e->scheme;
	p->addr.host = pw_xstrdup(e->host);
	p->addr.port = e->port;
	p->has_creds = e->user != NULL;
	p->source = dup_or_null(e->source);
	p->country = dup_or_null(e->country[0] ? e->country : NULL);
	p->region = dup_or_null(e->region);
	p->anonymity = dup_or_null(e->anonymity);
	p->status = e->status;
	p->weight = e->weight;
	p->added_at = e->added_at;
	p->expires_at = e->expires_at;
	p->last_checked = e->last_checked;
	stats_of(v, e, &st);
	stats_put(&st, p);
	p->updated_at = st.updated_at;
	if (!secrets || e->user == NULL)
		return 0;
	if ((r = pw_ctx_key(ctx, 0)) != 0 && r != PW_ESTATE)
		goto fail;
	if (ctx->key == NULL || pw_crypto_unseal(ctx->key, e->user,
	    e->user_len, &p->addr.user, &ctx->err) != 0 || (e->pass != NULL &&
	    pw_crypto_unseal(ctx->key, e->pass, e->pass_len, &p->addr.pass,
	    &ctx->err) != 0)) {
		/* As pool.c's each_row: reported, and used without. */
		pw_log(PW_LOG_WARN, "proxy %lld: %s", (long long)e->id,
		    ctx->err.msg);
		pw_secret_free(p->addr.user);
		p->addr.user = NULL;
	}
	return 0;
fail:
	pw_proxy_release(p);
	return r;
}

/* Sticky: the session's proxy when it is still eligible (ses_mu held). */
static int64_t
session_proxy(struct vsel *vs, const char *sid)
{
	struct vsess	*s = ses_slot(vs->v, sid);
	struct ventry	*e;

	if (s->id == NULL || s->expires_at <= vs->sel->now)
		return 0;
	if ((e = find(vs->s, s->proxy_id)) != NULL && entry_ok(vs, e, NULL))
		return s->proxy_id;
	pw_log(PW_LOG_INFO, "session %s: proxy %lld is no longer eligible, "
	    "choosing another", sid, (long long)s->proxy_id);
	return 0;
}

/* S_SESSION_PUT, in memory (ses_mu held). */
static void
session_put(struct pw_view *v, const char *sid, int64_t id, int64_t now,
    int64_t expires_at)
{
	struct vsess	*s = ses_slot(v, sid);

	/* One that expired is gone from the file: a new one, as there. */
	if (s->id == NULL || s->expires_at <= now) {
		if (s->id == NULL) {
			s->id = pw_xstrdup(sid);
			v->nses++;
		}
		s->created_at = now;
		s->requests = 1;
		s->failovers = 0;
	} else {
		s->failovers += s->proxy_id != id;
		s->requests++;
	}
	s->proxy_id = id;
	s->last_used = now;
	s->expires_at = expires_at;
	s->dirty = 1;
}

int
pw_view_next(struct pw_ctx *ctx, const struct pw_pick *pk,
    struct pw_proxy *out)
{
	struct pw_view			*v = ctx->view;
	const struct pw_strategy	*s, *fallback;
	struct pw_filter		 f = pk->filter;
	struct pw_sel			 sel = { &f, pk->exclude, pk->nexclude,
					    pw_now(), 0 };
	struct vsel			 vs;
	struct ventry			*e;
	struct stripe			*sp;
	struct vdelta			*d;
	int64_t				 id = 0, c[6];
	int				 r, reused = 0;

	if ((r = pw_pool_resolve_pick(ctx, pk, &s, &fallback)) != 0)
		return r;
	if (pk->secrets && (r = pw_crypto_key_check(pw_config_secret_hex(),
	    &ctx->err)) != 0)
		return r;
	pthread_rwlock_rdlock(&v->lk);
	window_check(ctx, v, sel.now);
	vs.v = v;
	vs.s = v->snap;
	vs.sel = &sel;
	pw_err_clear(&ctx->err);
	if (pk->session != NULL) {
		pthread_mutex_lock(&v->ses_mu);
		id = session_proxy(&vs, pk->session);
		pthread_mutex_unlock(&v->ses_mu);
	}
	reused = id != 0;
	if (id == 0 && (r = choose_ranked(ctx, &vs, s, fallback, &sel,
	    &id)) == PW_ENOPROXY && (f.country || f.region) &&
	    pw_config_int(ctx, "geo.fallback")) {
		pw_log(PW_LOG_INFO, "geo: no eligible proxy in %s%s%s, "
		    "falling back to any", f.country ? f.country : "",
		    f.country && f.region ? "/" : "",
		    f.region ? f.region : "");
		f.country = f.region = NULL;
		r = choose_ranked(ctx, &vs, s, fallback, &sel, &id);
	}
	if (r == PW_ENOPROXY) {
		if (ctx->err.msg[0] == '\0') {
			ineligible(&vs, &f, sel.now, c);
			pw_pool_explain(ctx, &sel, c);
		}
		atomic_fetch_add(&v->misses, 1);
		pthread_rwlock_unlock(&v->lk);
		return PW_ENOPROXY;
	}
	if (r != 0 || (e = find(vs.s, id)) == NULL) {
		pthread_rwlock_unlock(&v->lk);
		return r != 0 ? r : pw_failf(&ctx->err, PW_EFAIL, "proxy "
		    "%lld: not in the view", (long long)id);
	}
	/* Started: in the view at once, in the file at the next flush. */
	sp = stripe_of(v, id);
	pthread_mutex_lock(&sp->mu);
	e->st.started++;
	e->st.window_count++;
	e->st.last_used = sel.now;
	d = stripe_get(v, sp, e);
	d->started++;
	d->window++;
	d->last_used = sel.now;
	pthread_mutex_unlock(&sp->mu);
	atomic_fetch_add(&v->hits, 1);
	if (pk->session != NULL) {
		pthread_mutex_lock(&v->ses_mu);
		session_put(v, pk->session, id, sel.now, sel.now +
		    pw_config_int(ctx, "session.ttl"));
		pthread_mutex_unlock(&v->ses_mu);
	}
	r = fill(ctx, v, e, pk->secrets, out);
	pthread_rwlock_unlock(&v->lk);
	if (r != 0)
		return r;
	if (reused)
		pw_log(PW_LOG_INFO, "session %s: proxy %lld", pk->session,
		    (long long)id);
	else
		pw_log(PW_LOG_INFO, "%s: proxy %lld", s->name, (long long)id);
	return 0;
}

int
pw_view_report(struct pw_ctx *ctx, int64_t id, int outcome,
    double latency_ms)
{
	struct pw_view	*v = ctx->view;
	struct stripe	*sp = stripe_of(v, id);
	struct ventry	*e;
	struct vdelta	 ev, *d;
	int64_t		 cool;

	delta_event(&ev, id, outcome, latency_ms,
	    pw_config_double(ctx, "strategy.alpha"),
	    pw_config_int(ctx, "pool.failure_threshold"),
	    pw_config_int(ctx, "pool.cooldown"), pw_now());
	pthread_rwlock_rdlock(&v->lk);
	/*
	 * A proxy removed meanwhile (the view reloaded since it was chosen):
	 * gone from the file, its outcome with it.
	 */
	if ((e = find(v->snap, id)) == NULL) {
		pthread_rwlock_unlock(&v->lk);
		return 0;
	}
	pthread_mutex_lock(&sp->mu);
	cool = e->st.cooldown_until;
	if (e->st.latency_ms < 0 && ev.nlat > 0)
		atomic_fetch_sub(&v->snap->unmeasured, 1);
	delta_apply(&e->st, &ev);
	if (e->st.cooldown_until != cool)
		atomic_fetch_add(&v->cool_changes, 1);
	if (e->st.latency_ms >= 0)
		min_latency_lower(v->snap, e->st.latency_ms);
	d = stripe_get(v, sp, e);
	delta_then(d, &ev);
	pthread_mutex_unlock(&sp->mu);
	pthread_rwlock_unlock(&v->lk);
	return 0;
}

void
pw_view_overlay(struct pw_view *v, struct pw_proxy *p)
{
	struct ventry	*e;
	struct pw_stats	 st;

	pthread_rwlock_rdlock(&v->lk);
	if ((e = find(v->snap, p->id)) != NULL) {
		stats_of(v, e, &st);
		stats_put(&st, p);
		if (st.updated_at > p->updated_at)
			p->updated_at = st.updated_at;
	}
	pthread_rwlock_unlock(&v->lk);
}

void
pw_view_counts(struct pw_view *v, int64_t now, struct pw_view_counts *out)
{
	struct pw_view_counts	c;
	struct pw_stats		st;
	uint64_t		gen, cool;

	pthread_rwlock_rdlock(&v->lk);
	gen = atomic_load(&v->gen);
	cool = atomic_load(&v->cool_changes);
	pthread_mutex_lock(&v->counts_mu);
	if (v->counts_now == now && v->counts_gen == gen &&
	    v->counts_cool == cool) {
		*out = v->counts;
		pthread_mutex_unlock(&v->counts_mu);
		pthread_rwlock_unlock(&v->lk);
		return;
	}
	pthread_mutex_unlock(&v->counts_mu);
	memset(&c, 0, sizeof c);
	for (size_t i = 0; i < v->snap->n; i++) {
		const struct ventry	*e = &v->snap->e[i];
		int			 cooling, expired;

		stats_of(v, e, &st);
		cooling = st.cooldown_until > now;
		expired = e->expires_at != 0 && e->expires_at <= now;
		c.total++;
		if (e->status >= 0 && e->status < PW_STATUS_COUNT)
			c.by_status[e->status]++;
		c.cooling += cooling;
		c.expired += expired;
		if (e->status != PW_UNHEALTHY && !cooling && !expired)
			c.usable++;
	}
	pthread_mutex_lock(&v->counts_mu);
	v->counts = c;
	v->counts_now = now;
	v->counts_gen = gen;
	v->counts_cool = cool;
	pthread_mutex_unlock(&v->counts_mu);
	pthread_rwlock_unlock(&v->lk);
	*out = c;
}
