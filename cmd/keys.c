/*
 * keys.c -- "pw serve keys": the API keys pw serve asks requests for.
 * A verb group of pw serve (cmd_serve_keys_entry, in serve's table).
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static int
keys_add(struct pw_cmdctx *cc)
{
	const char	*name = cc->args->argv[0];
	char		*key = NULL;
	int		 r;

	if ((r = pw_apikey_add(cc->ctx, name, arg_get(cc->args, "tier"),
	    &key)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	/* The only time the key is ever shown. */
	printf("%s\n", key);
	pw_secret_free(key);
	if (!cc->quiet)
		fprintf(stderr, "pw: %s: key '%s' made: keep it now, it "
		    "cannot be shown again\n", cc->path, name);
	return 0;
}

static const struct out_col key_cols[] = {
	{ "name", COL_STR, 1 },
	{ "tier", COL_STR, 1 },
	{ "created", COL_TIME, 1 },
	{ "last_used", COL_TIME, 1 },
};
#define NKEY_COLS ((int)(sizeof key_cols / sizeof key_cols[0]))

static int
keys_ls_one(void *arg, const struct pw_apikey *k)
{
	char		 t[2][32];
	const char	*v[NKEY_COLS];

	snprintf(t[0], sizeof t[0], "%lld", (long long)k->created_at);
	snprintf(t[1], sizeof t[1], "%lld", (long long)k->last_used);
	v[0] = k->name;
	v[1] = k->tier;
	v[2] = t[0];
	v[3] = k->last_used != 0 ? t[1] : NULL;
	out_row(arg, v);
	return 0;
}

static int
keys_ls(struct pw_cmdctx *cc)
{
	struct out	*o = out_new(cc->fmt, key_cols, NKEY_COLS, cc->color);
	int		 r;

	r = pw_apikey_each(cc->ctx, keys_ls_one, o);
	out_free(o);
	return r != 0 ? pw_err_prefix(&cc->ctx->err, "%s", cc->path) : 0;
}

static int
keys_rm(struct pw_cmdctx *cc)
{
	if (pw_apikey_remove(cc->ctx, cc->args->argv[0]) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	return 0;
}

static const struct pw_opt add_optv[] = {
	{ "tier", 't', "TIER", 0, "the key's rate-limit tier (default: the "
	  "tier named default)" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_cmd keys_add_entry = {
	"add", "make an API key and print it, once", "NAME [--tier TIER]",
	add_optv, 1, 1, CMD_STORE_RW, keys_add, NULL
};
static const struct pw_cmd keys_ls_entry = {
	"ls", "list the API keys (never the keys themselves)", "[options]",
	NULL, 0, 0, CMD_STORE_RO | CMD_OUTPUT, keys_ls, NULL
};
static const struct pw_cmd keys_rm_entry = {
	"rm", "revoke an API key", "NAME", NULL,
	1, 1, CMD_STORE_RW, keys_rm, NULL
};

static const struct pw_cmd *const keys_verbs[] = {
	&keys_add_entry,
	&keys_ls_entry,
	&keys_rm_entry,
	NULL
};

const struct pw_cmd cmd_serve_keys_entry = {
	"keys", "manage the API keys of pw serve", "VERB [options] [ARGS]",
	NULL, 0, -1, 0, NULL, keys_verbs
};
