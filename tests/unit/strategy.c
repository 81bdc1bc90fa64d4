/*
 * strategy.c -- unit tests for selection: the built-in strategies of
 * lib/strategy.c on in-memory candidates with a seeded generator, the
 * distributions issue 3 promises (each checker shown to reject a biased
 * selector), the rejection sampler, and pw_pool_next, pw_pool_report and
 * sticky sessions on a real state file: persisted cursors, eligibility,
 * exclusions, failover, geo filters and fallback, least-used windows.
 *
 * The clock: pw_now reads PW_NOW once per process. Tests that move time
 * run each step in a child process forked from a parent that has not
 * read the clock yet, so they come first, in a group of their own.
 */
#include <math.h>
#include <sys/wait.h>

#include "unit.h"

#define SEED	0x5eed5eedULL
#define T0	1700000000

/* ------------------------------------------------------------- helpers */

static void
env_seed(struct pw_pick_env *env, struct pw_rng *rng, uint64_t seed)
{
	pw_rng_seed(rng, seed);
	memset(env, 0, sizeof *env);
	env->random = pw_rng_next;
	env->rng = rng;
}

/* n candidates with ids 1..n, no weight, no latency, nothing counted. */
static struct pw_candidate *
cands(size_t n)
{
	struct pw_candidate	*c = pw_xcalloc(n, sizeof *c);

	for (size_t i = 0; i < n; i++) {
		c[i].id = (int64_t)i + 1;
		c[i].weight = -1;
		c[i].latency_ms = -1;
	}
	return c;
}

/* One pick that must succeed; the cursor follows it like pool.c does. */
static long
pick1(const struct pw_strategy *s, const struct pw_strategy *fb,
    const struct pw_candidate *c, size_t n, struct pw_pick_env *env)
{
	struct pw_err	err;
	long		i;

	memset(&err, 0, sizeof err);
	i = pw_strategy_pick(s, fb, c, n, env, &err);
	if (i < 0 || (size_t)i >= n)
		fail_msg("%s: pick returned %ld of %zu: %s", s->name, i, n,
		    err.msg);
	env->cursor = c[i].id;
	return i;
}

/* k picks with s from seed; counts[i] gets how often index i came. */
static void
tally(const struct pw_strategy *s, const struct pw_strategy *fb,
    const struct pw_candidate *c, size_t n, long k, uint64_t seed,
    long *counts)
{
	struct pw_rng		rng;
	struct pw_pick_env	env;

	env_seed(&env, &rng, seed);
	memset(counts, 0, n * sizeof *counts);
	for (long j = 0; j < k; j++)
		counts[pick1(s, fb, c, n, &env)]++;
}

/*
 * The checkers. Each is also run on a selector known to be wrong, to
 * show that it can fail.
 */

/*
 * Largest deviation of counts[i] from its share k * p[i], relative to
 * that share; a count where p[i] is 0 is an infinite deviation.
 */
static double
max_dev(const long *counts, const double *p, size_t n, long k)
{
	double	worst = 0, e, d;

	for (size_t i = 0; i < n; i++) {
		e = p[i] * (double)k;
		if (e == 0) {
			if (counts[i] != 0)
				return INFINITY;
			continue;
		}
		d = fabs((double)counts[i] - e) / e;
		if (d > worst)
			worst = d;
	}
	return worst;
}

/* Each count within +-tol of its share, and none where p is 0. */
static int
proportional(const long *counts, const double *p, size_t n, long k,
    double tol)
{
	return max_dev(counts, p, n, k) <= tol;
}

static int
uniform(const long *counts, size_t n, long k, double tol)
{
	double	*p = pw_xcalloc(n, sizeof *p);
	int	 ok;

	for (size_t i = 0; i < n; i++)
		p[i] = 1.0 / (double)n;
	ok = proportional(counts, p, n, k, tol);
	free(p);
	return ok;
}

/* (max - min) / mean of counts. */
static double
spread(const long *counts, size_t n)
{
	long	lo = counts[0], hi = counts[0], sum = 0;

	for (size_t i = 0; i < n; i++) {
		lo = counts[i] < lo ? counts[i] : lo;
		hi = counts[i] > hi ? counts[i] : hi;
		sum += counts[i];
	}
	return (double)(hi - lo) * (double)n / (double)sum;
}

/*
 * A deliberately biased selector: one time in `bias_one_in`, index 0,
 * whatever the inner strategy would have said.
 */
static const struct pw_strategy	*bias_inner;
static uint64_t			 bias_one_in = 25;

static long
select_biased(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *env)
{
	if (env->random(env->rng) % bias_one_in == 0)
		return 0;
	return bias_inner->select(c, n, env);
}

static const struct pw_strategy biased = {
	PW_STRATEGY_ABI, "biased", "favours index 0 a bit", select_biased
};

static const struct pw_strategy *
builtin(const char *name)
{
	const struct pw_strategy	*s = pw_strategy_builtin(name);

	if (s == NULL)
		fail_msg("no built-in strategy %s", name);
	assert_int_equal(s->abi, PW_STRATEGY_ABI);
	assert_string_equal(s->name, name);
	assert_non_null(s->summary);
	return s;
}

/* ---------------------------------------------------------------- rng */

static void
test_rng_seeded(void **state)
{
	struct pw_rng	a, b, c;
	int		same = 1;

	(void)state;
	pw_rng_seed(&a, 42);
	pw_rng_seed(&b, 42);
	pw_rng_seed(&c, 43);
	for (int i = 0; i < 100; i++) {
		uint64_t x = pw_rng_next(&a);
		assert_true(x == pw_rng_next(&b));
		same &= x == pw_rng_next(&c);
	}
	assert_false(same);
	/* Seed 0 takes one from the system: two such streams differ. */
	pw_rng_seed(&a, 0);
	pw_rng_seed(&b, 0);
	assert_false(pw_rng_next(&a) == pw_rng_next(&b) &&
	    pw_rng_next(&a) == pw_rng_next(&b));
}

/* ------------------------------------------------------------ registry */

static void
test_registry(void **state)
{
	static const char *const names[] = { "round-robin", "random",
	    "weighted", "least-used", "performance" };

	(void)state;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		builtin(names[i]);
		assert_non_null(strstr(pw_strategy_names(), names[i]));
	}
	/* sticky and geo wrap a strategy; they do not pick by themselves. */
	assert_null(pw_strategy_builtin("sticky"));
	assert_null(pw_strategy_builtin("geo"));
	assert_null(pw_strategy_builtin("Round-Robin"));
	assert_null(pw_strategy_builtin(""));
	assert_non_null(strstr(pw_strategy_names(), "sticky"));
	assert_non_null(strstr(pw_strategy_names(), "geo"));
}

static void
test_pick_nothing(void **state)
{
	static const char *const names[] = { "round-robin", "random",
	    "weighted", "least-used", "performance" };
	struct pw_rng		rng;
	struct pw_pick_env	env;
	struct pw_err		err;
	struct pw_candidate	c[1];

	(void)state;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		env_seed(&env, &rng, SEED);
		memset(&err, 0, sizeof err);
		assert_int_equal(pw_strategy_pick(builtin(names[i]),
		    builtin("round-robin"), c, 0, &env, &err), PW_ENOPROXY);
		assert_string_equal(err.msg, "no eligible proxy");
	}
}

/* --------------------------------------------------------- round-robin */

static void
test_round_robin_order(void **state)
{
	const struct pw_strategy	*rr = builtin("round-robin");
	struct pw_candidate		*c = cands(3);
	struct pw_rng			 rng;
	struct pw_pick_env		 env;
	/* The cursor is an id; ids need not be dense. */
	static const struct { int64_t cursor, want; } steps[] = {
		{ 0, 2 }, { 2, 5 }, { 5, 9 }, { 9, 2 },	/* wraps */
		{ 1, 2 }, { 3, 5 }, { 7, 9 },	/* cursor on a gone id */
		{ 100, 2 }, { -4, 2 },
	};

	(void)state;
	c[0].id = 2;
	c[1].id = 5;
	c[2].id = 9;
	env_seed(&env, &rng, SEED);
	for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
		env.cursor = steps[k].cursor;
		assert_int_equal(c[pick1(rr, NULL, c, 3, &env)].id,
		    steps[k].want);
	}
	/* One candidate: always it, whatever the cursor. */
	env.cursor = 5;
	assert_int_equal(pick1(rr, NULL, &c[1], 1, &env), 0);
	env.cursor = 0;
	assert_int_equal(pick1(rr, NULL, &c[2], 1, &env), 0);
	free(c);
}

static void
test_round_robin_even(void **state)
{
	const struct pw_strategy	*rr = builtin("round-robin");
	struct pw_candidate		*c = cands(7);
	long				 counts[7], k = 7 * 13 + 4;

	(void)state;
	tally(rr, NULL, c, 7, k, SEED, counts);
	/* floor(k/n) or ceil(k/n) each; the first k % n get the extra. */
	for (int i = 0; i < 7; i++)
		assert_int_equal(counts[i], 13 + (i < 4));
	free(c);
}

/* -------------------------------------------------------------- random */

static void
test_random_uniform(void **state)
{
	const struct pw_strategy	*rnd = builtin("random");
	struct pw_candidate		*c = cands(10);
	long				 counts[10], k = 10000;
	double				 p[10];

	(void)state;
	tally(rnd, NULL, c, 10, k, SEED, counts);
	for (int i = 0; i < 10; i++)
		p[i] = 0.1;
	print_message("random: 10,000 picks of 10: largest deviation from "
	    "the mean %.1f%%\n", 100 * max_dev(counts, p, 10, k));
	assert_true(uniform(counts, 10, k, 0.10));
	/* Other seeds too: not one lucky stream. */
	for (uint64_t s = 1; s <= 20; s++) {
		tally(rnd, NULL, c, 10, k, s, counts);
		assert_true(uniform(counts, 10, k, 0.10));
	}
	free(c);
}

