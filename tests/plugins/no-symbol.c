/* no-symbol.c -- a shared object without pw_strategy_plugin: refused. */
int not_a_plugin(void);

int
not_a_plugin(void)
{
	return 42;
}
