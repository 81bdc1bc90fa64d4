/*
 * pw.c -- global options, the command table and dispatch.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

static const struct pw_cmd *const commands[] = {
	&cmd_fetch_entry,
	&cmd_health_entry,
	&cmd_pool_entry,
	&cmd_config_entry,
	&cmd_cache_entry,
	&cmd_serve_entry,
	NULL
};

static const struct pw_opt common_opts[] = {
	{ "state", 0, "FILE", 0, "state file (default $PW_STATE, then "
	  "$XDG_STATE_HOME/pw/state.db)" },
	{ "show-secrets", 0, NULL, 0, "show proxy credentials in clear" },
	{ "no-color", 0, NULL, 0, "no colour, even on a terminal" },
	{ "quiet", 'q', NULL, 0, "say less" },
	{ "verbose", 'v', NULL, OPT_REPEAT, "say more (twice: debug)" },
	{ "help", 'h', NULL, 0, "show this help" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt output_opts[] = {
	{ "json", 0, NULL, 0, "output a JSON array or object" },
	{ "jsonl", 0, NULL, 0, "output one JSON object a line" },
	{ "csv", 0, NULL, 0, "output CSV with a header row" },
	{ "plain", 0, NULL, 0, "output tab-separated lines (default when "
	  "not a terminal)" },
	{ "table", 0, NULL, 0, "output an aligned table (default on a "
	  "terminal)" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt global_only_opts[] = {
	{ "config", 'c', "KEY=VALUE", OPT_REPEAT, "set a config value for "
	  "this run" },
	{ "version", 'V', NULL, 0, "print the version" },
	{ NULL, 0, NULL, 0, NULL }
};

static const char exit_codes_help[] =
    "exit status:\n"
    "  0   success\n"
    "  1   error\n"
    "  2   usage error (bad option, argument or value)\n"
    "  3   no eligible proxy\n"
    "  4   every proxy tried failed\n"
    "  5   target error\n"
    "  75  busy: a lock is held by another run\n";

static int	verbosity;

static void
log_stderr(void *arg, int level, const char *msg)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "" };

	(void)arg;
	fprintf(stderr, "pw: %s%s\n", prefix[level], msg);
}

int
cmd_usagef(struct pw_cmdctx *cc, const char *fmt, ...)
{
	char	msg[400];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return pw_failf(&cc->ctx->err, PW_EUSAGE, "%s: %s", cc->path, msg);
}

int
cmd_int_opt(struct pw_cmdctx *cc, const char *lname, int64_t min,
    int64_t max, int64_t *out)
{
	const char	*v = arg_get(cc->args, lname);

	if (v == NULL)
		return 0;
	if (pw_parse_int(v, min, max, out) != 0)
		return cmd_usagef(cc, "--%s: '%s': want an integer from %lld "
		    "to %lld", lname, v, (long long)min, (long long)max);
	return 0;
}

/* Exit status of a library code; positive values are exit statuses. */
int
cmd_exit_status(int r)
{
	if (r >= 0)
		return r;
	switch (r) {
	case PW_EUSAGE:		return 2;
	case PW_ENOPROXY:	return 3;
	case PW_EALLFAILED:	return 4;
	case PW_ETARGET:	return 5;
	case PW_EBUSY:
	case PW_ERATE:		return 75;
	default:		return 1;
	}
}