static void
test_random_checker_fails_biased(void **state)
{
	struct pw_candidate	*c = cands(10);
	long			 counts[10], k = 10000;
	double			 p[10];

	(void)state;
	bias_inner = builtin("random");
	bias_one_in = 25;
	tally(&biased, NULL, c, 10, k, SEED, counts);
	for (int i = 0; i < 10; i++)
		p[i] = 0.1;
	print_message("random, biased 1 in 25 to index 0: largest deviation "
	    "%.1f%%\n", 100 * max_dev(counts, p, 10, k));
	assert_false(uniform(counts, 10, k, 0.10));
	/* A selector that never picks the last one fails too. */
	tally(builtin("random"), NULL, c, 9, k, SEED, counts);
	counts[9] = 0;
	assert_false(uniform(counts, 10, k, 0.10));
	free(c);
}

/* ------------------------------------------------------------ weighted */

static void
test_weighted_proportional(void **state)
{
	const struct pw_strategy	*w = builtin("weighted");
	struct pw_candidate		*c = cands(4);
	long				 counts[4], k = 20000;
	static const double		 p[4] = { .1, .2, .3, .4 };

	(void)state;
	for (int i = 0; i < 4; i++)
		c[i].weight = i + 1;
	tally(w, NULL, c, 4, k, SEED, counts);
	print_message("weighted 1:2:3:4: largest deviation %.1f%%\n",
	    100 * max_dev(counts, p, 4, k));
	assert_true(proportional(counts, p, 4, k, 0.10));

	bias_inner = w;
	bias_one_in = 25;
	tally(&biased, NULL, c, 4, k, SEED, counts);
	assert_false(proportional(counts, p, 4, k, 0.10));
	/* Uniform is not proportional either. */
	tally(builtin("random"), NULL, c, 4, k, SEED, counts);
	assert_false(proportional(counts, p, 4, k, 0.10));
	free(c);
}

static void
test_weighted_zero_never(void **state)
{
	const struct pw_strategy	*w = builtin("weighted");
	struct pw_candidate		*c = cands(5);
	long				 counts[5], k = 10000;
	static const double		 p[5] = { 0, .5, 0, .5, 0 };

	(void)state;
	c[0].weight = 0;
	c[1].weight = 2;
	c[2].weight = 0;
	c[3].weight = 2;
	c[4].weight = 0;
	tally(w, NULL, c, 5, k, SEED, counts);
	assert_int_equal(counts[0], 0);
	assert_int_equal(counts[2], 0);
	assert_int_equal(counts[4], 0);
	assert_true(proportional(counts, p, 5, k, 0.10));
	/* The checker rejects a selector that picks a zero weight. */
	bias_inner = w;
	tally(&biased, NULL, c, 5, k, SEED, counts);
	assert_false(proportional(counts, p, 5, k, 0.10));

	/* A weight that cannot be used is skipped like zero. */
	c[2].weight = INFINITY;
	tally(w, NULL, c, 5, k, SEED, counts);
	assert_int_equal(counts[0] + counts[2] + counts[4], 0);
	free(c);
}

static void
test_weighted_success_rate(void **state)
{
	const struct pw_strategy	*w = builtin("weighted");
	struct pw_candidate		*c = cands(3);
	long				 counts[3], k = 20000;
	double				 p[3], s;

	(void)state;
	/* Unset weights: (succeeded + 1) / (completed + 2). */
	c[0].failed = 20;			/* 1/22 */
	c[1].succeeded = 1, c[1].failed = 8;	/* 2/11 */
	c[2].succeeded = 9;			/* 10/11 */
	s = 1.0 / 22 + 2.0 / 11 + 10.0 / 11;
	p[0] = 1.0 / 22 / s;
	p[1] = 2.0 / 11 / s;
	p[2] = 10.0 / 11 / s;
	tally(w, NULL, c, 3, k, SEED, counts);
	print_message("weighted by success rate: largest deviation %.1f%%\n",
	    100 * max_dev(counts, p, 3, k));
	assert_true(proportional(counts, p, 3, k, 0.10));
	bias_inner = w;
	bias_one_in = 25;
	tally(&biased, NULL, c, 3, k, SEED, counts);
	assert_false(proportional(counts, p, 3, k, 0.10));

	/* An explicit weight beside an unset one: each counts as itself. */
	c[0].weight = 0;		/* never */
	c[1].weight = -1;		/* 2/11 from its record */
	c[2].weight = 1;		/* 1 */
	p[0] = 0;
	p[1] = 2.0 / 11 / (1 + 2.0 / 11);
	p[2] = 1 / (1 + 2.0 / 11);
	tally(w, NULL, c, 3, k, SEED, counts);
	assert_true(proportional(counts, p, 3, k, 0.10));
	free(c);
}

static void
test_weighted_uniform_fallback(void **state)
{
	const struct pw_strategy	*w = builtin("weighted");
	struct pw_candidate		*c = cands(10);
	struct pw_rng			 rng;
	struct pw_pick_env		 env;
	long				 counts[10], k = 10000;

	(void)state;
	for (int i = 0; i < 10; i++)
		c[i].weight = 0;
	env_seed(&env, &rng, SEED);
	pick1(w, NULL, c, 10, &env);
	assert_non_null(env.note);
	assert_string_equal(env.note,
	    "weighted: no usable weight, picking uniformly");
	tally(w, NULL, c, 10, k, SEED, counts);
	assert_true(uniform(counts, 10, k, 0.10));

	/* With one usable weight there is no note, and only it is used. */
	c[6].weight = 0.5;
	env_seed(&env, &rng, SEED);
	assert_int_equal(pick1(w, NULL, c, 10, &env), 6);
	assert_null(env.note);
	free(c);
}

/* ---------------------------------------------------------- least-used */

static void
test_least_used_min_and_tie(void **state)
{
	const struct pw_strategy	*lu = builtin("least-used");
	struct pw_candidate		*c = cands(5);
	struct pw_rng			 rng;
	struct pw_pick_env		 env;

	(void)state;
	env_seed(&env, &rng, SEED);
	/* All equal: the lowest id. */
	assert_int_equal(pick1(lu, NULL, c, 5, &env), 0);
	c[0].window_count = 3;
	c[1].window_count = 1;
	c[2].window_count = 4;
	c[3].window_count = 1;
	c[4].window_count = 2;
	/* Ties go to the lowest id, whatever the cursor or the draws. */
	for (int i = 0; i < 50; i++) {
		env.cursor = c[i % 5].id;
		assert_int_equal(pick1(lu, NULL, c, 5, &env), 1);
	}
	/* The window count decides, not the count ever started. */
	c[1].started = 1000;
	c[3].started = 0;
	assert_int_equal(pick1(lu, NULL, c, 5, &env), 1);
	c[1].window_count = 2;
	assert_int_equal(pick1(lu, NULL, c, 5, &env), 3);
	free(c);
}

/* k uses through s, each bumping the chosen proxy's window count. */
static void
use(const struct pw_strategy *s, struct pw_candidate *c, size_t n, long k,
    long *counts)
{
	struct pw_rng		rng;
	struct pw_pick_env	env;
	long			i;

	env_seed(&env, &rng, SEED);
	memset(counts, 0, n * sizeof *counts);
	for (size_t j = 0; j < n; j++)
		c[j].window_count = 0;
	for (long j = 0; j < k; j++) {
		i = pick1(s, NULL, c, n, &env);
		c[i].window_count++;
		c[i].started++;
		counts[i]++;
	}
}

static void
test_least_used_spread(void **state)
{
	const struct pw_strategy	*lu = builtin("least-used");
	struct pw_candidate		*c = cands(10);
	long				 counts[10];

	(void)state;
	use(lu, c, 10, 1003, counts);
	print_message("least-used: 1003 uses of 10: spread %.1f%% of the "
	    "mean\n", 100 * spread(counts, 10));
	assert_true(spread(counts, 10) < 0.20);
	for (int i = 0; i < 10; i++)
		assert_int_equal(counts[i], 100 + (i < 3));

	/*
	 * A proxy that joins late is used until it has caught up, and the
	 * spread of the window stays small.
	 */
	for (int i = 0; i < 9; i++)
		c[i].window_count = 100;
	c[9].window_count = 0;
	{
		struct pw_rng		rng;
		struct pw_pick_env	env;

		env_seed(&env, &rng, SEED);
		for (int j = 0; j < 100; j++) {
			long i = pick1(lu, NULL, c, 10, &env);
			assert_int_equal(i, 9);
			c[i].window_count++;
		}
		assert_int_equal(pick1(lu, NULL, c, 10, &env), 0);
	}

	/* The checker rejects a selector that does not balance ... */
	use(builtin("random"), c, 10, 1000, counts);
	print_message("least-used checker on random: spread %.1f%%\n",
	    100 * spread(counts, 10));
	assert_false(spread(counts, 10) < 0.20);
	/* ... and one that favours index 0 more than least-used can mend. */
	bias_inner = lu;
	bias_one_in = 5;
	use(&biased, c, 10, 1000, counts);
	print_message("least-used biased 1 in 5 to index 0: spread %.1f%%\n",
	    100 * spread(counts, 10));
	assert_false(spread(counts, 10) < 0.20);
	bias_one_in = 25;
	free(c);
}

/* --------------------------------------------------------- performance */

