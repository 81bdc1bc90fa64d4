/* bad-abi.c -- a plugin built for an ABI pw does not speak: refused. */
#include <pw/pw-strategy.h>

static long
select_first(const struct pw_candidate *c, size_t n, struct pw_pick_env *e)
{
	(void)c;
	(void)e;
	return n > 0 ? 0 : -1;
}

static const struct pw_strategy bad = {
	PW_STRATEGY_ABI + 41, "bad-abi", "wrong ABI version", select_first
};

const struct pw_strategy *pw_strategy_plugin(void);

const struct pw_strategy *
pw_strategy_plugin(void)
{
	return &bad;
}
