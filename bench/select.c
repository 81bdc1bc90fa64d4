/*
 * select.c -- in-process cost of one selection, per strategy, at 10,
 * 1,000 and 10,000 candidates, beside the cost of one rng draw (the
 * floor any strategy pays) measured in the same run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../lib/pw.h"

static double
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int
main(void)
{
	static const char *const names[] = { "round-robin", "random",
	    "weighted", "least-used", "performance" };
	static const size_t	 sizes[] = { 10, 1000, 10000 };
	struct pw_rng		 rng;
	struct pw_pick_env	 env = { pw_rng_next, &rng, 0, NULL };
	struct pw_err		 err;
	volatile uint64_t	 sink = 0;
	double			 t0, base;
	long			 iters = 2000000;

	pw_rng_seed(&rng, 42);
	t0 = now_ns();
	for (long k = 0; k < iters; k++)
		sink += pw_rng_next(&rng);
	base = (now_ns() - t0) / iters;

	for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
		size_t n = sizes[z];
		struct pw_candidate *c = calloc(n, sizeof *c);
		for (size_t i = 0; i < n; i++) {
			c[i].id = (int64_t)i + 1;
			c[i].weight = (double)(i % 7 + 1);
			c[i].latency_ms = 20.0 + (double)(i % 50) * 10;
			c[i].started = c[i].window_count = (int64_t)(i % 13);
			c[i].succeeded = (int64_t)(i % 5);
			c[i].failed = (int64_t)(i % 3);
		}
		for (size_t s = 0; s < sizeof names / sizeof names[0]; s++) {
			const struct pw_strategy *st =
			    pw_strategy_builtin(names[s]);
			long reps = n >= 10000 ? 20000 : 200000, i = 0;
			t0 = now_ns();
			for (long k = 0; k < reps; k++) {
				i = pw_strategy_pick(st, NULL, c, n, &env,
				    &err);
				env.cursor = c[i].id;
			}
			double per = (now_ns() - t0) / reps;
			printf("select %-12s %6zu proxies %12.1f ns   rng draw "
			    "%8.1f ns   %8.1fx\n", names[s], n, per, base,
			    per / base);
		}
		free(c);
	}
	return sink == 1;	/* keep the draws */
}