static void
test_performance_inverse_latency(void **state)
{
	const struct pw_strategy	*perf = builtin("performance");
	struct pw_candidate		*c = cands(4);
	long				 counts[4], k = 20000;
	static const double		 p[4] = { 1.0 / 15, 2.0 / 15,
					     4.0 / 15, 8.0 / 15 };

	(void)state;
	c[0].latency_ms = 800;
	c[1].latency_ms = 400;
	c[2].latency_ms = 200;
	c[3].latency_ms = 100;
	tally(perf, builtin("round-robin"), c, 4, k, SEED, counts);
	print_message("performance 800/400/200/100 ms: largest deviation "
	    "%.1f%%\n", 100 * max_dev(counts, p, 4, k));
	assert_true(proportional(counts, p, 4, k, 0.10));
	/* Without a fallback it is the same when every one is measured. */
	tally(perf, NULL, c, 4, k, SEED, counts);
	assert_true(proportional(counts, p, 4, k, 0.10));

	bias_inner = perf;
	bias_one_in = 25;
	tally(&biased, NULL, c, 4, k, SEED, counts);
	assert_false(proportional(counts, p, 4, k, 0.10));
	tally(builtin("random"), NULL, c, 4, k, SEED, counts);
	assert_false(proportional(counts, p, 4, k, 0.10));

	/* A latency of 0 is very fast, not a division by zero. */
	c[0].latency_ms = 0;
	tally(perf, NULL, c, 4, 1000, SEED, counts);
	assert_true(counts[0] > 950);
	free(c);
}

static void
test_performance_unmeasured_first(void **state)
{
	const struct pw_strategy	*perf = builtin("performance");
	const struct pw_strategy	*rr = builtin("round-robin");
	struct pw_candidate		*c = cands(5);
	struct pw_rng			 rng;
	struct pw_pick_env		 env;
	long				 counts[5];

	(void)state;
	c[0].latency_ms = 10;
	c[2].latency_ms = 10;
	c[4].latency_ms = 10;
	/* ids 2 and 4 have no data: the fallback chooses among them. */
	env_seed(&env, &rng, SEED);
	assert_int_equal(pick1(perf, rr, c, 5, &env), 1);
	assert_non_null(env.note);
	assert_string_equal(env.note,
	    "performance: trying a proxy without latency data");
	assert_int_equal(env.cursor, 2);
	assert_int_equal(pick1(perf, rr, c, 5, &env), 3);
	assert_int_equal(pick1(perf, rr, c, 5, &env), 1);
	tally(perf, builtin("random"), c, 5, 1000, SEED, counts);
	assert_int_equal(counts[0] + counts[2] + counts[4], 0);
	assert_true(counts[1] > 400 && counts[3] > 400);

	/* Without a fallback, the unmeasured are left out. */
	tally(perf, NULL, c, 5, 1000, SEED, counts);
	assert_int_equal(counts[1] + counts[3], 0);
	assert_true(uniform((long[]){ counts[0], counts[2], counts[4] }, 3,
	    1000, 0.20));
	free(c);
}

static void
test_performance_no_data_no_fallback(void **state)
{
	const struct pw_strategy	*perf = builtin("performance");
	struct pw_candidate		*c = cands(3);
	struct pw_rng			 rng;
	struct pw_pick_env		 env;
	struct pw_err			 err;

	(void)state;
	env_seed(&env, &rng, SEED);
	memset(&err, 0, sizeof err);
	assert_int_equal(pw_strategy_pick(perf, NULL, c, 3, &env, &err),
	    PW_ENOPROXY);
	assert_int_equal(err.code, PW_ENOPROXY);
	assert_string_equal(err.msg, "performance: no eligible proxy has "
	    "latency data yet (set strategy.fallback, or report outcomes "
	    "with latency)");
	/* With a fallback the same candidates are fine. */
	assert_int_equal(pick1(perf, builtin("least-used"), c, 3, &env), 0);
	free(c);
}

/*
 * A run of k requests through the proxies of true latencies lat[]: each
 * observed latency is the true one times a noise factor in [0.5, 1.5),
 * fed back into the candidate's EMA as pw_pool_report does (alpha 0.3).
 * Every run starts with no data. Returns the mean observed latency.
 */
static double
simulate(const struct pw_strategy *s, const double *lat, size_t n, long k)
{
	const struct pw_strategy	*rr = builtin("round-robin");
	struct pw_candidate		*c = cands(n);
	struct pw_rng			 rng, noise;
	struct pw_pick_env		 env;
	double				 sum = 0, x, alpha = 0.3;
	long				 i;

	env_seed(&env, &rng, SEED);
	pw_rng_seed(&noise, SEED + 1);
	for (long j = 0; j < k; j++) {
		i = pick1(s, rr, c, n, &env);
		x = lat[i] * (0.5 + (double)(pw_rng_next(&noise) >> 11) *
		    0x1.0p-53);
		sum += x;
		c[i].latency_ms = c[i].latency_ms < 0 ? x :
		    alpha * x + (1 - alpha) * c[i].latency_ms;
		c[i].started++;
		c[i].succeeded++;
	}
	free(c);
	return sum / (double)k;
}

/* A plausible bug: weighting by latency instead of its inverse. */
static long
select_by_latency(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *env)
{
	double	total = 0, x;

	for (size_t i = 0; i < n; i++)
		total += c[i].latency_ms < 0 ? 1 : c[i].latency_ms;
	x = (double)(env->random(env->rng) >> 11) * 0x1.0p-53 * total;
	for (size_t i = 0; i < n; i++) {
		double v = c[i].latency_ms < 0 ? 1 : c[i].latency_ms;
		if (x < v)
			return (long)i;
		x -= v;
	}
	return (long)n - 1;
}

static const struct pw_strategy by_latency = {
	PW_STRATEGY_ABI, "by-latency", "slow ones first (wrong)",
	select_by_latency
};

static void
test_performance_cuts_latency(void **state)
{
	static const double	lat[] = { 50, 100, 200, 400, 800, 120, 60,
				    300 };
	size_t			n = sizeof lat / sizeof lat[0];
	long			k = 10000;
	double			rr, perf, cut;

	(void)state;
	rr = simulate(builtin("round-robin"), lat, n, k);
	perf = simulate(builtin("performance"), lat, n, k);
	cut = 1 - perf / rr;
	print_message("performance: mean latency %.1f ms against %.1f ms for "
	    "round-robin: %.1f%% less\n", perf, rr, 100 * cut);
	assert_true(cut >= 0.15);

	/* The same check rejects selectors that ignore or invert latency. */
	cut = 1 - simulate(builtin("random"), lat, n, k) / rr;
	print_message("performance checker on random: %.1f%% less\n",
	    100 * cut);
	assert_false(cut >= 0.15);
	cut = 1 - simulate(&by_latency, lat, n, k) / rr;
	assert_false(cut >= 0.15);
	bias_inner = builtin("round-robin");
	bias_one_in = 25;
	cut = 1 - simulate(&biased, lat, n, k) / rr;
	assert_false(cut >= 0.15);
}

/* ------------------------------------------------- rejection sampling */

/*
 * The sampler picks for random, weighted and performance on a state
 * file. Here its probe is an array: ids 1..n, eligible where ok[] says.
 */
struct mem_pool {
	struct pw_candidate	*c;
	const int		*ok;
	size_t			 n;
	long			 probes;
};

static int
mem_probe(void *arg, int64_t id, struct pw_candidate *c, struct pw_err *err)
{
	struct mem_pool	*m = arg;

	(void)err;
	m->probes++;
	if (id < 1 || (size_t)id > m->n)
		fail_msg("probe of id %lld outside 1..%zu", (long long)id,
		    m->n);
	if (!m->ok[id - 1])
		return 0;
	*c = m->c[id - 1];
	return 1;
}

static void
mem_bounds(const struct mem_pool *m, struct pw_bounds *b)
{
	b->min_id = 1;
	b->max_id = (int64_t)m->n;
	b->max_weight = -1;
	b->min_latency_ms = -1;
	for (size_t i = 0; i < m->n; i++) {
		if (m->c[i].weight > b->max_weight)
			b->max_weight = m->c[i].weight;
		if (m->c[i].latency_ms >= 0 && (b->min_latency_ms < 0 ||
		    m->c[i].latency_ms < b->min_latency_ms))
			b->min_latency_ms = m->c[i].latency_ms;
	}
}

/*
 * k samples; counts by id - 1. A sampler may give up (pool.c then
 * reads every candidate); what it does choose must follow the
 * distribution, so only those are counted.
 */
static void
sample_tally(const struct pw_strategy *s, struct mem_pool *m, long k,
    long *counts)
{
	struct pw_rng		rng;
	struct pw_pick_env	env;
	struct pw_bounds	b;
	struct pw_err		err;
	int64_t			id;
	long			gaveup = 0;
	int			r;

	mem_bounds(m, &b);
	env_seed(&env, &rng, SEED);
	memset(counts, 0, m->n * sizeof *counts);
	for (long j = 0; j < k; ) {
		id = -1;
		r = pw_strategy_sample(s, &b, mem_probe, m, &env, 64, &id,
		    &err);
		assert_true(r == 0 || r == 1);
		if (r == 0) {
			assert_int_equal(id, -1);
			if (++gaveup > k / 10)
				fail_msg("%s: gave up %ld times", s->name,
				    gaveup);
			continue;
		}
		assert_true(id >= 1 && (size_t)id <= m->n);
		assert_true(m->ok[id - 1]);
		counts[id - 1]++;
		j++;
	}
}

static void
test_sample_distributions(void **state)
{
	static const int	ok[12] = { 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1 };
	struct mem_pool		m = { cands(12), ok, 12, 0 };
	long			counts[12], k = 18000;
	double			p[12], s = 0;

	(void)state;
	/* random: uniform over the 9 eligible, never the others. */
	for (int i = 0; i < 12; i++)
		p[i] = ok[i] / 9.0;
	sample_tally(builtin("random"), &m, k, counts);
	assert_true(proportional(counts, p, 12, k, 0.10));

	/* weighted: explicit weights, success rates, zeros. */
	for (int i = 0; i < 12; i++) {
		m.c[i].weight = i % 4 == 3 ? -1 : (double)(i % 4);
		m.c[i].succeeded = i;
		m.c[i].failed = 2;
	}
	m.c[1].weight = 6;	/* ineligible: sets the bound, never drawn */
	for (int i = 0; i < 12; i++) {
		double w = m.c[i].weight >= 0 ? m.c[i].weight :
		    (double)(i + 1) / (double)(i + 4);
		p[i] = ok[i] ? w : 0;
		s += p[i];
	}
	for (int i = 0; i < 12; i++)
		p[i] /= s;
	sample_tally(builtin("weighted"), &m, k, counts);
	print_message("sampled weighted: largest deviation %.1f%%\n",
	    100 * max_dev(counts, p, 12, k));
	assert_true(proportional(counts, p, 12, k, 0.10));

	/* performance: inverse latency; unmeasured never. */
	s = 0;
	for (int i = 0; i < 12; i++) {
		m.c[i].latency_ms = i % 5 == 4 ? -1 : 40.0 * (i % 3 + 1);
		p[i] = ok[i] && m.c[i].latency_ms > 0 ?
		    1 / m.c[i].latency_ms : 0;
		s += p[i];
	}
	m.c[4].latency_ms = 20;	/* ineligible: the bound, never drawn */
	for (int i = 0; i < 12; i++)
		p[i] /= s;
	sample_tally(builtin("performance"), &m, k, counts);
	print_message("sampled performance: largest deviation %.1f%%\n",
	    100 * max_dev(counts, p, 12, k));
	assert_true(proportional(counts, p, 12, k, 0.10));
	free(m.c);
}

