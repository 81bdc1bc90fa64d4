/*
 * pw-strategy.h -- the ABI of a pw selection-strategy plugin.
 *
 * A plugin is a shared object that pw loads with dlopen(3), from
 * "pw pool next --strategy-plugin PATH" or the strategy.plugins setting.
 * It exports one function:
 *
 *	const struct pw_strategy *pw_strategy_plugin(void);
 *
 * returning a pointer to a static struct pw_strategy whose abi field is
 * PW_STRATEGY_ABI. pw refuses a plugin without that symbol, with another
 * ABI version, without a name or select function, or whose name is a
 * built-in strategy's.
 *
 * pw has already removed every proxy that may not be used (unhealthy,
 * cooling down, expired, excluded, filtered out) and hands select the
 * rest, sorted by id. select returns the index of its choice, or -1 to
 * decline (pw then reports that no proxy is eligible). It must not keep
 * pointers into the array after it returns, must not block, and is called
 * from one thread at a time. This header is all a plugin needs: it does
 * not link against libpw.
 */
#ifndef PW_STRATEGY_H
#define PW_STRATEGY_H

#include <stddef.h>
#include <stdint.h>

#define PW_STRATEGY_ABI	1

/* What a strategy sees of one eligible proxy. */
struct pw_candidate {
	int64_t		 id;
	double		 weight;	/* set with --weight; < 0: unset */
	double		 latency_ms;	/* EMA of observed latency; < 0: none */
	int64_t		 started;	/* requests started, ever */
	int64_t		 succeeded;
	int64_t		 failed;
	int64_t		 window_count;	/* started in the current window */
};

/* What pw gives select besides the candidates. */
struct pw_pick_env {
	/* Uniform 64-bit random numbers: env->random(env->rng). */
	uint64_t	(*random)(void *rng);
	void		 *rng;
	/*
	 * The id this strategy picked last time with the same filters, in
	 * any process; 0 when none. pw stores the new choice after select.
	 */
	int64_t		  cursor;
	/* select may point this at a static string for verbose output. */
	const char	 *note;
};

struct pw_strategy {
	int		  abi;		/* PW_STRATEGY_ABI */
	const char	 *name;		/* [a-z0-9_-], at most 32 bytes */
	const char	 *summary;	/* one line for help */
	long		(*select)(const struct pw_candidate *c, size_t n,
			    struct pw_pick_env *env);
};

typedef const struct pw_strategy *pw_strategy_plugin_fn(void);

#endif /* PW_STRATEGY_H */
