/*
 * session.c -- sticky sessions: the proxy a session id keeps until it
 * has been idle for session.ttl. pw_pool_next makes, follows and prunes
 * them; this lists them.
 */
#include "internal.h"

int
pw_session_each(struct pw_ctx *ctx, pw_session_fn *fn, void *arg)
{
	return pw_store_session_each(ctx->store, pw_now(), fn, arg,
	    &ctx->err);
}
