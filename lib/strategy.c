/*
 * strategy.c -- the selection strategies, their registry, plugin loading
 * and the random number generator they draw from.
 *
 * A strategy only chooses: pool.c has already removed what may not be
 * used and stores what was chosen. Each select function takes the
 * eligible candidates in id order and returns an index.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ------------------------------------------------------------------ rng */

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
splitmix(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
pw_rng_seed(struct pw_rng *r, uint64_t seed)
{
	struct timespec	ts;

	if (seed == 0 && getentropy(&seed, sizeof seed) != 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
		    (uint64_t)getpid() << 40;
	}
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&seed);
}

uint64_t
pw_rng_next(void *rng)
{
	uint64_t	*s = ((struct pw_rng *)rng)->s;
	uint64_t	 out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* A uniform index below n, without modulo bias (Lemire's method). */
static size_t
below(struct pw_pick_env *env, size_t n)
{
	unsigned __int128	m;
	uint64_t		lo, t;

	m = (unsigned __int128)env->random(env->rng) * n;
	lo = (uint64_t)m;
	if (lo < n) {
		t = -(uint64_t)n % n;
		while (lo < t) {
			m = (unsigned __int128)env->random(env->rng) * n;
			lo = (uint64_t)m;
		}
	}
	return (size_t)(m >> 64);
}

/* A uniform real in [0, 1). */
static double
unit(struct pw_pick_env *env)
{
	return (double)(env->random(env->rng) >> 11) * 0x1.0p-53;
}

/* ----------------------------------------------------------- built-ins */

/* The first candidate after the cursor, wrapping: ids are in order. */
static long
select_round_robin(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *env)
{
	size_t	lo = 0, hi = n;

	if (n == 0)
		return -1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c[mid].id <= env->cursor)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n ? (long)lo : 0;
}

static long
select_random(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *env)
{
	(void)c;
	return n == 0 ? -1 : (long)below(env, n);
}

/*
 * Draw an index with probability w(i) / sum(w); w <= 0 is never drawn.
 * Returns -1 when no weight is usable.
 */
static long
draw_weighted(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *env, double (*w)(const struct pw_candidate *))
{
	double	total = 0, x, v;
	long	last = -1;

	for (size_t i = 0; i < n; i++)
		if ((v = w(&c[i])) > 0 && isfinite(v))
			total += v;
	if (!(total > 0) || !isfinite(total))
		return -1;
	x = unit(env) * total;
	for (size_t i = 0; i < n; i++) {
		if (!((v = w(&c[i])) > 0) || !isfinite(v))
			continue;
		last = (long)i;
		if (x < v)
			return (long)i;
		x -= v;
	}
	return last;	/* rounding left x just above the last weight */
}

/* Explicit weight, else the success rate (Laplace-smoothed). */
static double
weight_of(const struct pw_candidate *c)
{
	if (c->weight >= 0)
		return c->weight;
	return (double)(c->succeeded + 1) / (double)(c->succeeded +
	    c->failed + 2);
}

static long
select_weighted(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *env)
{
	long	i;

	if (n == 0)
		return -1;
	if ((i = draw_weighted(c, n, env, weight_of)) >= 0)
		return i;
	env->note = "weighted: no usable weight, picking uniformly";
	return (long)below(env, n);
}

/* Fewest started in this window; the lowest id breaks a tie. */
static long
select_least_used(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *env)
{
	size_t	best = 0;

	(void)env;
	if (n == 0)
		return -1;
	for (size_t i = 1; i < n; i++)
		if (c[i].window_count < c[best].window_count)
			best = i;
	return (long)best;
}

static double
inverse_latency(const struct pw_candidate *c)
{
	return c->latency_ms < 0 ? 0 : 1.0 / (c->latency_ms > 0.001 ?
	    c->latency_ms : 0.001);
}

/* Inverse EMA latency; pw_strategy_pick deals with missing data. */
static long
select_performance(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *env)
{
	return draw_weighted(c, n, env, inverse_latency);
}

static const struct pw_strategy builtins[] = {
	{ PW_STRATEGY_ABI, "round-robin",
	  "each eligible proxy in turn, across processes",
	  select_round_robin },
	{ PW_STRATEGY_ABI, "random", "uniformly at random", select_random },
	{ PW_STRATEGY_ABI, "weighted",
	  "by weight, else by success rate", select_weighted },
	{ PW_STRATEGY_ABI, "least-used",
	  "fewest requests started in the current window",
	  select_least_used },
	{ PW_STRATEGY_ABI, "performance",
	  "by inverse latency (EMA)", select_performance },
};

#define NBUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

const struct pw_strategy *
pw_strategy_builtin(const char *name)
{
	for (int i = 0; i < NBUILTINS; i++)
		if (strcmp(builtins[i].name, name) == 0)
			return &builtins[i];
	return NULL;
}

const char *
pw_strategy_names(void)
{
	return "round-robin random weighted least-used performance sticky geo";
}

/* -------------------------------------------------------------- plugins */

static int
name_ok(const char *s)
{
	size_t	n = 0;

	for (; s[n] != '\0'; n++)
		if (!islower((unsigned char)s[n]) &&
		    !isdigit((unsigned char)s[n]) && s[n] != '-' &&
		    s[n] != '_')
			return 0;
	return n > 0 && n <= 32;
}

int
pw_strategy_load(const char *path, const struct pw_strategy **out,
    struct pw_err *err)
{
	pw_strategy_plugin_fn	*fn;
	const struct pw_strategy *s;
	void			*h;
	const char		*e;

	if (strchr(path, '/') == NULL)
		return pw_failf(err, PW_EUSAGE, "%s: plugin path must contain "
		    "a '/' (say ./%s)", path, path);
	if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		return pw_failf(err, PW_EUSAGE, "%s: cannot load plugin: %s",
		    path, e ? e : "unknown error");
	}
	*(void **)&fn = dlsym(h, "pw_strategy_plugin");
	if (fn == NULL) {
		dlclose(h);
		return pw_failf(err, PW_EUSAGE, "%s: not a pw strategy plugin "
		    "(no pw_strategy_plugin symbol)", path);
	}
	s = fn();
	if (s == NULL || s->abi != PW_STRATEGY_ABI) {
		int abi = s ? s->abi : 0;
		dlclose(h);
		return pw_failf(err, PW_EUSAGE, "%s: plugin ABI version %d, "
		    "this pw needs %d", path, abi, PW_STRATEGY_ABI);
	}
	if (s->name == NULL || !name_ok(s->name) || s->select == NULL) {
		dlclose(h);
		return pw_failf(err, PW_EUSAGE, "%s: plugin has no valid name "
		    "or select function", path);
	}
	if (pw_strategy_builtin(s->name) != NULL ||
	    strcmp(s->name, "sticky") == 0 || strcmp(s->name, "geo") == 0) {
		dlclose(h);
		return pw_failf(err, PW_EUSAGE, "%s: plugin name '%s' is a "
		    "built-in strategy's", path, s->name);
	}
	*out = s;	/* the handle stays open for the life of the process */
	return 0;
}

