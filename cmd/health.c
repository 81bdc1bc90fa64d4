/*
 * health.c -- "pw health": check proxies through a judge URL, many at
 * once, and record what was found.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cmd.h"


static const struct out_col result_cols[] = {
	{ "id", COL_INT, 1 },
	{ "url", COL_STR, 1 },
	{ "ok", COL_BOOL, 0 },
	{ "status", COL_STR, 1 },
	{ "latency_ms", COL_REAL, 1 },
	{ "http_status", COL_INT, 0 },
	{ "anonymity", COL_STR, 0 },
	{ "consec_fail", COL_INT, 0 },
	{ "evicted", COL_BOOL, 0 },
	{ "judge", COL_STR, 0 },
	{ "error", COL_STR, 1 },
};
#define NRESULT_COLS ((int)(sizeof result_cols / sizeof result_cols[0]))

struct view {
	struct pw_cmdctx *cc;
	int		 rows;		/* per-proxy rows on stdout */
	struct out	*o;		/* made at the first row */
	int		 bar;		/* progress bar on stderr */
	int		 drawn;
};

static int
on_result(void *arg, const struct pw_health_result *r)
{
	struct view	*vw = arg;
	char		 id[32], lat[32], http[32], consec[32];
	const char	*v[NRESULT_COLS];

	if (!vw->rows)
		return 0;
	/* Only now: a run refused at the start prints nothing. */
	if (vw->o == NULL)
		vw->o = out_new(vw->cc->fmt, result_cols, NRESULT_COLS,
		    vw->cc->color);
	snprintf(id, sizeof id, "%lld", (long long)r->id);
	snprintf(lat, sizeof lat, "%.1f", r->latency_ms);
	snprintf(http, sizeof http, "%ld", r->http_status);
	snprintf(consec, sizeof consec, "%lld", (long long)r->consec_fail);
	v[0] = id;
	v[1] = r->proxy;
	v[2] = r->ok ? "1" : "0";
	v[3] = pw_status_name(r->status);
	v[4] = r->latency_ms >= 0 ? lat : NULL;
	v[5] = r->http_status ? http : NULL;
	v[6] = r->anonymity;
	v[7] = consec;
	v[8] = r->evicted ? "1" : "0";
	v[9] = r->judge;
	v[10] = r->error;
	out_row(vw->o, v);
	return ferror(stdout) ? -1 : 0;
}

/* done/total, healthy so far, rate and ETA, redrawn in place. */
static void
on_progress(void *arg, const struct pw_health_progress *p)
{
	struct view	*vw = arg;
	char		 bar[21], eta[32];
	double		 rate = p->elapsed_s > 0 ? p->done / p->elapsed_s : 0;
	size_t		 fill = p->total ? p->done * 20 / p->total : 20;

	if (!vw->bar)
		return;
	for (size_t i = 0; i < 20; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[20] = '\0';
	if (rate > 0 && p->done < p->total)
		snprintf(eta, sizeof eta, "ETA %.0fs",
		    ceil((p->total - p->done) / rate));
	else
		eta[0] = '\0';
	fprintf(stderr, "\r\033[K[%s] %zu/%zu  %zu healthy  %.0f/s  %s", bar,
	    p->done, p->total, p->healthy, rate, eta);
	fflush(stderr);
	vw->drawn = 1;
}

/*
 * Room for a socket per check, and some to spare. When the hard limit is
 * too low, fewer checks run at once: a check that cannot get a socket
 * would fail, and the proxy would be blamed for it.
 */
int64_t
cmd_fit_fd_limit(int64_t conc)
{
	struct rlimit	rl;
	rlim_t		want = (rlim_t)conc * 2 + 64;
	int64_t		fit;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return conc;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ?
	    want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE,
	    &rl) != 0 || rl.rlim_cur >= want)
		return conc;
	fit = rl.rlim_cur > 66 ? (int64_t)(rl.rlim_cur - 64) / 2 : 1;
	pw_log(PW_LOG_WARN, "health: %lld open files at most: checking %lld "
	    "at once, not %lld", (long long)rl.rlim_cur, (long long)fit,
	    (long long)conc);
	return fit;
}

/* The proxies named on the command line, each once, in order. */
static int
named_ids(struct pw_cmdctx *cc, int64_t **out, size_t *nout)
{
	int64_t	*ids = pw_xcalloc(cc->args->argc, sizeof *ids), id;
	size_t	 n = 0, j;

	for (int i = 0; i < cc->args->argc; i++) {
		if (pw_pool_resolve(cc->ctx, cc->args->argv[i], &id) != 0) {
			free(ids);
			return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
		}
		for (j = 0; j < n && ids[j] != id; j++)
			;
		if (j == n)
			ids[n++] = id;
	}
	*out = ids;
	*nout = n;
	return 0;
}

