/*
 * housekeep.c -- pw serve's background work, off the request path:
 *
 * - the flusher writes what the view holds in memory (outcomes, cursors,
 *   sessions, counters) in one short transaction every
 *   serve.flush_interval (a second unless set),
 *   keeps the view in step with the file when no request comes,
 *   checkpoints the WAL every FLUSH_MS (pw serve's other connections
 *   leave that to it), and every serve.prune_interval removes the
 *   proxies whose TTL has run out (what pw cache prune does for them);
 * - when serve.health_interval is set, the health thread runs pw health's
 *   checks over the whole pool that often, taking the run lock as
 *   pw health --lock does: a run from cron at the same time is not
 *   doubled, it is skipped.
 *
 * Each thread has a context of its own on the state file. Settings are
 * read again when the view saw the file change, and on SIGHUP.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define FLUSH_MS	250	/* the flusher wakes this often */

struct pw_housekeep {
	struct pw_view		*view;
	char			*state;
	const struct pw_config	*cfg;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 stop;
	unsigned int		 hup;		/* SIGHUPs seen */
	pthread_t		 flusher, health;
	int			 started;	/* threads made: 1, 2 */
};

/* Wait on h->cv until stop, a SIGHUP, or ms passed (mu held). */
static void
nap(struct pw_housekeep *h, int64_t ms)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&h->cv, &h->mu, &ts);
}

static int
open_ctx(struct pw_housekeep *h, struct pw_ctx *ctx)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->cfg = pw_config_dup(h->cfg);
	if (pw_open(ctx, h->state, PW_OPEN_RW) != 0 ||
	    pw_store_long_lived(ctx->store, &ctx->err) != 0) {
		pw_log(PW_LOG_ERROR, "serve: %s", ctx->err.msg);
		pw_close(ctx);
		return -1;
	}
	return 0;
}

/* The settings again when the file changed or SIGHUP came. */
static void
settings(struct pw_housekeep *h, struct pw_ctx *ctx, uint64_t *seen)
{
	uint64_t	gen;

	pthread_mutex_lock(&h->mu);
	gen = pw_view_generation(h->view) + ((uint64_t)h->hup << 32);
	pthread_mutex_unlock(&h->mu);
	if (gen == *seen)
		return;
	*seen = gen;
	if (pw_config_reload_state(ctx) != 0)
		pw_log(PW_LOG_WARN, "serve: %s", ctx->err.msg);
}

static void *
flusher(void *arg)
{
	struct pw_housekeep	*h = arg;
	struct pw_ctx		 ctx;
	struct pw_err		 err;
	uint64_t		 seen = 0;
	int64_t			 last_flush = pw_mono_ms(), last_prune, n;
	int			 stop = 0;

	if (open_ctx(h, &ctx) != 0)
		return NULL;
	last_prune = pw_mono_ms();
	while (!stop) {
		int64_t now, every;

		pthread_mutex_lock(&h->mu);
		if (!h->stop)
			nap(h, FLUSH_MS);
		stop = h->stop;
		pthread_mutex_unlock(&h->mu);
		if (stop)
			break;	/* pw_view_close writes the last batch */
		now = pw_mono_ms();
		/* Others' changes are seen even with no request to ask. */
		pw_err_clear(&err);
		if (pw_view_sync(h->view, 0, &err) != 0)
			pw_log(PW_LOG_WARN, "serve: %s", err.msg);
		settings(h, &ctx, &seen);
		every = pw_config_int(&ctx, "serve.flush_interval") * 1000;
		if (now - last_flush >= every - FLUSH_MS / 2) {
			if (pw_view_flush(h->view, &err) != 0)
				pw_log(PW_LOG_WARN, "serve: writing outcomes: "
				    "%s", err.msg);
			last_flush = now;
		}
		/* pw serve's connections leave this to the flusher. */
		pw_store_checkpoint(ctx.store);
		every = pw_config_int(&ctx, "serve.prune_interval") * 1000;
		if (every > 0 && now - last_prune >= every) {
			last_prune = now;
			pw_view_prune(h->view, pw_now());
			if (pw_cache_prune_expired(&ctx, &n) != 0)
				pw_log(PW_LOG_WARN, "serve: pruning: %s",
				    ctx.err.msg);
			else if (n > 0) {
				pw_log(PW_LOG_INFO, "serve: pruned %lld "
				    "expired %s", (long long)n, n == 1 ?
				    "proxy" : "proxies");
				pw_view_touch(h->view);
			}
		}
	}
	pw_close(&ctx);
	return NULL;
}

