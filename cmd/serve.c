/*
 * serve.c -- "pw serve": the REST API over the state file, the gateway
 * (a local rotating proxy), or both in one process, until SIGINT or
 * SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

/* How long requests in flight may take to finish at shutdown. */
#define GRACE_MS	(30 * 1000)

static int
serve(struct pw_cmdctx *cc)
{
	struct pw_serve_opts	 o;
	struct pw_gateway_opts	 go;
	struct pw_server	*s = NULL;
	struct pw_gateway	*g = NULL;
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
	if (go.socks_listen != NULL && go.listen == NULL)
		return cmd_usagef(cc, "--gateway-socks: needs --gateway");
	if (retries != 0 && go.listen == NULL)
		return cmd_usagef(cc, "--retries: needs --gateway");
	/* The gateway alone, unless --listen asks for the API beside it. */
	api = go.listen == NULL || arg_get(cc->args, "listen") != NULL;
	o.listen = arg_get(cc->args, "listen");
	o.insecure = arg_has(cc->args, "insecure");
	o.threads = (unsigned int)threads;
	o.log_requests = cc->verbose > 0;
	/*
	 * The signals are taken here, by sigwait: blocked before the server
	 * starts its threads, which inherit the mask.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (go.listen != NULL &&
	    (r = pw_gateway_start(cc->ctx, cc->state, &go, &g)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	if (api && (r = pw_serve_start(cc->ctx, cc->state, &o, &s)) != 0) {
		pw_gateway_stop(g);
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
	sigwait(&set, &sig);
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
	  "authentication" },
	{ "threads", 0, "N", 0, "worker threads (default two per core, at "
	  "least 4)" },
	{ "gateway", 'g', "ADDR:PORT", 0, "run the gateway, a local proxy "
	  "(HTTP and SOCKS5), on this address; the API too only with "
	  "--listen" },
	{ "gateway-socks", 0, "ADDR:PORT", 0, "also take SOCKS5 alone on this "
	  "address" },
	{ "retries", 0, "N", 0, "proxies the gateway tries per connection "
	  "(default the fetch.retries setting)" },
	{ NULL, 0, NULL, 0, NULL }
};

const struct pw_cmd cmd_serve_entry = {
	"serve", "run the REST API and the gateway", "[options]", serve_opts,
	0, 0, CMD_STORE_RW, serve, NULL
};