static void
test_sample_declines(void **state)
{
	static const int	ok[4] = { 0, 0, 0, 0 }, one[4] = { 0, 0, 1, 0 };
	struct mem_pool		m = { cands(4), ok, 4, 0 };
	struct pw_rng		rng;
	struct pw_pick_env	env;
	struct pw_bounds	b;
	struct pw_err		err;
	int64_t			id = -7;

	(void)state;
	env_seed(&env, &rng, SEED);
	mem_bounds(&m, &b);
	/* Strategies that do not sample hand back to the caller at once. */
	assert_int_equal(pw_strategy_sample(builtin("round-robin"), &b,
	    mem_probe, &m, &env, 64, &id, &err), 0);
	assert_int_equal(pw_strategy_sample(builtin("least-used"), &b,
	    mem_probe, &m, &env, 64, &id, &err), 0);
	assert_int_equal(m.probes, 0);
	/* Nothing eligible: gives up after `tries` probes. */
	assert_int_equal(pw_strategy_sample(builtin("random"), &b, mem_probe,
	    &m, &env, 64, &id, &err), 0);
	assert_int_equal(m.probes, 64);
	/* Performance without any latency in the pool: no sampling. */
	m.probes = 0;
	m.ok = one;
	assert_int_equal(pw_strategy_sample(builtin("performance"), &b,
	    mem_probe, &m, &env, 64, &id, &err), 0);
	assert_int_equal(m.probes, 0);
	/* An empty pool. */
	b.min_id = 0;
	b.max_id = -1;
	assert_int_equal(pw_strategy_sample(builtin("random"), &b, mem_probe,
	    &m, &env, 64, &id, &err), 0);
	assert_int_equal(id, -7);
	free(m.c);
}

/* ------------------------------------------------ on a real state file */

struct fix {
	char		*dir;
	char		*path;
	struct pw_ctx	 ctx;
};

static int
fix_new(void **state)
{
	struct fix	*f = pw_xcalloc(1, sizeof *f);
	char		*xdg;

	f->dir = unit_tmp_new();
	f->path = unit_path(f->dir, "state.db");
	xdg = unit_path(f->dir, "config");
	setenv("XDG_CONFIG_HOME", xdg, 1);
	free(xdg);
	*state = f;
	return 0;
}

static int
fix_free(void **state)
{
	struct fix	*f = *state;

	pw_close(&f->ctx);
	pw_log_set(NULL, NULL, 0);
	free(f->path);
	unit_tmp_free(f->dir);
	free(f);
	return 0;
}

static void
ctx_open(struct pw_ctx *ctx, const char *path)
{
	memset(ctx, 0, sizeof *ctx);
	if (pw_open(ctx, path, PW_OPEN_RW) != 0)
		fail_msg("pw_open: %s", ctx->err.msg);
	pw_rng_seed(&ctx->rng, SEED);
	ctx->rng_seeded = 1;
}

static int
setup(void **state)
{
	struct fix	*f;

	fix_new(state);
	f = *state;
	ctx_open(&f->ctx, f->path);
	return 0;
}

static void
flag(struct pw_ctx *ctx, const char *key, const char *value)
{
	if (pw_config_set_flag(ctx->cfg, key, value, &ctx->err) != 0)
		fail_msg("%s=%s: %s", key, value, ctx->err.msg);
}

/* Add url with metadata; its new id. */
static int64_t
add(struct pw_ctx *ctx, const char *url, const char *country,
    const char *region, double weight, int64_t ttl)
{
	struct pw_meta	m = { NULL, country, region, weight, ttl };
	struct pw_addr	a;
	int64_t		id = -1;
	int		res = -1;

	if (pw_addr_parse(url, &a, &ctx->err) != 0)
		fail_msg("parse %s: %s", url, ctx->err.msg);
	if (pw_pool_add(ctx, &a, 1, &m, &res, &id) != 0)
		fail_msg("add %s: %s", url, ctx->err.msg);
	pw_addr_release(&a);
	assert_int_equal(res, PW_ADDED);
	return id;
}

/* n plain proxies on 127.0.0.1, ports from 10001; ids 1..n. */
static void
add_n(struct pw_ctx *ctx, int n, const char *country)
{
	char	url[64];

	for (int i = 0; i < n; i++) {
		snprintf(url, sizeof url, "http://127.0.0.1:%d", 10001 + i);
		assert_int_equal(add(ctx, url, country, NULL, -1, 0), i + 1);
	}
}

struct want {
	const char	*strategy;
	const char	*session;
	const char	*country;
	const char	*region;
	const int64_t	*exclude;
	size_t		 nexclude;
};

/* pw_pool_next as w says: the chosen id, or the negative code. */
static int64_t
next_w(struct pw_ctx *ctx, const struct want *w)
{
	struct pw_pick	pk;
	struct pw_proxy	p;
	int64_t		id;
	int		r;

	memset(&pk, 0, sizeof pk);
	pw_filter_init(&pk.filter);
	pk.strategy = w->strategy;
	pk.session = w->session;
	pk.filter.country = w->country;
	pk.filter.region = w->region;
	pk.exclude = w->exclude;
	pk.nexclude = w->nexclude;
	memset(&p, 0x5a, sizeof p);
	if ((r = pw_pool_next(ctx, &pk, &p)) != 0)
		return r;
	id = p.id;
	pw_proxy_release(&p);
	return id;
}

static int64_t
next_s(struct pw_ctx *ctx, const char *strategy)
{
	struct want	w = { strategy, NULL, NULL, NULL, NULL, 0 };

	return next_w(ctx, &w);
}

static void
report(struct pw_ctx *ctx, int64_t id, int outcome, double ms)
{
	if (pw_pool_report(ctx, id, outcome, ms) != 0)
		fail_msg("report %lld: %s", (long long)id, ctx->err.msg);
}

static struct pw_proxy
get(struct pw_ctx *ctx, int64_t id)
{
	struct pw_proxy	p;

	if (pw_pool_get(ctx, id, 0, &p) != 0)
		fail_msg("get %lld: %s", (long long)id, ctx->err.msg);
	return p;
}

static int64_t
started(struct pw_ctx *ctx, int64_t id)
{
	struct pw_proxy	p = get(ctx, id);
	int64_t		n = p.started;

	pw_proxy_release(&p);
	return n;
}

/* k picks with strategy s (or w), counted by id - 1 among ids 1..n. */
static void
db_tally(struct pw_ctx *ctx, const struct want *w, size_t n, long k,
    long *counts)
{
	int64_t	id;

	memset(counts, 0, n * sizeof *counts);
	for (long j = 0; j < k; j++) {
		if ((id = next_w(ctx, w)) < 0)
			fail_msg("next %ld: %s", j, ctx->err.msg);
		if (id < 1 || (size_t)id > n)
			fail_msg("next chose id %lld", (long long)id);
		counts[id - 1]++;
	}
}

struct session_rec {
	const char	*id;
	int		 found;
	struct pw_session s;
};

static int
session_find(void *arg, const struct pw_session *s)
{
	struct session_rec	*r = arg;

	if (strcmp(s->id, r->id) != 0)
		return 0;
	r->found++;
	r->s = *s;
	r->s.id = NULL;		/* borrowed for the call only */
	return 0;
}

static struct session_rec
session(struct pw_ctx *ctx, const char *sid)
{
	struct session_rec	r;

	memset(&r, 0, sizeof r);
	r.id = sid;
	if (pw_session_each(ctx, session_find, &r) != 0)
		fail_msg("sessions: %s", ctx->err.msg);
	return r;
}

struct log_cap {
	char	last[1024];
	int	n;
};

static void
log_cap(void *arg, int level, const char *msg)
{
	struct log_cap	*lc = arg;

	(void)level;
	snprintf(lc->last, sizeof lc->last, "%s", msg);
	lc->n++;
}

/* --------------------------------------------------- round-robin, db */

static void
test_db_cursor_persists(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	 other;

	add_n(&f->ctx, 5, NULL);
	assert_int_equal(next_s(&f->ctx, "round-robin"), 1);
	assert_int_equal(next_s(&f->ctx, "round-robin"), 2);
	pw_close(&f->ctx);
	/* A new context, as a new process would: the cursor carries on. */
	ctx_open(&f->ctx, f->path);
	assert_int_equal(next_s(&f->ctx, "round-robin"), 3);
	/* Two contexts open at once share it too. */
	ctx_open(&other, f->path);
	assert_int_equal(next_s(&other, "round-robin"), 4);
	assert_int_equal(next_s(&f->ctx, "round-robin"), 5);
	assert_int_equal(next_s(&other, "round-robin"), 1);
	pw_close(&other);
	/* The default strategy is round-robin. */
	assert_int_equal(next_s(&f->ctx, NULL), 2);
	/* Removing the proxy under the cursor does not lose the place. */
	assert_int_equal(pw_pool_remove(&f->ctx, (int64_t[]){ 2 }, 1), 0);
	assert_int_equal(next_s(&f->ctx, NULL), 3);
	assert_int_equal(next_s(&f->ctx, NULL), 4);
	assert_int_equal(next_s(&f->ctx, NULL), 5);
	assert_int_equal(next_s(&f->ctx, NULL), 1);
	/* Every pick was marked started. */
	assert_int_equal(started(&f->ctx, 1), 3);
	assert_int_equal(started(&f->ctx, 3), 2);
	assert_int_equal(started(&f->ctx, 4), 2);
	assert_int_equal(started(&f->ctx, 5), 2);
}

