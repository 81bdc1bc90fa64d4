/*
 * fewest-failures.c -- a sample pw strategy plugin: the eligible proxy
 * with the fewest failed requests, the lowest id breaking a tie.
 *
 *	cc -shared -fPIC -I/usr/local/include -o fewest-failures.so \
 *	    fewest-failures.c
 *	pw pool next --strategy-plugin ./fewest-failures.so
 */
#include <pw/pw-strategy.h>

static long
select_fewest(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *env)
{
	size_t	best = 0;

	(void)env;
	if (n == 0)
		return -1;
	for (size_t i = 1; i < n; i++)
		if (c[i].failed < c[best].failed)
			best = i;
	return (long)best;
}

static const struct pw_strategy fewest = {
	PW_STRATEGY_ABI, "fewest-failures",
	"the proxy with the fewest failed requests", select_fewest
};

const struct pw_strategy *pw_strategy_plugin(void);

const struct pw_strategy *
pw_strategy_plugin(void)
{
	return &fewest;
}