static int
filter_opts(struct pw_cmdctx *cc, struct pw_filter *f, char ccode[3],
    int64_t *older, int *any)
{
	const char	*v;

	pw_filter_init(f);
	*older = 0;
	*any = 0;
	if ((v = arg_get(cc->args, "status")) != NULL) {
		if (pw_status_parse(v, &f->status) != 0)
			return cmd_usagef(cc, "--status: '%s': want unknown, "
			    "healthy, degraded, unhealthy or pending", v);
		*any = 1;
	}
	if ((v = arg_get(cc->args, "country")) != NULL) {
		if (pw_country_check(v, ccode, &cc->ctx->err) != 0)
			return pw_err_prefix(&cc->ctx->err, "%s: --country",
			    cc->path);
		f->country = ccode;
		*any = 1;
	}
	if ((f->source = arg_get(cc->args, "source")) != NULL)
		*any = 1;
	if ((v = arg_get(cc->args, "older-than")) != NULL) {
		if (pw_parse_duration(v, older) != 0 || *older <= 0)
			return cmd_usagef(cc, "--older-than: '%s': want a "
			    "duration such as 90s, 10m, 2h or 7d", v);
		*any = 1;
	}
	return 0;
}

int
cmd_check_opts(struct pw_cmdctx *cc, struct pw_health_opts *o)
{
	const char	*v;
	int64_t		 i;
	double		 d;
	int		 n, r;

	pw_health_opts_init(o);
	if ((r = cmd_int_opt(cc, "concurrency", 1, 10000, &i)) != 0)
		return r;
	if (arg_has(cc->args, "concurrency"))
		o->concurrency = (int)i;
	if ((v = arg_get(cc->args, "timeout")) != NULL) {
		if (pw_parse_double(v, 0.001, 3600, &d) != 0) {
			if (pw_parse_duration(v, &i) != 0 || i < 1 ||
			    i > 3600)
				return cmd_usagef(cc, "--timeout: '%s': want "
				    "seconds from 0.001 to 3600", v);
			d = (double)i;
		}
		o->timeout_ms = (int64_t)ceil(d * 1000);
	}
	o->urls = (const char *const *)arg_all(cc->args, "url", &n);
	o->nurls = n > 0 ? (size_t)n : 0;
	o->evict = arg_has(cc->args, "evict");
	return 0;
}

static int
check_opts(struct pw_cmdctx *cc, struct pw_health_opts *o)
{
	const char	*v;
	int64_t		 i;
	int		 r;

	if ((r = cmd_check_opts(cc, o)) != 0)
		return r;
	if ((r = cmd_int_opt(cc, "expect-status", 100, 599, &i)) != 0)
		return r;
	if (arg_has(cc->args, "expect-status"))
		o->expect_status = (long)i;
	o->expect_body = arg_get(cc->args, "expect-body");
	if ((v = arg_get(cc->args, "mode")) != NULL) {
		if (strcmp(v, "get") == 0)
			o->mode = PW_HEALTH_GET;
		else if (strcmp(v, "connect") == 0)
			o->mode = PW_HEALTH_CONNECT;
		else
			return cmd_usagef(cc, "--mode: '%s': want get or "
			    "connect", v);
	}
	if (o->mode == PW_HEALTH_CONNECT && (o->expect_body != NULL ||
	    arg_has(cc->args, "expect-status") ||
	    arg_has(cc->args, "anonymity")))
		return cmd_usagef(cc, "--mode connect makes no request: "
		    "--expect-status, --expect-body and --anonymity need "
		    "--mode get");
	o->anonymity = arg_has(cc->args, "anonymity");
	/* health_exec takes the lock itself, before choosing proxies. */
	o->lock = PW_HEALTH_LOCK_NONE;
	o->cacert = arg_get(cc->args, "cacert");
	o->insecure = arg_has(cc->args, "insecure");
	return 0;
}

static void
fmt_ms(char *buf, size_t n, double ms)
{
	if (ms < 0)
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.0f ms", ms);
}

static void
summary(FILE *f, const struct pw_health_summary *s)
{
	char	p50[32], p95[32];

	fmt_ms(p50, sizeof p50, s->p50_ms);
	fmt_ms(p95, sizeof p95, s->p95_ms);
	fprintf(f, "checked %zu %s in %.1f s: %zu healthy, %zu degraded, "
	    "%zu unhealthy, %zu evicted", s->checked, s->checked == 1 ?
	    "proxy" : "proxies", s->elapsed_s, s->healthy, s->degraded,
	    s->unhealthy, s->evicted);
	if (s->gone > 0)
		fprintf(f, ", %zu gone before their check", s->gone);
	fprintf(f, "; latency p50 %s, p95 %s\n", p50, p95);
}