/* ------------------------------------------------------------- picking */

static int
has_latency(const struct pw_candidate *c)
{
	return c->latency_ms >= 0;
}

long
pw_strategy_pick(const struct pw_strategy *s,
    const struct pw_strategy *fallback, const struct pw_candidate *c,
    size_t n, struct pw_pick_env *env, struct pw_err *err)
{
	struct pw_candidate	*sub;
	size_t			 nsub = 0, *map;
	long			 i;

	if (n == 0)
		return pw_failf(err, PW_ENOPROXY, "no eligible proxy");
	if (s->select != select_performance) {
		i = s->select(c, n, env);
		goto done;
	}

	/*
	 * Performance: a proxy never measured has no place in a ranking by
	 * latency. The fallback strategy tries those first, so that each
	 * gets measured; without one they are left out.
	 */
	for (size_t k = 0; k < n; k++)
		nsub += !has_latency(&c[k]);
	if (nsub == 0 || (fallback == NULL && nsub < n)) {
		i = select_performance(c, n, env);
		goto done;
	}
	if (fallback == NULL)
		return pw_failf(err, PW_ENOPROXY, "performance: no eligible "
		    "proxy has latency data yet (set strategy.fallback, or "
		    "report outcomes with latency)");
	sub = pw_xmalloc(nsub * sizeof *sub);
	map = pw_xmalloc(nsub * sizeof *map);
	nsub = 0;
	for (size_t k = 0; k < n; k++) {
		if (!has_latency(&c[k])) {
			map[nsub] = k;
			sub[nsub++] = c[k];
		}
	}
	env->note = "performance: trying a proxy without latency data";
	i = fallback->select(sub, nsub, env);
	i = i >= 0 && (size_t)i < nsub ? (long)map[i] : -1;
	free(sub);
	free(map);
done:
	if (i < 0)
		return pw_failf(err, PW_ENOPROXY, "%s: declined every one of "
		    "%zu eligible proxies", s->name, n);
	if ((size_t)i >= n)
		return pw_failf(err, PW_EFAIL, "%s: chose index %ld of %zu "
		    "candidates", s->name, i, n);
	return i;
}

/*
 * Rejection sampling, for a large pool without reading all of it: draw
 * an id uniformly from the pool's id range, keep it when it is eligible
 * (probe says so) with probability w / wmax. Each kept id has exactly the
 * probability the strategy's select gives it over the whole array; after
 * `tries` misses the caller falls back to select on every candidate,
 * which keeps the distribution exact.
 */
int
pw_strategy_sample(const struct pw_strategy *s, const struct pw_bounds *b,
    pw_probe_fn *probe, void *arg, struct pw_pick_env *env, int tries,
    int64_t *id, struct pw_err *err)
{
	double			(*w)(const struct pw_candidate *);
	double			  wmax, v;
	struct pw_candidate	  c;
	uint64_t		  span;
	int64_t			  x;
	int			  r;

	if (b->max_id < b->min_id || b->min_id <= 0)
		return 0;
	if (s->select == select_random) {
		w = NULL;
		wmax = 1;
	} else if (s->select == select_weighted) {
		w = weight_of;
		wmax = b->max_weight > 1 ? b->max_weight : 1;
	} else if (s->select == select_performance) {
		if (b->min_latency_ms < 0)
			return 0;
		w = inverse_latency;
		wmax = inverse_latency(&(struct pw_candidate){
		    .latency_ms = b->min_latency_ms });
	} else
		return 0;
	span = (uint64_t)(b->max_id - b->min_id) + 1;
	for (int t = 0; t < tries; t++) {
		x = b->min_id + (int64_t)below(env, span);
		if ((r = probe(arg, x, &c, err)) < 0)
			return r;
		if (r == 0)
			continue;
		if (w != NULL) {
			v = w(&c);
			if (!(v > 0) || !isfinite(v) || unit(env) * wmax >= v)
				continue;
		}
		*id = x;
		return 1;
	}
	return 0;
}
