/* out-of-range.c -- a plugin that returns an index it was not given. */
#include <pw/pw-strategy.h>

static long
select_past_end(const struct pw_candidate *c, size_t n,
    struct pw_pick_env *e)
{
	(void)c;
	(void)e;
	return (long)n;
}

static const struct pw_strategy oor = {
	PW_STRATEGY_ABI, "out-of-range", "returns n", select_past_end
};

const struct pw_strategy *pw_strategy_plugin(void);

const struct pw_strategy *
pw_strategy_plugin(void)
{
	return &oor;
}