static void
test_db_round_robin_even(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "round-robin", NULL, NULL, NULL, NULL, 0 };
	long		 counts[13], k = 13 * 7 + 5, sum = 0;

	add_n(&f->ctx, 13, NULL);
	db_tally(&f->ctx, &w, 13, k, counts);
	for (int i = 0; i < 13; i++) {
		assert_int_equal(counts[i], 7 + (i < 5));
		assert_int_equal(started(&f->ctx, i + 1), counts[i]);
		sum += started(&f->ctx, i + 1);
	}
	assert_int_equal(sum, k);
}

static void
test_db_cursor_per_filter(void **state)
{
	struct fix	*f = *state;
	struct want	 de = { "round-robin", NULL, "DE", NULL, NULL, 0 };

	add(&f->ctx, "http://127.0.0.1:1", "DE", NULL, -1, 0);
	add(&f->ctx, "http://127.0.0.1:2", "US", NULL, -1, 0);
	add(&f->ctx, "http://127.0.0.1:3", "DE", NULL, -1, 0);
	add(&f->ctx, "http://127.0.0.1:4", "US", NULL, -1, 0);
	add(&f->ctx, "http://127.0.0.1:5", "DE", NULL, -1, 0);
	/* Each set of filters goes round on its own. */
	assert_int_equal(next_s(&f->ctx, "round-robin"), 1);
	assert_int_equal(next_w(&f->ctx, &de), 1);
	assert_int_equal(next_w(&f->ctx, &de), 3);
	assert_int_equal(next_s(&f->ctx, "round-robin"), 2);
	assert_int_equal(next_w(&f->ctx, &de), 5);
	assert_int_equal(next_w(&f->ctx, &de), 1);
	assert_int_equal(next_s(&f->ctx, "round-robin"), 3);
}

/* ----------------------------------------------------- exclusion, db */

static void
test_db_exclude(void **state)
{
	struct fix	*f = *state;
	static const int64_t ex2[] = { 2 }, ex_all[] = { 1, 2, 3 };
	struct want	 w = { "round-robin", NULL, NULL, NULL, ex2, 1 };
	static const char *const strategies[] = { "round-robin", "random",
	    "weighted", "least-used", "performance" };

	add_n(&f->ctx, 3, NULL);
	assert_int_equal(next_w(&f->ctx, &w), 1);
	assert_int_equal(next_w(&f->ctx, &w), 3);
	assert_int_equal(next_w(&f->ctx, &w), 1);
	assert_int_equal(started(&f->ctx, 2), 0);
	for (size_t i = 0; i < 5; i++) {
		w.strategy = strategies[i];
		w.exclude = ex2;
		w.nexclude = 1;
		for (int j = 0; j < 50; j++)
			assert_int_not_equal(next_w(&f->ctx, &w), 2);
		w.exclude = ex_all;
		w.nexclude = 3;
		assert_int_equal(next_w(&f->ctx, &w), PW_ENOPROXY);
		assert_string_equal(f->ctx.err.msg, "no eligible proxy: 3 in "
		    "pool, 0 unhealthy, 0 cooling down, 0 expired, 3 "
		    "excluded");
	}
	assert_int_equal(started(&f->ctx, 2), 0);
}

static void
test_db_empty_pool(void **state)
{
	struct fix	*f = *state;

	assert_int_equal(next_s(&f->ctx, NULL), PW_ENOPROXY);
	assert_int_equal(f->ctx.err.code, PW_ENOPROXY);
	assert_string_equal(f->ctx.err.msg, "no eligible proxy: 0 in pool, 0 "
	    "unhealthy, 0 cooling down, 0 expired");
	assert_int_equal(next_s(&f->ctx, "random"), PW_ENOPROXY);
	assert_int_equal(next_s(&f->ctx, "least-used"), PW_ENOPROXY);
}

static void
test_db_bad_strategy(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "sticky", NULL, NULL, NULL, NULL, 0 };

	add_n(&f->ctx, 2, NULL);
	assert_int_equal(next_s(&f->ctx, "nope"), PW_EUSAGE);
	assert_string_equal(f->ctx.err.msg, "'nope': unknown strategy (want "
	    "one of: round-robin random weighted least-used performance "
	    "sticky geo, or a plugin's name)");
	assert_int_equal(next_w(&f->ctx, &w), PW_EUSAGE);
	assert_string_equal(f->ctx.err.msg, "strategy sticky needs a session "
	    "(--session ID)");
	w.strategy = "geo";
	assert_int_equal(next_w(&f->ctx, &w), PW_EUSAGE);
	assert_string_equal(f->ctx.err.msg, "strategy geo needs a country or "
	    "region (--country CC, --region R)");
	/* Nothing was started by the refusals. */
	assert_int_equal(started(&f->ctx, 1) + started(&f->ctx, 2), 0);
}

/* ------------------------------------------------ cooldown, report, db */

static void
test_db_cooldown(void **state)
{
	struct fix	*f = *state;
	static const int64_t ex[] = { 1, 3 };
	struct want	 w = { "round-robin", NULL, NULL, NULL, ex, 2 };
	struct pw_proxy	 p;

	add_n(&f->ctx, 3, NULL);
	/* Failures below the threshold (3) do not cool a proxy down. */
	report(&f->ctx, 2, PW_REPORT_FAIL, -1);
	report(&f->ctx, 2, PW_REPORT_FAIL, -1);
	assert_int_equal(next_w(&f->ctx, &w), 2);
	/* A success clears the run. */
	report(&f->ctx, 2, PW_REPORT_OK, -1);
	report(&f->ctx, 2, PW_REPORT_FAIL, -1);
	report(&f->ctx, 2, PW_REPORT_FAIL, -1);
	assert_int_equal(next_w(&f->ctx, &w), 2);
	report(&f->ctx, 2, PW_REPORT_FAIL, -1);
	p = get(&f->ctx, 2);
	assert_int_equal(p.consec_fail, 3);
	assert_int_equal(p.failed, 5);
	assert_int_equal(p.succeeded, 1);
	assert_int_equal(p.completed, 6);
	assert_true(p.cooldown_until > 0);
	pw_proxy_release(&p);
	assert_int_equal(next_w(&f->ctx, &w), PW_ENOPROXY);
	assert_string_equal(f->ctx.err.msg, "no eligible proxy: 3 in pool, 0 "
	    "unhealthy, 1 cooling down, 0 expired, 2 excluded");
	for (int i = 0; i < 20; i++)
		assert_int_not_equal(next_s(&f->ctx, "round-robin"), 2);
	assert_int_not_equal(next_s(&f->ctx, "least-used"), 2);
	assert_int_not_equal(next_s(&f->ctx, "random"), 2);
	/* A success, reported by a script, ends the cooldown at once. */
	report(&f->ctx, 2, PW_REPORT_OK, 80);
	w.nexclude = 2;
	assert_int_equal(next_w(&f->ctx, &w), 2);
}

static void
test_db_threshold_setting(void **state)
{
	struct fix	*f = *state;

	add_n(&f->ctx, 2, NULL);
	flag(&f->ctx, "pool.failure_threshold", "1");
	report(&f->ctx, 1, PW_REPORT_FAIL, -1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(next_s(&f->ctx, NULL), 2);
	/* No cooldown at all: the proxy is skipped for 0 seconds. */
	flag(&f->ctx, "pool.cooldown", "0");
	report(&f->ctx, 2, PW_REPORT_FAIL, -1);
	assert_int_equal(next_s(&f->ctx, NULL), 2);
	assert_int_equal(next_s(&f->ctx, NULL), 2);
}

static void
test_db_report(void **state)
{
	struct fix	*f = *state;
	struct pw_proxy	 p;

	add_n(&f->ctx, 1, NULL);
	report(&f->ctx, 1, PW_REPORT_OK, 100);
	p = get(&f->ctx, 1);
	assert_true(p.latency_ms == 100);
	pw_proxy_release(&p);
	/* EMA with alpha 0.3. */
	report(&f->ctx, 1, PW_REPORT_OK, 200);
	p = get(&f->ctx, 1);
	assert_true(fabs(p.latency_ms - 130) < 1e-9);
	pw_proxy_release(&p);
	/* No latency: the EMA stays. */
	report(&f->ctx, 1, PW_REPORT_FAIL, -1);
	report(&f->ctx, 1, PW_REPORT_OK, -1);
	p = get(&f->ctx, 1);
	assert_true(fabs(p.latency_ms - 130) < 1e-9);
	assert_int_equal(p.completed, 4);
	assert_int_equal(p.succeeded, 3);
	assert_int_equal(p.failed, 1);
	assert_int_equal(p.consec_fail, 0);
	assert_int_equal(p.started, 0);
	pw_proxy_release(&p);
	flag(&f->ctx, "strategy.alpha", "0.5");
	report(&f->ctx, 1, PW_REPORT_OK, 0);
	p = get(&f->ctx, 1);
	assert_true(fabs(p.latency_ms - 65) < 1e-9);
	pw_proxy_release(&p);

	/*
	 * Neutral (the target failed, not the proxy): counted as completed,
	 * and neither a failure nor a success for the run of failures.
	 */
	report(&f->ctx, 1, PW_REPORT_FAIL, -1);
	report(&f->ctx, 1, PW_REPORT_FAIL, -1);
	for (int i = 0; i < 5; i++)
		report(&f->ctx, 1, PW_REPORT_NEUTRAL, -1);
	p = get(&f->ctx, 1);
	assert_int_equal(p.completed, 12);
	assert_int_equal(p.succeeded, 4);
	assert_int_equal(p.failed, 3);
	assert_int_equal(p.consec_fail, 2);
	assert_int_equal(p.cooldown_until, 0);
	pw_proxy_release(&p);
	assert_int_equal(next_s(&f->ctx, NULL), 1);
	report(&f->ctx, 1, PW_REPORT_FAIL, -1);
	assert_int_equal(next_s(&f->ctx, NULL), PW_ENOPROXY);
	report(&f->ctx, 1, PW_REPORT_NEUTRAL, -1);
	assert_int_equal(next_s(&f->ctx, NULL), PW_ENOPROXY);

	assert_int_equal(pw_pool_report(&f->ctx, 99, PW_REPORT_OK, 5),
	    PW_ENOTFOUND);
	assert_string_equal(f->ctx.err.msg, "99: no such proxy");
}

/* ------------------------------------------- random, weighted, perf, db */

static void
test_db_random_uniform(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "random", NULL, NULL, NULL, NULL, 0 };
	long		 counts[10], k = 10000;

	add_n(&f->ctx, 10, NULL);
	db_tally(&f->ctx, &w, 10, k, counts);
	assert_true(uniform(counts, 10, k, 0.10));
	for (int i = 0; i < 10; i++)
		assert_int_equal(started(&f->ctx, i + 1), counts[i]);
}

