/*
 * serve.c -- "pw serve": the REST API over the state file, the gateway
 * (a local rotating proxy), or both in one process, until SIGINT or
 * SIGTERM; SIGHUP reads the settings again. "pw serve keys": the API
 * keys the API asks requests for.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

/* How long requests in flight may take to finish at shutdown. */
#define GRACE_MS	(30 * 1000)
/* How often the outbox of a delegating state file is flushed. */
#define FLUSH_INTERVAL_MS	5000

/* The options that only mean something to the gateway. */
static const char *const gateway_only[] = { "gateway-socks", "retries",
    "gateway-max-tunnels", "gateway-max-per-client", "gateway-idle-timeout",
    "gateway-handshake-timeout", NULL };

/* A duration option ("90", "90s", "15m") in [1 s, max s], as ms. */
static int
duration_opt(struct pw_cmdctx *cc, const char *lname, int64_t max,
    int64_t *ms)
{
	const char	*v = arg_get(cc->args, lname);
	int64_t		 s;

	if (v == NULL)
		return 0;
	if (pw_parse_duration(v, &s) != 0 || s < 1 || s > max)
		return cmd_usagef(cc, "--%s: '%s': want a duration from 1s "
		    "to %llds (like 90, 90s, 15m)", lname, v, (long long)max);
	*ms = s * 1000;
	return 0;
}

static int
serve(struct pw_cmdctx *cc)
{
	struct pw_serve_opts	 o;
	struct pw_gateway_opts	 go;
	struct pw_server	*s = NULL;
	struct pw_gateway	*g = NULL;
	struct pw_flusher	*fl = NULL;
	sigset_t		 set;
	int64_t			 threads = 0, retries = 0;
	int			 sig, r, api;

	memset(&o, 0, sizeof o);
	memset(&go, 0, sizeof go);
	if ((r = cmd_int_opt(cc, "threads", 1, 256, &threads)) != 0 ||
	    (r = cmd_int_opt(cc, "retries", 1, 100, &retries)) != 0)
		return r;
	go.listen = arg_get(cc->args, "gateway");
	go.socks_listen = arg_get(cc->args, "gateway-socks");
	go.retries = (int)retries;
	go.log = cc->verbose > 0;
	if ((r = cmd_int_opt(cc, "gateway-max-tunnels", 1, 1000000,
	    &go.max_tunnels)) != 0 ||
	    (r = cmd_int_opt(cc, "gateway-max-per-client", 1, 1000000,
	    &go.max_per_client)) != 0 ||
	    (r = duration_opt(cc, "gateway-idle-timeout", 86400,
	    &go.idle_ms)) != 0 ||
	    (r = duration_opt(cc, "gateway-handshake-timeout", 600,
	    &go.handshake_ms)) != 0 ||
	    (r = duration_opt(cc, "read-timeout", 600, &o.read_ms)) != 0)
		return r;
	for (size_t i = 0; gateway_only[i] != NULL; i++)
		if (go.listen == NULL && arg_has(cc->args, gateway_only[i]))
			return cmd_usagef(cc, "--%s: needs --gateway",
			    gateway_only[i]);
	/* The gateway alone, unless --listen asks for the API beside it. */
	api = go.listen == NULL || arg_get(cc->args, "listen") != NULL;
	o.listen = arg_get(cc->args, "listen");
	o.insecure = arg_has(cc->args, "insecure");
	/* The flag is the setting, at a command flag's precedence. */
	if (arg_has(cc->args, "allow-private") &&
	    (r = pw_config_set_flag(cc->ctx->cfg,
	    "serve.allow_private_targets", "true", &cc->ctx->err)) != 0)
		return r;
	o.threads = (unsigned int)threads;
	o.log_requests = cc->verbose > 0;
	/*
	 * The signals are taken here, by sigwait: blocked before the server
	 * starts its threads, which inherit the mask.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (api && (r = pw_serve_start(cc->ctx, cc->state, &o, &s)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	/* Beside the API, the gateway shares its pool in memory. */
	go.api = s;
	if (go.listen != NULL &&
	    (r = pw_gateway_start(cc->ctx, cc->state, &go, &g)) != 0) {
		pw_serve_stop(s, 0);
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	}
	if (!cc->quiet && g != NULL) {
		fprintf(stderr, "pw: serve: gateway on %s (HTTP proxy and "
		    "SOCKS5)\n", pw_gateway_address(g, 0));
		if (pw_gateway_address(g, 1) != NULL)
			fprintf(stderr, "pw: serve: gateway on %s (SOCKS5)\n",
			    pw_gateway_address(g, 1));
	}
	if (!cc->quiet && s != NULL)
		fprintf(stderr, "pw: serve: listening on http://%s\n",
		    pw_serve_address(s));
	/* Outcomes this state file queued for a service of its own. */
	if (pw_service_flusher_start(cc->state, cc->ctx->cfg,
	    FLUSH_INTERVAL_MS, &fl, &cc->ctx->err) != 0 && !cc->quiet)
		fprintf(stderr, "pw: serve: warning: no outbox flush: %s\n",
		    cc->ctx->err.msg);
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
		if (s != NULL)
			pw_serve_reload(s);
		if (!cc->quiet)
			fprintf(stderr, "pw: serve: SIGHUP: settings read "
			    "again\n");
	}
	pw_service_flusher_stop(fl);
	if (!cc->quiet)
		fprintf(stderr, "pw: serve: %s: finishing requests in flight\n",
		    sig == SIGINT ? "SIGINT" : "SIGTERM");
	pw_gateway_stop(g);
	pw_serve_stop(s, GRACE_MS);
	return 0;
}