/* Stop a health run at its next result once the server stops. */
static int
health_result(void *arg, const struct pw_health_result *r)
{
	struct pw_housekeep	*h = arg;
	int			 stop;

	(void)r;
	pthread_mutex_lock(&h->mu);
	stop = h->stop;
	pthread_mutex_unlock(&h->mu);
	return stop;
}

static void
health_once(struct pw_housekeep *h, struct pw_ctx *ctx)
{
	struct pw_health_opts		o;
	struct pw_health_summary	sum;
	int64_t				*ids = NULL;
	size_t				 n = 0;
	int				 r;

	pw_err_clear(&ctx->err);
	if ((r = pw_health_select(ctx, NULL, 0, &ids, &n)) == 0 && n > 0) {
		pw_health_opts_init(&o);
		o.lock = PW_HEALTH_LOCK_TRY;
		o.on_result = health_result;
		o.arg = h;
		r = pw_health_run(ctx, &o, ids, n, &sum);
		if (r == 0)
			pw_log(PW_LOG_INFO, "serve: health: %zu checked, %zu "
			    "healthy, %zu degraded, %zu unhealthy",
			    sum.checked, sum.healthy, sum.degraded,
			    sum.unhealthy);
	}
	free(ids);
	if (r == PW_EBUSY)
		pw_log(PW_LOG_INFO, "serve: health: %s; skipped",
		    ctx->err.msg);
	else if (r != 0 && !health_result(h, NULL))
		pw_log(PW_LOG_WARN, "serve: health: %s", ctx->err.msg);
	pw_view_touch(h->view);
}

static void *
health(void *arg)
{
	struct pw_housekeep	*h = arg;
	struct pw_ctx		 ctx;
	uint64_t		 seen = 0;
	int64_t			 every, last = pw_mono_ms();
	int			 stop = 0;

	if (open_ctx(h, &ctx) != 0)
		return NULL;
	while (!stop) {
		int64_t now = pw_mono_ms(), wait = 1000;

		settings(h, &ctx, &seen);
		every = pw_config_int(&ctx, "serve.health_interval") * 1000;
		if (every > 0 && now - last >= every) {
			health_once(h, &ctx);
			last = pw_mono_ms();
			continue;
		}
		if (every > 0 && every - (now - last) < wait)
			wait = every - (now - last);
		pthread_mutex_lock(&h->mu);
		if (!h->stop)
			nap(h, wait);
		stop = h->stop;
		pthread_mutex_unlock(&h->mu);
	}
	pw_close(&ctx);
	return NULL;
}

int
pw_housekeep_start(const char *state, const struct pw_config *cfg,
    struct pw_view *v, struct pw_housekeep **out, struct pw_err *err)
{
	struct pw_housekeep	*h = pw_xcalloc(1, sizeof *h);
	pthread_condattr_t	 ca;
	int			 e;

	h->view = v;
	h->state = pw_xstrdup(state);
	h->cfg = cfg;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((e = pthread_create(&h->flusher, NULL, flusher, h)) == 0) {
		h->started = 1;
		if ((e = pthread_create(&h->health, NULL, health, h)) == 0)
			h->started = 2;
	}
	if (e != 0) {
		pw_housekeep_stop(h);
		return pw_failf(err, PW_EFAIL, "cannot start a thread: %s",
		    strerror(e));
	}
	*out = h;
	return 0;
}

void
pw_housekeep_reload(struct pw_housekeep *h)
{
	pthread_mutex_lock(&h->mu);
	h->hup++;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

void
pw_housekeep_stop(struct pw_housekeep *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (h->started >= 1)
		pthread_join(h->flusher, NULL);
	if (h->started >= 2)
		pthread_join(h->health, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h->state);
	free(h);
}