static void
test_db_weighted(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "weighted", NULL, NULL, NULL, NULL, 0 };
	long		 counts[5], k = 10000;
	static const double p[5] = { .1, 0, .2, .3, .4 };

	add(&f->ctx, "http://127.0.0.1:1", NULL, NULL, 1, 0);
	add(&f->ctx, "http://127.0.0.1:2", NULL, NULL, 0, 0);
	add(&f->ctx, "http://127.0.0.1:3", NULL, NULL, 2, 0);
	add(&f->ctx, "http://127.0.0.1:4", NULL, NULL, 3, 0);
	add(&f->ctx, "http://127.0.0.1:5", NULL, NULL, 4, 0);
	db_tally(&f->ctx, &w, 5, k, counts);
	assert_int_equal(counts[1], 0);
	assert_true(proportional(counts, p, 5, k, 0.10));

	/* Set weights later with pw_pool_set. */
	assert_int_equal(pw_pool_set(&f->ctx, 2, &(struct pw_meta){ NULL,
	    NULL, NULL, 10, 0 }), 0);
	db_tally(&f->ctx, &w, 5, 2000, counts);
	assert_true(counts[1] > 1000);

	/* No usable weight: uniform (test_db_weighted_note: it says so). */
	for (int64_t id = 1; id <= 5; id++)
		assert_int_equal(pw_pool_set(&f->ctx, id, &(struct pw_meta){
		    NULL, NULL, NULL, 0, 0 }), 0);
	db_tally(&f->ctx, &w, 5, k, counts);
	assert_true(uniform(counts, 5, k, 0.10));
}

static void
note_log(void *arg, int level, const char *msg)
{
	(void)level;
	if (strcmp(msg, "weighted: no usable weight, picking uniformly") == 0)
		(*(int *)arg)++;
}

static void
test_db_weighted_note(void **state)
{
	struct fix	*f = *state;
	int		 seen = 0;

	add(&f->ctx, "http://127.0.0.1:1", NULL, NULL, 0, 0);
	add(&f->ctx, "http://127.0.0.1:2", NULL, NULL, 0, 0);
	pw_log_set(note_log, &seen, PW_LOG_INFO);
	assert_true(next_s(&f->ctx, "weighted") > 0);
	pw_log_set(NULL, NULL, 0);
	assert_int_equal(seen, 1);
	/* Not said when a weight is usable. */
	assert_int_equal(pw_pool_set(&f->ctx, 2, &(struct pw_meta){ NULL,
	    NULL, NULL, 1, 0 }), 0);
	seen = 0;
	pw_log_set(note_log, &seen, PW_LOG_INFO);
	assert_int_equal(next_s(&f->ctx, "weighted"), 2);
	pw_log_set(NULL, NULL, 0);
	assert_int_equal(seen, 0);
}

static void
test_db_weighted_success_rate(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "weighted", NULL, NULL, NULL, NULL, 0 };
	long		 counts[2], k = 10000;
	/* (9 + 1) / (9 + 2) against (0 + 1) / (9 + 2) */
	static const double p[2] = { 10.0 / 11, 1.0 / 11 };

	add_n(&f->ctx, 2, NULL);
	flag(&f->ctx, "pool.failure_threshold", "1000");
	for (int i = 0; i < 9; i++) {
		report(&f->ctx, 1, PW_REPORT_OK, -1);
		report(&f->ctx, 2, PW_REPORT_FAIL, -1);
	}
	db_tally(&f->ctx, &w, 2, k, counts);
	assert_true(proportional(counts, p, 2, k, 0.10));
}

static void
test_db_performance(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "performance", NULL, NULL, NULL, NULL, 0 };
	long		 counts[4], k = 10000;
	static const double p[4] = { 8.0 / 15, 2.0 / 15, 4.0 / 15,
	    1.0 / 15 };

	add_n(&f->ctx, 4, NULL);
	report(&f->ctx, 1, PW_REPORT_OK, 100);
	report(&f->ctx, 2, PW_REPORT_OK, 400);
	/* Unmeasured first, by the fallback (round-robin by default). */
	assert_int_equal(next_w(&f->ctx, &w), 3);
	assert_int_equal(next_w(&f->ctx, &w), 4);
	assert_int_equal(next_w(&f->ctx, &w), 3);
	report(&f->ctx, 3, PW_REPORT_OK, 200);
	assert_int_equal(next_w(&f->ctx, &w), 4);
	report(&f->ctx, 4, PW_REPORT_OK, 800);
	db_tally(&f->ctx, &w, 4, k, counts);
	assert_true(proportional(counts, p, 4, k, 0.10));
	/* A filter by latency composes with it. */
	f->ctx.err.code = 0;
	{
		struct pw_pick	pk;
		struct pw_proxy	px;

		memset(&pk, 0, sizeof pk);
		pw_filter_init(&pk.filter);
		pk.strategy = "performance";
		pk.filter.max_latency_ms = 250;
		for (int i = 0; i < 50; i++) {
			assert_int_equal(pw_pool_next(&f->ctx, &pk, &px), 0);
			assert_true(px.id == 1 || px.id == 3);
			pw_proxy_release(&px);
		}
	}
}

static void
test_db_performance_fallbacks(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "performance", NULL, NULL, NULL, NULL, 0 };
	long		 counts[3];

	add_n(&f->ctx, 3, NULL);
	flag(&f->ctx, "strategy.fallback", "none");
	assert_int_equal(next_w(&f->ctx, &w), PW_ENOPROXY);
	assert_string_equal(f->ctx.err.msg, "performance: no eligible proxy "
	    "has latency data yet (set strategy.fallback, or report outcomes "
	    "with latency)");
	assert_int_equal(started(&f->ctx, 1), 0);
	/* Measured ones only, with no fallback. */
	report(&f->ctx, 2, PW_REPORT_OK, 50);
	db_tally(&f->ctx, &w, 3, 200, counts);
	assert_int_equal(counts[1], 200);
	/* least-used as the fallback: ids 1 and 3 in turn. */
	flag(&f->ctx, "strategy.fallback", "least-used");
	assert_int_equal(next_w(&f->ctx, &w), 1);
	assert_int_equal(next_w(&f->ctx, &w), 3);
	assert_int_equal(next_w(&f->ctx, &w), 1);
	/* The configured strategy is used when none is asked for. */
	flag(&f->ctx, "strategy", "performance");
	assert_int_equal(next_s(&f->ctx, NULL), 3);
}

/* ---------------------------------------------------- least-used, db */

static void
test_db_least_used(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "least-used", NULL, NULL, NULL, NULL, 0 };
	long		 counts[9];
	char		 url[64];

	add_n(&f->ctx, 8, NULL);
	/* Ties: the lowest id, so each round goes in id order. */
	for (int i = 0; i < 24; i++)
		assert_int_equal(next_w(&f->ctx, &w), i % 8 + 1);
	/* Other strategies' picks count in the window too. */
	assert_int_equal(next_s(&f->ctx, "round-robin"), 1);
	assert_int_equal(next_w(&f->ctx, &w), 2);
	assert_int_equal(next_w(&f->ctx, &w), 3);
	/* A newcomer is used until it has caught up. */
	snprintf(url, sizeof url, "http://127.0.0.1:%d", 20000);
	assert_int_equal(add(&f->ctx, url, NULL, NULL, -1, 0), 9);
	for (int i = 0; i < 3; i++)
		assert_int_equal(next_w(&f->ctx, &w), 9);
	assert_int_equal(next_w(&f->ctx, &w), 4);
	db_tally(&f->ctx, &w, 9, 900, counts);
	/* 31 + 900 = 9 * 103 + 4: the ties went to the lowest ids. */
	for (int i = 0; i < 9; i++)
		assert_int_equal(started(&f->ctx, i + 1), 103 + (i < 4));
	assert_true(spread(counts, 9) < 0.20);
}

/* -------------------------------------------------------- sticky, db */

