/*
 * args.c -- parse a command's argv against its option table.
 *
 * Accepts --name, --name=value, --name value, -x, -xvalue, -x value,
 * bundled flags (-qv), and "--" to end options. Options and positional
 * arguments may be mixed, as in git and curl.
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static int
find_long(struct pw_args *a, const char *name, size_t n)
{
	for (int i = 0; i < a->nopts; i++)
		if (strlen(a->opts[i]->lname) == n &&
		    strncmp(a->opts[i]->lname, name, n) == 0)
			return i;
	return -1;
}

static int
find_short(struct pw_args *a, int c)
{
	for (int i = 0; i < a->nopts; i++)
		if (a->opts[i]->sname == c)
			return i;
	return -1;
}

/* Option i has value v, given at argv[at]. */
static void
give(struct pw_args *a, int i, const char *v, int at)
{
	int	n = a->count[i]++;

	a->last[i] = v;
	a->all[i] = pw_xrealloc(a->all[i], (n + 2) * sizeof(char *));
	a->all[i][n] = (char *)v;
	a->all[i][n + 1] = NULL;
	a->pos[i] = pw_xrealloc(a->pos[i], (n + 1) * sizeof(int));
	a->pos[i][n] = at;
}

int
args_parse(struct pw_args *a, const struct pw_opt **opts, int nopts,
    int argc, char **argv, struct pw_err *err)
{
	int	i, o, only_args = 0;

	memset(a, 0, sizeof *a);
	a->opts = opts;
	a->nopts = nopts;
	a->last = pw_xcalloc(nopts, sizeof *a->last);
	a->count = pw_xcalloc(nopts, sizeof *a->count);
	a->all = pw_xcalloc(nopts, sizeof *a->all);
	a->pos = pw_xcalloc(nopts, sizeof *a->pos);
	a->argv = pw_xcalloc(argc + 1, sizeof *a->argv);

	for (i = 0; i < argc; i++) {
		char *s = argv[i];

		if (only_args || s[0] != '-' || s[1] == '\0') {
			a->argv[a->argc++] = s;
			continue;
		}
		if (strcmp(s, "--") == 0) {
			only_args = 1;
			continue;
		}
		if (s[1] == '-') {
			const char *name = s + 2, *eq = strchr(name, '=');
			size_t n = eq ? (size_t)(eq - name) : strlen(name);

			if ((o = find_long(a, name, n)) < 0)
				return pw_failf(err, PW_EUSAGE,
				    "unknown option '--%.*s'", (int)n, name);
			if (opts[o]->arg == NULL) {
				if (eq != NULL)
					return pw_failf(err, PW_EUSAGE,
					    "option '--%s' takes no value",
					    opts[o]->lname);
				give(a, o, "", i);
			} else if (eq != NULL)
				give(a, o, eq + 1, i);
			else if (i + 1 < argc) {
				give(a, o, argv[i + 1], i);
				i++;
			}
			else
				return pw_failf(err, PW_EUSAGE,
				    "option '--%s' needs a value",
				    opts[o]->lname);
			if (a->count[o] > 1 && !(opts[o]->flags & OPT_REPEAT) &&
			    opts[o]->arg == NULL)
				a->count[o] = 1;
			continue;
		}
		for (const char *p = s + 1; *p; p++) {
			if ((o = find_short(a, *p)) < 0)
				return pw_failf(err, PW_EUSAGE,
				    "unknown option '-%c'", *p);
			if (opts[o]->arg == NULL) {
				give(a, o, "", i);
				continue;
			}
			if (p[1] != '\0')
				give(a, o, p + 1, i);
			else if (i + 1 < argc) {
				give(a, o, argv[i + 1], i);
				i++;
			}
			else
				return pw_failf(err, PW_EUSAGE, "option '-%c' "
				    "needs a value", *p);
			break;
		}
	}
	return 0;
}

void
args_free(struct pw_args *a)
{
	for (int i = 0; i < a->nopts; i++) {
		free(a->all[i]);
		free(a->pos[i]);
	}
	free(a->all);
	free(a->pos);
	free(a->last);
	free(a->count);
	free(a->argv);
}

static int
index_of(struct pw_args *a, const char *lname)
{
	for (int i = 0; i < a->nopts; i++)
		if (strcmp(a->opts[i]->lname, lname) == 0)
			return i;
	return -1;
}

const char *
arg_get(struct pw_args *a, const char *lname)
{
	int	i = index_of(a, lname);

	return i >= 0 ? a->last[i] : NULL;
}

int
arg_has(struct pw_args *a, const char *lname)
{
	int	i = index_of(a, lname);

	return i >= 0 ? a->count[i] : 0;
}

char **
arg_all(struct pw_args *a, const char *lname, int *n)
{
	int	i = index_of(a, lname);

	*n = i >= 0 ? a->count[i] : 0;
	return i >= 0 ? a->all[i] : NULL;
}

int
arg_pos(struct pw_args *a, const char *lname, int k)
{
	int	i = index_of(a, lname);

	return i >= 0 && k >= 0 && k < a->count[i] ? a->pos[i][k] : -1;
}