static const struct pw_opt serve_opts[] = {
	{ "listen", 'l', "ADDR:PORT", 0, "address to listen on (default the "
	  "serve.listen setting)" },
	{ "insecure", 0, NULL, 0, "allow a non-loopback address without "
	  "API keys" },
	{ "allow-private", 0, NULL, 0, "let POST /api/v1/request fetch "
	  "loopback and private addresses" },
	{ "threads", 0, "N", 0, "worker threads (default 32 per core, from 32 "
	  "to 256)" },
	{ "read-timeout", 0, "DURATION", 0, "close an API client that does "
	  "not send a whole request in this long (default 30s)" },
	{ "gateway", 'g', "ADDR:PORT", 0, "run the gateway, a local proxy "
	  "(HTTP and SOCKS5), on this address; the API too only with "
	  "--listen" },
	{ "gateway-socks", 0, "ADDR:PORT", 0, "also take SOCKS5 alone on this "
	  "address" },
	{ "retries", 0, "N", 0, "proxies the gateway tries per connection "
	  "(default the fetch.retries setting)" },
	{ "gateway-max-tunnels", 0, "N", 0, "connections the gateway carries "
	  "at once (default 4096)" },
	{ "gateway-max-per-client", 0, "N", 0, "connections at once from one "
	  "client address (default 1024)" },
	{ "gateway-idle-timeout", 0, "DURATION", 0, "close a gateway "
	  "connection that carries nothing this long (default 5m)" },
	{ "gateway-handshake-timeout", 0, "DURATION", 0, "close a gateway "
	  "client that does not say where it goes in this long (default 10s)" },
	{ NULL, 0, NULL, 0, NULL }
};

/* ------------------------------------------------------- pw serve keys */

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

static const struct pw_cmd serve_keys_entry = {
	"keys", "manage the API keys of pw serve", "VERB [options] [ARGS]",
	NULL, 0, -1, 0, NULL, keys_verbs
};

static const struct pw_cmd *const serve_verbs[] = {
	&serve_keys_entry,
	NULL
};

const struct pw_cmd cmd_serve_entry = {
	"serve", "run the REST API and the gateway",
	"[options] | keys VERB ...", serve_opts,
	0, 0, CMD_STORE_RW, serve, serve_verbs
};