static void
test_db_sticky_same_proxy(void **state)
{
	struct fix		*f = *state;
	struct want		 a = { NULL, "alpha", NULL, NULL, NULL, 0 };
	struct want		 b = { "sticky", "beta", NULL, NULL, NULL, 0 };
	struct session_rec	 r;
	int64_t			 pa, pb;
	long			 same = 0, k = 2000;

	add_n(&f->ctx, 6, NULL);
	pa = next_w(&f->ctx, &a);
	assert_int_equal(pa, 1);
	pb = next_w(&f->ctx, &b);
	assert_int_equal(pb, 2);
	for (long j = 0; j < k; j++) {
		/* Other traffic moves the cursor; the session stays. */
		assert_true(next_s(&f->ctx, j % 2 ? "random" :
		    "round-robin") > 0);
		a.strategy = j % 3 == 0 ? "random" : j % 3 == 1 ? "sticky" :
		    NULL;
		same += next_w(&f->ctx, &a) == pa;
	}
	print_message("sticky: %ld of %ld picks kept the session's proxy\n",
	    same, k);
	assert_int_equal(same, k);
	assert_int_equal(next_w(&f->ctx, &b), pb);
	r = session(&f->ctx, "alpha");
	assert_int_equal(r.found, 1);
	assert_int_equal(r.s.proxy_id, pa);
	assert_int_equal(r.s.requests, k + 1);
	assert_int_equal(r.s.failovers, 0);
	assert_true(r.s.expires_at >= r.s.last_used + 1800);
	r = session(&f->ctx, "beta");
	assert_int_equal(r.s.proxy_id, pb);
	assert_int_equal(r.s.requests, 2);
	/* A session survives another context (another process). */
	pw_close(&f->ctx);
	ctx_open(&f->ctx, f->path);
	assert_int_equal(next_w(&f->ctx, &a), pa);
}

static void
test_db_sticky_failover(void **state)
{
	struct fix		*f = *state;
	struct want		 a = { "sticky", "s1", NULL, NULL, NULL, 0 };
	struct session_rec	 r;
	int64_t			 p1, p2, ex[1];

	add_n(&f->ctx, 3, NULL);
	p1 = next_w(&f->ctx, &a);
	assert_int_equal(p1, 1);
	/* Its proxy cools down: the session moves, and stays moved. */
	for (int i = 0; i < 3; i++)
		report(&f->ctx, p1, PW_REPORT_FAIL, -1);
	p2 = next_w(&f->ctx, &a);
	assert_int_not_equal(p2, p1);
	assert_int_equal(p2, 2);
	r = session(&f->ctx, "s1");
	assert_int_equal(r.s.proxy_id, p2);
	assert_int_equal(r.s.failovers, 1);
	assert_int_equal(r.s.requests, 2);
	report(&f->ctx, p1, PW_REPORT_OK, 10);		/* p1 is back */
	assert_int_equal(next_w(&f->ctx, &a), p2);
	/* Excluded for this request (it failed in a retry loop): moves. */
	ex[0] = p2;
	a.exclude = ex;
	a.nexclude = 1;
	assert_int_equal(next_w(&f->ctx, &a), 3);
	a.nexclude = 0;
	assert_int_equal(next_w(&f->ctx, &a), 3);
	r = session(&f->ctx, "s1");
	assert_int_equal(r.s.failovers, 2);
	/* Its proxy removed from the pool: a new one. */
	assert_int_equal(pw_pool_remove(&f->ctx, (int64_t[]){ 3 }, 1), 0);
	assert_int_equal(next_w(&f->ctx, &a), 1);
	/* The session's proxy outside the filter: a matching one. */
	assert_true(pw_pool_set(&f->ctx, 2, &(struct pw_meta){ NULL, "NL",
	    NULL, -1, 0 }) == 0);
	a.country = "NL";
	assert_int_equal(next_w(&f->ctx, &a), 2);
	a.country = NULL;
	assert_int_equal(next_w(&f->ctx, &a), 2);
}

static void
test_db_sticky_inner_strategy(void **state)
{
	struct fix	*f = *state;
	struct want	 a = { "sticky", NULL, NULL, NULL, NULL, 0 };
	char		 sid[32];

	add_n(&f->ctx, 4, NULL);
	/* The inner strategy picks a new session's proxy. */
	flag(&f->ctx, "session.strategy", "least-used");
	for (int i = 0; i < 8; i++) {
		snprintf(sid, sizeof sid, "s%d", i);
		a.session = sid;
		assert_int_equal(next_w(&f->ctx, &a), i % 4 + 1);
	}
	/* With the default, round-robin, it is the next in turn. */
	flag(&f->ctx, "session.strategy", "round-robin");
	a.session = "new";
	assert_int_equal(next_w(&f->ctx, &a), 1);
	/* Many sessions, each kept. */
	for (int i = 0; i < 8; i++) {
		snprintf(sid, sizeof sid, "s%d", i);
		a.session = sid;
		assert_int_equal(next_w(&f->ctx, &a), i % 4 + 1);
	}
}

/* ----------------------------------------------------------- geo, db */

static void
test_db_geo(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "geo", NULL, "DE", NULL, NULL, 0 };
	struct log_cap	 lc;
	long		 counts[5];
	static const char *const strategies[] = { "geo", "round-robin",
	    "random", "weighted", "least-used", "performance" };

	add(&f->ctx, "http://127.0.0.1:1", "DE", "berlin", -1, 0);
	add(&f->ctx, "http://127.0.0.1:2", "US", "ca", -1, 0);
	add(&f->ctx, "http://127.0.0.1:3", "DE", "hamburg", -1, 0);
	add(&f->ctx, "http://127.0.0.1:4", "US", "ny", -1, 0);
	add(&f->ctx, "http://127.0.0.1:5", NULL, NULL, -1, 0);
	/* Every strategy, filtered: 100% of picks match. */
	for (size_t i = 0; i < sizeof strategies / sizeof strategies[0];
	    i++) {
		w.strategy = strategies[i];
		db_tally(&f->ctx, &w, 5, 200, counts);
		assert_int_equal(counts[1] + counts[3] + counts[4], 0);
		assert_true(counts[0] > 0 && counts[2] > 0);
	}
	w.strategy = "geo";
	w.country = NULL;
	w.region = "ny";
	for (int i = 0; i < 10; i++)
		assert_int_equal(next_w(&f->ctx, &w), 4);
	w.country = "US";
	w.region = "berlin";
	assert_int_equal(next_w(&f->ctx, &w), PW_ENOPROXY);
	assert_string_equal(f->ctx.err.msg, "no eligible proxy: 5 in pool, 0 "
	    "matching, 0 unhealthy, 0 cooling down, 0 expired");
	w.country = "FR";
	w.region = NULL;
	assert_int_equal(next_w(&f->ctx, &w), PW_ENOPROXY);
	assert_string_equal(f->ctx.err.msg, "no eligible proxy: 5 in pool, 0 "
	    "matching, 0 unhealthy, 0 cooling down, 0 expired");
	/* The counts are of the matching proxies. */
	w.country = "DE";
	for (int i = 0; i < 3; i++)
		report(&f->ctx, 1, PW_REPORT_FAIL, -1);
	for (int i = 0; i < 3; i++)
		report(&f->ctx, 2, PW_REPORT_FAIL, -1);
	w.exclude = (int64_t[]){ 3 };
	w.nexclude = 1;
	assert_int_equal(next_w(&f->ctx, &w), PW_ENOPROXY);
	assert_string_equal(f->ctx.err.msg, "no eligible proxy: 5 in pool, 2 "
	    "matching, 0 unhealthy, 1 cooling down, 0 expired, 1 excluded");

	/* geo.fallback: any region when nothing matches, and it says so. */
	flag(&f->ctx, "geo.fallback", "true");
	w.country = "FR";
	w.nexclude = 0;
	memset(&lc, 0, sizeof lc);
	pw_log_set(log_cap, &lc, PW_LOG_INFO);
	db_tally(&f->ctx, &w, 5, 50, counts);
	pw_log_set(NULL, NULL, 0);
	assert_int_equal(counts[0] + counts[1], 0);	/* cooling down */
	assert_true(counts[2] > 0 && counts[3] > 0 && counts[4] > 0);
	assert_true(lc.n > 0);
	/* A match is still preferred when there is one. */
	w.country = "DE";
	for (int i = 0; i < 10; i++)
		assert_int_equal(next_w(&f->ctx, &w), 3);
	/* And with nothing eligible at all it is still exit 3. */
	w.country = "FR";
	w.exclude = (int64_t[]){ 3, 4, 5 };
	w.nexclude = 3;
	assert_int_equal(next_w(&f->ctx, &w), PW_ENOPROXY);
	assert_string_equal(f->ctx.err.msg, "no eligible proxy: 5 in pool, 0 "
	    "unhealthy, 2 cooling down, 0 expired, 3 excluded");
}

/* ------------------------------------------------ moving the clock */

/*
 * A step of a scenario, run in a child process whose clock reads `now`:
 * it opens the state file, does one thing and reports a number back.
 */
typedef int64_t step_fn(struct pw_ctx *ctx, const void *arg);

struct step_out {
	int64_t	v;
	char	msg[sizeof ((struct pw_err *)0)->msg];
};