/* Restricted Damerau-Levenshtein distance, for "did you mean". */
static int
distance(const char *a, const char *b)
{
	int	la = strlen(a), lb = strlen(b);
	int	d[32][32];

	if (la > 30 || lb > 30)
		return 99;
	for (int i = 0; i <= la; i++)
		d[i][0] = i;
	for (int j = 0; j <= lb; j++)
		d[0][j] = j;
	for (int i = 1; i <= la; i++) {
		for (int j = 1; j <= lb; j++) {
			int c = a[i - 1] != b[j - 1];
			int v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + c < v)
				v = d[i - 1][j - 1] + c;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

/*
 * Find name in table: an exact match, else a unique prefix. On failure
 * print why (ambiguous, or unknown with suggestions) and return NULL.
 */
static const struct pw_cmd *
lookup(const struct pw_cmd *const *table, const char *name, const char *what)
{
	const struct pw_cmd	*found = NULL;
	size_t			 n = strlen(name);
	int			 matches = 0, best = 99;
	struct pw_buf		 b;

	for (int i = 0; table[i] != NULL; i++) {
		if (strcmp(table[i]->name, name) == 0)
			return table[i];
		if (n > 0 && strncmp(table[i]->name, name, n) == 0 &&
		    !(table[i]->flags & CMD_HIDDEN)) {
			found = table[i];
			matches++;
		}
	}
	if (matches == 1)
		return found;
	pw_buf_init(&b);
	if (matches > 1) {
		for (int i = 0; table[i] != NULL; i++)
			if (strncmp(table[i]->name, name, n) == 0 &&
			    !(table[i]->flags & CMD_HIDDEN))
				pw_buf_addf(&b, "%s%s", b.len ? ", " : "",
				    table[i]->name);
		fprintf(stderr, "pw: %s: ambiguous %s, could be: %s\n", name,
		    what, b.data);
		pw_buf_release(&b);
		return NULL;
	}
	for (int i = 0; table[i] != NULL; i++) {
		int d = distance(name, table[i]->name);
		if (!(table[i]->flags & CMD_HIDDEN) && d < best)
			best = d;
	}
	for (int i = 0; table[i] != NULL && best <= 2; i++)
		if (!(table[i]->flags & CMD_HIDDEN) &&
		    distance(name, table[i]->name) == best)
			pw_buf_addf(&b, "%s'%s'", b.len ? " or " : "",
			    table[i]->name);
	if (b.len > 0)
		fprintf(stderr, "pw: %s: unknown %s; did you mean %s?\n", name,
		    what, b.data);
	else
		fprintf(stderr, "pw: %s: unknown %s (see 'pw --help')\n", name,
		    what);
	pw_buf_release(&b);
	return NULL;
}

static void
help_opts(FILE *f, const struct pw_opt *opts)
{
	for (; opts != NULL && opts->lname != NULL; opts++) {
		char left[64];

		if (opts->flags & OPT_HIDDEN)
			continue;
		snprintf(left, sizeof left, "%s%c%s--%s%s%s",
		    opts->sname ? "-" : "  ", opts->sname ? opts->sname : ' ',
		    opts->sname ? ", " : " ", opts->lname,
		    opts->arg ? " " : "", opts->arg ? opts->arg : "");
		if (strlen(left) > 24)
			fprintf(f, "  %s\n  %-24s  %s\n", left, "", opts->help);
		else
			fprintf(f, "  %-24s  %s\n", left, opts->help);
	}
}

static void
help_cmd(FILE *f, const char *path, const struct pw_cmd *c)
{
	fprintf(f, "usage: pw %s %s\n\n%s.\n", path, c->usage, c->summary);
	if (c->sub != NULL) {
		fprintf(f, "\nverbs:\n");
		for (int i = 0; c->sub[i] != NULL; i++)
			if (!(c->sub[i]->flags & CMD_HIDDEN))
				fprintf(f, "  %-10s  %s\n", c->sub[i]->name,
				    c->sub[i]->summary);
		fprintf(f, "\nSee 'pw help %s VERB' for one verb.\n", path);
		/* A command that runs itself has options of its own too. */
		if (c->exec == NULL)
			return;
	}
	if (c->opts != NULL && c->opts->lname != NULL) {
		fprintf(f, "\noptions:\n");
		help_opts(f, c->opts);
	}
	if (c->flags & CMD_OUTPUT) {
		fprintf(f, "\noutput:\n");
		help_opts(f, output_opts);
	}
	fprintf(f, "\ncommon options:\n");
	help_opts(f, common_opts);
}

static void
help_main(FILE *f)
{
	fprintf(f, "usage: pw [-c KEY=VALUE] [--state FILE] COMMAND [ARGS]\n\n"
	    "pw keeps a pool of HTTP and SOCKS proxies in one state file and "
	    "picks,\nchecks and fetches through them.\n\ncommands:\n");
	for (int i = 0; commands[i] != NULL; i++)
		if (!(commands[i]->flags & CMD_HIDDEN))
			fprintf(f, "  %-8s  %s\n", commands[i]->name,
			    commands[i]->summary);
	fprintf(f, "  %-8s  %s\n", "help", "show help for a command");
	fprintf(f, "\nglobal options:\n");
	help_opts(f, global_only_opts);
	help_opts(f, common_opts);
	fprintf(f, "\n%s\nSee 'pw help COMMAND' or man pw-COMMAND.\n",
	    exit_codes_help);
}

/* "pw help [COMMAND [VERB...]]" */
static int
run_help(int argc, char **argv)
{
	const struct pw_cmd	*c;
	char			 path[128];
	size_t			 n;

	if (argc == 0) {
		help_main(stdout);
		return 0;
	}
	if ((c = lookup(commands, argv[0], "command")) == NULL)
		return 2;
	snprintf(path, sizeof path, "%s", c->name);
	for (int i = 1; i < argc && c->sub != NULL; i++) {
		if ((c = lookup(c->sub, argv[i], "verb")) == NULL)
			return 2;
		n = strlen(path);
		snprintf(path + n, sizeof path - n, " %s", c->name);
	}
	help_cmd(stdout, path, c);
	return 0;
}

/* "pw __dump": the command table, for completions and the docs check. */
static void
dump_opts(const char *path, const struct pw_opt *opts)
{
	for (; opts != NULL && opts->lname != NULL; opts++) {
		char	sname[3] = { '-', (char)opts->sname, '\0' };

		if (!(opts->flags & OPT_HIDDEN))
			printf("option\t%s\t--%s\t%s\t%s\t%s\n", path,
			    opts->lname, opts->sname ? sname : "",
			    opts->arg ? opts->arg : "", opts->help);
	}
}

static void
dump_cmd(const char *path, const struct pw_cmd *c)
{
	printf("command\t%s\t%s\n", path, c->summary);
	if (c->sub != NULL) {
		for (int i = 0; c->sub[i] != NULL; i++) {
			char sub[128];
			if (c->sub[i]->flags & CMD_HIDDEN)
				continue;
			snprintf(sub, sizeof sub, "%s %s", path,
			    c->sub[i]->name);
			dump_cmd(sub, c->sub[i]);
		}
		if (c->exec == NULL)
			return;
	}
	dump_opts(path, c->opts);
	if (c->flags & CMD_OUTPUT)
		dump_opts(path, output_opts);
	dump_opts(path, common_opts);
}

static int
run_dump(void)
{
	for (int i = 0; commands[i] != NULL; i++)
		if (!(commands[i]->flags & CMD_HIDDEN))
			dump_cmd(commands[i]->name, commands[i]);
	dump_opts("", global_only_opts);
	dump_opts("", common_opts);
	return 0;
}

/* "pw __routes": the router of pw serve, for the OpenAPI check. */
static int
run_routes(void)
{
	const char	*path, *method;
	int		 open;

	for (size_t i = 0; (path = pw_serve_route(i, &method, &open)) != NULL;
	    i++)
		printf("%s\t%s\t%s\n", method, path, open ? "open" : "key");
	return 0;
}

struct globals {
	char		**configs;
	int		  nconfigs;
	const char	 *state;
	int		  quiet, no_color, show_secrets;
};

static int
run_command(const struct pw_cmd *c, int argc, char **argv,
    struct globals *g)
{
	const struct pw_opt	**opts;
	struct pw_args		  args;
	struct pw_ctx		  ctx;
	struct pw_cmdctx	  cc;
	const struct pw_cmd	 *verb = c;
	char			  path[128];
	int			  n = 0, r, mode;

	memset(&ctx, 0, sizeof ctx);
	memset(&cc, 0, sizeof cc);
	snprintf(path, sizeof path, "%s", c->name);
	argc--;
	argv++;
	/*
	 * Down the verbs ("pool add", "serve keys add"). A command that
	 * runs itself as well (pw serve) runs when no verb follows it.
	 */
	while (verb->sub != NULL) {
		size_t len = strlen(path);

		if (argc == 0 || argv[0][0] == '-') {
			int help = argc > 0 && (!strcmp(argv[0], "-h") ||
			    !strcmp(argv[0], "--help"));
			if (verb->exec != NULL && !help)
				break;
			if (help) {
				help_cmd(stdout, path, verb);
				return 0;
			}
			fprintf(stderr, "pw: %s: %s (see 'pw help %s')\n",
			    path, argc == 0 ? "a verb is needed" :
			    "the verb comes before options", path);
			help_cmd(stderr, path, verb);
			return 2;
		}
		if ((verb = lookup(verb->sub, argv[0], "verb")) == NULL)
			return 2;
		snprintf(path + len, sizeof path - len, " %s", verb->name);
		argc--;
		argv++;
	}

	opts = pw_xcalloc(64, sizeof *opts);
	for (const struct pw_opt *o = verb->opts; o && o->lname; o++)
		opts[n++] = o;
	if (verb->flags & CMD_OUTPUT)
		for (const struct pw_opt *o = output_opts; o->lname; o++)
			opts[n++] = o;
	for (const struct pw_opt *o = common_opts; o->lname; o++)
		opts[n++] = o;

	cc.ctx = &ctx;
	cc.cmd = verb;
	cc.path = path;
	cc.args = &args;
	if ((r = args_parse(&args, opts, n, argc, argv, &ctx.err)) != 0) {
		pw_err_prefix(&ctx.err, "%s", path);
		goto done;
	}
	if (arg_has(&args, "help")) {
		help_cmd(stdout, path, verb);
		goto done;
	}
	if (args.argc < verb->min_args) {
		r = cmd_usagef(&cc, "missing argument (usage: pw %s %s)", path,
		    verb->usage);
		goto done;
	}
	if (verb->max_args >= 0 && args.argc > verb->max_args) {
		r = cmd_usagef(&cc, "unexpected argument '%s' (usage: pw %s "
		    "%s)", args.argv[verb->max_args], path, verb->usage);
		goto done;
	}

	verbosity += arg_has(&args, "verbose");
	cc.verbose = verbosity;
	cc.quiet = g->quiet || arg_has(&args, "quiet");
	cc.show_secrets = g->show_secrets || arg_has(&args, "show-secrets");
	cc.color = out_isatty() && !g->no_color &&
	    !arg_has(&args, "no-color") && getenv("NO_COLOR") == NULL;
	cc.fmt = out_isatty() ? OUT_TABLE : OUT_PLAIN;
	if (arg_has(&args, "json"))
		cc.fmt = OUT_JSON;
	else if (arg_has(&args, "jsonl"))
		cc.fmt = OUT_JSONL;
	else if (arg_has(&args, "csv"))
		cc.fmt = OUT_CSV;
	else if (arg_has(&args, "plain"))
		cc.fmt = OUT_PLAIN;
	else if (arg_has(&args, "table"))
		cc.fmt = OUT_TABLE;
	pw_log_set(log_stderr, NULL, cc.quiet ? PW_LOG_ERROR :
	    verbosity >= 2 ? PW_LOG_DEBUG : verbosity ? PW_LOG_INFO :
	    PW_LOG_WARN);

	ctx.cfg = pw_config_new();
	if ((r = pw_config_load_env(ctx.cfg, &ctx.err)) != 0)
		goto done;
	for (int i = 0; i < g->nconfigs; i++) {
		char *kv = g->configs[i], *eq = strchr(kv, '=');
		if (eq == NULL) {
			r = pw_failf(&ctx.err, PW_EUSAGE, "-c %s: want "
			    "KEY=VALUE", kv);
			goto done;
		}
		*eq = '\0';
		r = pw_config_set_flag(ctx.cfg, kv, eq + 1, &ctx.err);
		*eq = '=';
		if (r != 0) {
			pw_err_prefix(&ctx.err, "-c");
			goto done;
		}
	}
	cc.state = pw_config_state_path(arg_get(&args, "state") ?
	    arg_get(&args, "state") : g->state);
	mode = verb->flags & CMD_STORE_RW ? PW_OPEN_RW :
	    verb->flags & CMD_STORE_RO ? PW_OPEN_RO : PW_OPEN_NONE;
	if ((r = pw_open(&ctx, cc.state, mode)) != 0)
		goto done;
	r = verb->exec(&cc);
done:
	if (r < 0 && ctx.err.msg[0] != '\0')
		fprintf(stderr, "pw: %s\n", ctx.err.msg);
	if (fflush(stdout) != 0 && r == 0) {
		fprintf(stderr, "pw: stdout: %s\n", strerror(errno));
		r = PW_EFAIL;
	}
	pw_close(&ctx);
	free(cc.state);
	args_free(&args);
	free(opts);
	return cmd_exit_status(r);
}

int
main(int argc, char **argv)
{
	struct globals		 g;
	const struct pw_cmd	*c;
	int			 n, i;

	memset(&g, 0, sizeof g);

	/* Global options end at the first word that is not an option. */
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		const char *s = argv[i];
		if (!strcmp(s, "--version") || !strcmp(s, "-V")) {
			printf("pw %s\n", PW_VERSION);
			return 0;
		}
		if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
			help_main(stdout);
			return 0;
		}
		if (!strcmp(s, "-c") || !strcmp(s, "--config")) {
			if (++i == argc)
				break;
			g.configs = pw_xrealloc(g.configs, (g.nconfigs + 1) *
			    sizeof *g.configs);
			g.configs[g.nconfigs++] = argv[i];
		} else if (!strncmp(s, "-c", 2)) {
			g.configs = pw_xrealloc(g.configs, (g.nconfigs + 1) *
			    sizeof *g.configs);
			g.configs[g.nconfigs++] = argv[i] + 2;
		} else if (!strcmp(s, "--state")) {
			if (++i == argc)
				break;
			g.state = argv[i];
		} else if (!strncmp(s, "--state=", 8))
			g.state = s + 8;
		else if (!strcmp(s, "-v") || !strcmp(s, "--verbose"))
			verbosity++;
		else if (!strcmp(s, "-q") || !strcmp(s, "--quiet"))
			g.quiet = 1;
		else if (!strcmp(s, "--no-color"))
			g.no_color = 1;
		else if (!strcmp(s, "--show-secrets"))
			g.show_secrets = 1;
		else {
			fprintf(stderr, "pw: unknown option '%s' before the "
			    "command (see 'pw --help')\n", s);
			return 2;
		}
	}
	if (i >= argc) {
		help_main(stderr);
		free(g.configs);
		return 2;
	}
	if (!strcmp(argv[i], "help")) {
		free(g.configs);
		return run_help(argc - i - 1, argv + i + 1);
	}
	if (!strcmp(argv[i], "__dump")) {
		free(g.configs);
		return run_dump();
	}
	if (!strcmp(argv[i], "__routes")) {
		free(g.configs);
		return run_routes();
	}
	if ((c = lookup(commands, argv[i], "command")) == NULL) {
		free(g.configs);
		return 2;
	}
	n = run_command(c, argc - i, argv + i, &g);
	free(g.configs);
	return n;
}
