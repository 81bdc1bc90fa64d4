/*
 * serve.c -- "pw serve": the REST API over the state file, until SIGINT
 * or SIGTERM; SIGHUP reads the settings again.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

/* How long requests in flight may take to finish at shutdown. */
#define GRACE_MS	(30 * 1000)
/* How often the outbox of a delegating state file is flushed. */
#define FLUSH_INTERVAL_MS	5000

static int
serve(struct pw_cmdctx *cc)
{
	struct pw_serve_opts	 o;
	struct pw_server	*s;
	struct pw_flusher	*fl = NULL;
	sigset_t		 set;
	int64_t			 threads = 0;
	int			 sig, r;

	memset(&o, 0, sizeof o);
	if ((r = cmd_int_opt(cc, "threads", 1, 256, &threads)) != 0)
		return r;
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
	if ((r = pw_serve_start(cc->ctx, cc->state, &o, &s)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	if (!cc->quiet)
		fprintf(stderr, "pw: serve: listening on http://%s\n",
		    pw_serve_address(s));
	/* Outcomes this state file queued for a service of its own. */
	if (pw_service_flusher_start(cc->state, cc->ctx->cfg,
	    FLUSH_INTERVAL_MS, &fl, &cc->ctx->err) != 0 && !cc->quiet)
		fprintf(stderr, "pw: serve: warning: no outbox flush: %s\n",
		    cc->ctx->err.msg);
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
		pw_serve_reload(s);
		if (!cc->quiet)
			fprintf(stderr, "pw: serve: SIGHUP: settings read "
			    "again\n");
	}
	pw_service_flusher_stop(fl);
	if (!cc->quiet)
		fprintf(stderr, "pw: serve: %s: finishing requests in flight\n",
		    sig == SIGINT ? "SIGINT" : "SIGTERM");
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
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_cmd *const serve_verbs[] = {
	&cmd_serve_keys_entry,
	NULL
};

const struct pw_cmd cmd_serve_entry = {
	"serve", "run the REST API", "[options] | keys VERB ...", serve_opts,
	0, 0, CMD_STORE_RW, serve, serve_verbs
};