static struct step_out
at(const char *path, int64_t now, step_fn *fn, const void *arg)
{
	struct step_out	 out;
	struct pw_ctx	 ctx;
	char		 t[32];
	int		 fd[2], status;
	pid_t		 pid;

	memset(&out, 0, sizeof out);
	if (pipe(fd) != 0)
		fail_msg("pipe");
	fflush(NULL);
	if ((pid = fork()) < 0)
		fail_msg("fork");
	if (pid == 0) {
		close(fd[0]);
		snprintf(t, sizeof t, "%lld", (long long)now);
		setenv("PW_NOW", t, 1);
		if (pw_now() != now)
			_exit(90);	/* the parent read the clock first */
		memset(&ctx, 0, sizeof ctx);
		if (pw_open(&ctx, path, PW_OPEN_RW) != 0) {
			out.v = -1000;
		} else {
			pw_rng_seed(&ctx.rng, SEED);
			ctx.rng_seeded = 1;
			out.v = fn(&ctx, arg);
		}
		snprintf(out.msg, sizeof out.msg, "%s", ctx.err.msg);
		pw_close(&ctx);
		if (write(fd[1], &out, sizeof out) != (ssize_t)sizeof out)
			_exit(91);
		_exit(0);
	}
	close(fd[1]);
	if (read(fd[0], &out, sizeof out) != (ssize_t)sizeof out)
		out.v = -2000;
	close(fd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		fail_msg("step at %lld: child status %d%s", (long long)now,
		    status, WIFEXITED(status) && WEXITSTATUS(status) == 90 ?
		    " (clock read before the fork)" : "");
	if (out.v == -1000)
		fail_msg("step at %lld: open: %s", (long long)now, out.msg);
	return out;
}

struct add_arg {
	const char	*url;
	int64_t		 ttl;
};

/* Steps run in the child: no cmocka assertion there, only codes. */
static int64_t
step_add(struct pw_ctx *ctx, const void *arg)
{
	const struct add_arg	*a = arg;
	struct pw_meta		 m = { NULL, NULL, NULL, -1, a->ttl };
	struct pw_addr		 addr;
	int64_t			 id = -1;
	int			 res = -1, r;

	if ((r = pw_addr_parse(a->url, &addr, &ctx->err)) != 0)
		return r;
	r = pw_pool_add(ctx, &addr, 1, &m, &res, &id);
	pw_addr_release(&addr);
	return r != 0 ? r : res == PW_ADDED ? id : -100;
}

static int64_t
step_next(struct pw_ctx *ctx, const void *arg)
{
	return next_w(ctx, arg);
}

static int64_t
step_fail(struct pw_ctx *ctx, const void *arg)
{
	return pw_pool_report(ctx, *(const int64_t *)arg, PW_REPORT_FAIL,
	    -1);
}

/* The live session's proxy id * 1000 + its request count; 0: none. */
static int64_t
step_session(struct pw_ctx *ctx, const void *arg)
{
	struct session_rec	r;
	int			rc;

	memset(&r, 0, sizeof r);
	r.id = arg;
	if ((rc = pw_session_each(ctx, session_find, &r)) != 0)
		return rc;
	return r.found ? r.s.proxy_id * 1000 + r.s.requests : 0;
}

static int64_t
at_next(struct fix *f, int64_t now, const struct want *w)
{
	return at(f->path, now, step_next, w).v;
}

static void
test_time_cooldown_ends(void **state)
{
	struct fix	*f = *state;
	struct want	 rr = { "round-robin", NULL, NULL, NULL, NULL, 0 };
	struct want	 only2 = { "round-robin", NULL, NULL, NULL,
			     (int64_t[]){ 1, 3 }, 2 };
	struct add_arg	 a[3] = { { "http://127.0.0.1:1", 0 },
			     { "http://127.0.0.1:2", 0 },
			     { "http://127.0.0.1:3", 0 } };
	struct step_out	 o;
	int64_t		 two = 2;

	for (int i = 0; i < 3; i++)
		assert_int_equal(at(f->path, T0, step_add, &a[i]).v, i + 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(at(f->path, T0, step_fail, &two).v, 0);
	assert_int_equal(at_next(f, T0, &rr), 1);
	assert_int_equal(at_next(f, T0 + 1, &rr), 3);
	assert_int_equal(at_next(f, T0 + 2, &rr), 1);
	o = at(f->path, T0 + 299, step_next, &only2);
	assert_int_equal(o.v, PW_ENOPROXY);
	assert_string_equal(o.msg, "no eligible proxy: 3 in pool, 0 "
	    "unhealthy, 1 cooling down, 0 expired, 2 excluded");
	/* pool.cooldown is 5m: at T0 + 300 it is back. */
	assert_int_equal(at_next(f, T0 + 300, &only2), 2);
	assert_int_equal(at_next(f, T0 + 300, &rr), 3);
	assert_int_equal(at_next(f, T0 + 300, &rr), 1);
	assert_int_equal(at_next(f, T0 + 300, &rr), 2);
	/*
	 * Still failing after the cooldown: the run of failures goes on,
	 * so one more puts it straight back (a success would clear it).
	 */
	assert_int_equal(at(f->path, T0 + 301, step_fail, &two).v, 0);
	o = at(f->path, T0 + 301, step_next, &only2);
	assert_int_equal(o.v, PW_ENOPROXY);
	assert_int_equal(at_next(f, T0 + 601, &only2), 2);
}

static void
test_time_expiry(void **state)
{
	struct fix	*f = *state;
	struct want	 w = { "round-robin", NULL, NULL, NULL, NULL, 0 };
	struct want	 not2 = { "round-robin", NULL, NULL, NULL,
			     (int64_t[]){ 2 }, 1 };
	struct add_arg	 a = { "http://127.0.0.1:1", 60 };
	struct add_arg	 b = { "http://127.0.0.1:2", 0 };
	struct step_out	 o;

	assert_int_equal(at(f->path, T0, step_add, &a).v, 1);
	assert_int_equal(at(f->path, T0, step_add, &b).v, 2);
	assert_int_equal(at_next(f, T0 + 59, &not2), 1);
	o = at(f->path, T0 + 60, step_next, &not2);
	assert_int_equal(o.v, PW_ENOPROXY);
	assert_string_equal(o.msg, "no eligible proxy: 2 in pool, 0 "
	    "unhealthy, 0 cooling down, 1 expired, 1 excluded");
	for (int i = 0; i < 4; i++)
		assert_int_equal(at_next(f, T0 + 60 + i, &w), 2);
	w.strategy = "random";
	for (int i = 0; i < 4; i++)
		assert_int_equal(at_next(f, T0 + 100, &w), 2);
}

static void
test_time_session_ttl(void **state)
{
	struct fix	*f = *state;
	struct want	 s = { "sticky", "s", NULL, NULL, NULL, 0 };
	struct add_arg	 a[3] = { { "http://127.0.0.1:1", 0 },
			     { "http://127.0.0.1:2", 0 },
			     { "http://127.0.0.1:3", 0 } };

	for (int i = 0; i < 3; i++)
		assert_int_equal(at(f->path, T0, step_add, &a[i]).v, i + 1);
	assert_int_equal(at_next(f, T0, &s), 1);
	assert_int_equal(at(f->path, T0, step_session, "s").v, 1001);
	/* session.ttl is 30m of idleness: each use extends it. */
	assert_int_equal(at_next(f, T0 + 1799, &s), 1);
	assert_int_equal(at_next(f, T0 + 3598, &s), 1);
	assert_int_equal(at(f->path, T0 + 5397, step_session, "s").v, 1003);
	/* Idle for the TTL: gone from the list, and a new proxy. */
	assert_int_equal(at(f->path, T0 + 5398, step_session, "s").v, 0);
	assert_int_equal(at_next(f, T0 + 5398, &s), 2);
	assert_int_equal(at(f->path, T0 + 5398, step_session, "s").v, 2001);
	assert_int_equal(at_next(f, T0 + 5399, &s), 2);
}

static void
test_time_least_used_window(void **state)
{
	struct fix	*f = *state;
	struct want	 lu = { "least-used", NULL, NULL, NULL, NULL, 0 };
	struct add_arg	 a[3] = { { "http://127.0.0.1:1", 0 },
			     { "http://127.0.0.1:2", 0 },
			     { "http://127.0.0.1:3", 0 } };

	for (int i = 0; i < 3; i++)
		assert_int_equal(at(f->path, T0, step_add, &a[i]).v, i + 1);
	/* counts 2, 2, 1 in the window that starts at T0 */
	for (int i = 0; i < 5; i++)
		assert_int_equal(at_next(f, T0 + i, &lu), i % 3 + 1);
	/* strategy.window is 1h: still the same window ... */
	assert_int_equal(at_next(f, T0 + 3599, &lu), 3);
	assert_int_equal(at_next(f, T0 + 3599, &lu), 1);
	/* ... counts 3, 2, 2; a new window starts from zero. */
	assert_int_equal(at_next(f, T0 + 3600, &lu), 1);
	assert_int_equal(at_next(f, T0 + 3601, &lu), 2);
	assert_int_equal(at_next(f, T0 + 3602, &lu), 3);
	assert_int_equal(at_next(f, T0 + 3603, &lu), 1);
}

int
main(void)
{
	/*
	 * These move the clock: they run first, before anything in this
	 * process has read it (see at()).
	 */
	const struct CMUnitTest clock_tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, fix_new, fix_free)
		T(test_time_cooldown_ends),
		T(test_time_expiry),
		T(test_time_session_ttl),
		T(test_time_least_used_window),
#undef T
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rng_seeded),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_pick_nothing),
		cmocka_unit_test(test_round_robin_order),
		cmocka_unit_test(test_round_robin_even),
		cmocka_unit_test(test_random_uniform),
		cmocka_unit_test(test_random_checker_fails_biased),
		cmocka_unit_test(test_weighted_proportional),
		cmocka_unit_test(test_weighted_zero_never),
		cmocka_unit_test(test_weighted_success_rate),
		cmocka_unit_test(test_weighted_uniform_fallback),
		cmocka_unit_test(test_least_used_min_and_tie),
		cmocka_unit_test(test_least_used_spread),
		cmocka_unit_test(test_performance_inverse_latency),
		cmocka_unit_test(test_performance_unmeasured_first),
		cmocka_unit_test(test_performance_no_data_no_fallback),
		cmocka_unit_test(test_performance_cuts_latency),
		cmocka_unit_test(test_sample_distributions),
		cmocka_unit_test(test_sample_declines),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, fix_free)
		T(test_db_cursor_persists),
		T(test_db_round_robin_even),
		T(test_db_cursor_per_filter),
		T(test_db_exclude),
		T(test_db_empty_pool),
		T(test_db_bad_strategy),
		T(test_db_cooldown),
		T(test_db_threshold_setting),
		T(test_db_report),
		T(test_db_random_uniform),
		T(test_db_weighted),
		T(test_db_weighted_note),
		T(test_db_weighted_success_rate),
		T(test_db_performance),
		T(test_db_performance_fallbacks),
		T(test_db_least_used),
		T(test_db_sticky_same_proxy),
		T(test_db_sticky_failover),
		T(test_db_sticky_inner_strategy),
		T(test_db_geo),
#undef T
	};
	int	failed;

	failed = cmocka_run_group_tests_name("strategy: moving the clock",
	    clock_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("strategy", tests, NULL, NULL);
	return failed != 0;
}