static int
health_exec(struct pw_cmdctx *cc)
{
	struct pw_health_opts		o;
	struct pw_health_summary	s;
	struct pw_filter		f;
	struct view			vw;
	struct pw_health_lock		*lock = NULL;
	const char			*v;
	char				ccode[3];
	int64_t				*ids = NULL, older, conc;
	size_t				n = 0;
	double				under = -1, pct;
	int				r, any, rows;

	if ((r = check_opts(cc, &o)) != 0 ||
	    (r = filter_opts(cc, &f, ccode, &older, &any)) != 0)
		return r;
	if ((v = arg_get(cc->args, "fail-under")) != NULL &&
	    pw_parse_double(v, 0, 100, &under) != 0)
		return cmd_usagef(cc, "--fail-under: '%s': want a percentage "
		    "from 0 to 100", v);
	if (any && cc->args->argc > 0)
		return cmd_usagef(cc, "name proxies or select them with "
		    "--status, --source, --country or --older-than, not both");
	/*
	 * The judges and the regular expression are checked before the
	 * lock: a usage error is exit 2 at once, never 75 (or a --wait)
	 * because another run holds the lock.
	 */
	if ((r = pw_health_check_opts(cc->ctx, &o)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	/*
	 * The lock first, then the choice of proxies: a run that waited
	 * must not check what the run before it has just checked.
	 */
	if ((r = pw_health_lock(cc->ctx, arg_has(cc->args, "wait") ?
	    PW_HEALTH_LOCK_WAIT : PW_HEALTH_LOCK_TRY, &lock)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	if (cc->args->argc > 0)
		r = named_ids(cc, &ids, &n);
	else
		r = pw_health_select(cc->ctx, &f, older, &ids, &n);
	if (r != 0) {
		pw_health_unlock(lock);
		return r;
	}

	memset(&vw, 0, sizeof vw);
	vw.cc = cc;
	rows = arg_has(cc->args, "json") || arg_has(cc->args, "jsonl") ||
	    arg_has(cc->args, "csv") || arg_has(cc->args, "plain") ||
	    arg_has(cc->args, "table");
	vw.rows = rows;
	vw.bar = !cc->quiet && isatty(STDERR_FILENO);
	o.on_result = on_result;
	o.on_progress = on_progress;
	o.arg = &vw;
	conc = o.concurrency > 0 ? o.concurrency :
	    pw_config_int(cc->ctx, "health.concurrency");
	o.concurrency = (int)cmd_fit_fd_limit(conc);

	r = pw_health_run(cc->ctx, &o, ids, n, &s);
	pw_health_unlock(lock);
	if (vw.drawn)
		fputs("\r\033[K", stderr);
	/* Nothing checked: still an empty list (or a CSV header). */
	if (r == 0 && rows && vw.o == NULL)
		vw.o = out_new(cc->fmt, result_cols, NRESULT_COLS, cc->color);
	out_free(vw.o);
	free(ids);
	if (r != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	if (!rows)
		summary(stdout, &s);
	else if (!cc->quiet)
		summary(stderr, &s);
	if (under >= 0) {
		pct = s.checked > 0 ? 100.0 * s.healthy / s.checked : 0;
		if (pct < under)
			return pw_failf(&cc->ctx->err, PW_EFAIL, "%s: %.1f%% "
			    "healthy (%zu of %zu), under %g%%", cc->path, pct,
			    s.healthy, s.checked, under);
	}
	return 0;
}


static const struct pw_opt health_optv[] = {
	{ "url", 'u', "JUDGE", OPT_REPEAT, "judge URL to request through "
	  "each proxy (repeatable; default health.urls, then health.url)" },
	{ "concurrency", 'n', "N", 0, "checks at once (default "
	  "health.concurrency)" },
	{ "timeout", 'm', "S", 0, "seconds one check may take (default "
	  "health.timeout)" },
	{ "mode", 0, "MODE", 0, "get (a request, the default) or connect "
	  "(only the tunnel or SOCKS handshake)" },
	{ "expect-status", 0, "CODE", 0, "the status a passing check gets "
	  "(default any 2xx)" },
	{ "expect-body", 0, "REGEX", 0, "a POSIX extended regular "
	  "expression the judge's answer must match" },
	{ "anonymity", 0, NULL, 0, "grade transparent, anonymous or elite "
	  "(needs a judge that echoes request headers)" },
	{ "evict", 0, NULL, 0, "remove the proxies found unhealthy" },
	{ "status", 0, "STATUS", 0, "only proxies with this status: "
	  "unknown, healthy, degraded, unhealthy or pending" },
	{ "source", 0, "NAME", 0, "only proxies from this source" },
	{ "country", 0, "CC", 0, "only proxies in this country" },
	{ "older-than", 0, "AGE", 0, "only proxies not checked within AGE "
	  "(e.g. 10m)" },
	{ "wait", 0, NULL, 0, "wait for a health check already running on "
	  "the state file instead of exiting 75" },
	{ "fail-under", 0, "PCT", 0, "exit 1 when fewer than PCT% of the "
	  "checked proxies are healthy" },
	{ "cacert", 0, "FILE", 0, "CA certificates for https judges and "
	  "proxies" },
	{ "insecure", 'k', NULL, 0, "no TLS verification" },
	{ NULL, 0, NULL, 0, NULL }
};

const struct pw_cmd cmd_health_entry = {
	"health", "check proxies through a judge URL, many at once",
	"[options] [ID|URL...]", health_optv, 0, -1,
	CMD_STORE_RW | CMD_OUTPUT, health_exec, NULL
};
