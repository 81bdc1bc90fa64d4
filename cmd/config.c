/*
 * config.c -- "pw config": read and change settings kept in the state file.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"

static int
config_get(struct pw_cmdctx *cc)
{
	const char	*key = cc->args->argv[0], *v;
	char		*canon = NULL;

	if ((v = pw_config_get(cc->ctx, key, NULL)) == NULL) {
		/* Unknown: let the checker word the error, as set does. */
		pw_config_check(key, "", &canon, &cc->ctx->err);
		free(canon);
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	}
	/* Asked for by name: shown as it is, a secret too. */
	printf("%s\n", v);
	return 0;
}

static int
config_set(struct pw_cmdctx *cc)
{
	if (pw_config_store(cc->ctx, cc->args->argv[0], cc->args->argv[1]))
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	return 0;
}

static int
config_unset(struct pw_cmdctx *cc)
{
	if (pw_config_unstore(cc->ctx, cc->args->argv[0]))
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	return 0;
}

static int
config_list(struct pw_cmdctx *cc)
{
	static const struct out_col cols[] = {
		{ "key", COL_STR, 1 },
		{ "value", COL_STR, 1 },
		{ "origin", COL_STR, 1 },
		{ "type", COL_STR, 0 },
		{ "default", COL_STR, 0 },
		{ "description", COL_STR, 0 },
	};
	const struct pw_config_key	*k = pw_config_keys();
	struct out			*o;
	int				 origin;

	o = out_new(cc->fmt, cols, 6, cc->color);
	for (; k->name != NULL; k++) {
		const char *v[6];
		char *shown = NULL;
		v[0] = k->name;
		v[1] = pw_config_get(cc->ctx, k->name, &origin);
		/* A secret is shown only when asked for by name. */
		if (!cc->show_secrets)
			v[1] = shown = pw_config_shown(k->name, v[1]);
		v[2] = pw_origin_name(origin);
		v[3] = k->type;
		v[4] = k->def;
		v[5] = k->help;
		out_row(o, v);
		free(shown);
	}
	out_free(o);
	return 0;
}

static const struct pw_cmd config_get_entry = {
	"get", "print the effective value of a key", "KEY", NULL,
	1, 1, CMD_STORE_RO, config_get, NULL
};
static const struct pw_cmd config_set_entry = {
	"set", "store a value in the state file", "KEY VALUE", NULL,
	2, 2, CMD_STORE_RW, config_set, NULL
};
static const struct pw_cmd config_unset_entry = {
	"unset", "remove a stored value (back to the default)", "KEY", NULL,
	1, 1, CMD_STORE_RW, config_unset, NULL
};
static const struct pw_cmd config_list_entry = {
	"list", "list every key with its value and origin", "[options]", NULL,
	0, 0, CMD_STORE_RO | CMD_OUTPUT, config_list, NULL
};

static const struct pw_cmd *const config_verbs[] = {
	&config_get_entry,
	&config_set_entry,
	&config_unset_entry,
	&config_list_entry,
	NULL
};

const struct pw_cmd cmd_config_entry = {
	"config", "read and change settings", "VERB [ARGS]", NULL,
	0, -1, 0, NULL, config_verbs
};
