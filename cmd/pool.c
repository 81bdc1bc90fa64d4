/*
 * pool.c -- "pw pool": add, remove, list, show, change and clear proxies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"

/* Every field of a proxy, in output order; brief ones make the table. */
static const struct out_col proxy_cols[] = {
	{ "id", COL_INT, 1 },
	{ "url", COL_STR, 1 },
	{ "scheme", COL_STR, 0 },
	{ "host", COL_STR, 0 },
	{ "port", COL_INT, 0 },
	{ "credentials", COL_BOOL, 0 },
	{ "status", COL_STR, 1 },
	{ "country", COL_STR, 1 },
	{ "region", COL_STR, 0 },
	{ "source", COL_STR, 1 },
	{ "anonymity", COL_STR, 0 },
	{ "weight", COL_REAL, 0 },
	{ "latency_ms", COL_REAL, 1 },
	{ "started", COL_INT, 0 },
	{ "completed", COL_INT, 0 },
	{ "succeeded", COL_INT, 1 },
	{ "failed", COL_INT, 1 },
	{ "consec_fail", COL_INT, 0 },
	{ "added_at", COL_TIME, 0 },
	{ "updated_at", COL_TIME, 0 },
	{ "expires_at", COL_TIME, 0 },
	{ "last_checked", COL_TIME, 0 },
	{ "last_used", COL_TIME, 0 },
	{ "cooldown_until", COL_TIME, 0 },
};
#define NPROXY_COLS ((int)(sizeof proxy_cols / sizeof proxy_cols[0]))

struct proxy_vals {
	const char	*v[NPROXY_COLS];
	char		 num[NPROXY_COLS][32];
	char		*url;
};

static const char *
fmt_i64(char *buf, int64_t v, int null_if_zero)
{
	if (null_if_zero && v == 0)
		return NULL;
	snprintf(buf, 32, "%lld", (long long)v);
	return buf;
}

static const char *
fmt_real(char *buf, double v)
{
	if (v < 0)
		return NULL;
	snprintf(buf, 32, "%.1f", v);
	return buf;
}

static void
proxy_vals_fill(struct proxy_vals *pv, const struct pw_proxy *p, int secrets)
{
	int	i = 0;

	pv->url = pw_addr_format(&p->addr, secrets && p->addr.user ?
	    PW_CREDS_SHOW : PW_CREDS_MASK);
	if (p->has_creds && p->addr.user == NULL) {
		/* Sealed and not unsealed: show that credentials exist. */
		free(pv->url);
		struct pw_addr a = p->addr;
		a.user = "x";
		a.pass = "x";
		pv->url = pw_addr_format(&a, PW_CREDS_MASK);
	}
	pv->v[i] = fmt_i64(pv->num[i], p->id, 0); i++;
	pv->v[i++] = pv->url;
	pv->v[i++] = pw_scheme_name(p->addr.scheme);
	pv->v[i++] = p->addr.host;
	pv->v[i] = fmt_i64(pv->num[i], p->addr.port, 0); i++;
	pv->v[i++] = p->has_creds ? "1" : "0";
	pv->v[i++] = pw_status_name(p->status);
	pv->v[i++] = p->country;
	pv->v[i++] = p->region;
	pv->v[i++] = p->source;
	pv->v[i++] = p->anonymity;
	pv->v[i] = fmt_real(pv->num[i], p->weight); i++;
	pv->v[i] = fmt_real(pv->num[i], p->latency_ms); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->started, 0); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->completed, 0); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->succeeded, 0); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->failed, 0); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->consec_fail, 0); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->added_at, 1); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->updated_at, 1); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->expires_at, 1); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->last_checked, 1); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->last_used, 1); i++;
	pv->v[i] = fmt_i64(pv->num[i], p->cooldown_until, 1); i++;
}

/* Metadata options shared by add, set and cache warm; validated into m. */
int
cmd_meta_opts(struct pw_cmdctx *cc, struct pw_meta *m, char cc_buf[3])
{
	const char	*v;

	memset(m, 0, sizeof *m);
	m->weight = -1;
	m->source = arg_get(cc->args, "source");
	m->region = arg_get(cc->args, "region");
	if ((v = arg_get(cc->args, "country")) != NULL) {
		if (pw_country_check(v, cc_buf, &cc->ctx->err) != 0)
			return pw_err_prefix(&cc->ctx->err, "%s: --country",
			    cc->path);
		m->country = cc_buf;
	}
	if ((v = arg_get(cc->args, "weight")) != NULL &&
	    pw_parse_double(v, 0, 1e9, &m->weight) != 0)
		return cmd_usagef(cc, "--weight: '%s': want a number from 0 "
		    "to 1e9", v);
	if (m->source != NULL && *m->source == '\0')
		return cmd_usagef(cc, "--source: empty name");
	if (m->region != NULL && *m->region == '\0')
		return cmd_usagef(cc, "--region: empty name");
	if (m->source != NULL && (v = pw_label_why(m->source)) != NULL)
		return cmd_usagef(cc, "--source: %s", v);
	if (m->region != NULL && (v = pw_label_why(m->region)) != NULL)
		return cmd_usagef(cc, "--region: %s", v);
	return 0;
}

/* ---------------------------------------------------------------- add */

struct addlist {
	struct pw_addr	*a;
	size_t		 n, cap;
};

static int
addlist_push(struct pw_cmdctx *cc, struct addlist *l, const char *url,
    const char *where)
{
	struct pw_addr	a;

	if (pw_addr_parse(url, &a, &cc->ctx->err) != 0) {
		if (where != NULL)
			pw_err_prefix(&cc->ctx->err, "%s", where);
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->a = pw_xrealloc(l->a, l->cap * sizeof *l->a);
	}
	l->a[l->n++] = a;
	return 0;
}

/* One URL a line; blank lines and "#" comments are skipped. */
static int
read_stdin(struct pw_cmdctx *cc, struct addlist *l)
{
	char	*line = NULL, where[48];
	size_t	 cap = 0;
	ssize_t	 n;
	long	 lineno = 0;
	int	 r = 0;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		char *s = line, *e = line + n;
		/* A byte order mark, as editors on Windows write, is no URL. */
		if (++lineno == 1 && n >= 3 &&
		    memcmp(s, "\xef\xbb\xbf", 3) == 0)
			s += 3;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' ||
		    e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*e = '\0';
		if (*s == '\0' || *s == '#')
			continue;
		snprintf(where, sizeof where, "stdin:%ld", lineno);
		if ((r = addlist_push(cc, l, s, where)) != 0)
			break;
	}
	free(line);
	return r;
}

static int
pool_add(struct pw_cmdctx *cc)
{
	static const struct out_col cols[] = {
		{ "id", COL_INT, 1 }, { "url", COL_STR, 1 },
		{ "result", COL_STR, 1 },
	};
	struct addlist	 l = { NULL, 0, 0 };
	struct pw_meta	 m;
	char		 ccode[3];
	int		*res = NULL, r, stdin_used = 0;
	int64_t		*ids = NULL;
	struct out	*o;

	if ((r = cmd_meta_opts(cc, &m, ccode)) != 0)
		return r;
	for (int i = 0; i < cc->args->argc && r == 0; i++) {
		if (strcmp(cc->args->argv[i], "-") == 0) {
			if (stdin_used++)
				r = cmd_usagef(cc, "'-' given twice");
			else
				r = read_stdin(cc, &l);
		} else
			r = addlist_push(cc, &l, cc->args->argv[i], NULL);
	}
	if (r == 0 && l.n > 0) {
		res = pw_xcalloc(l.n, sizeof *res);
		ids = pw_xcalloc(l.n, sizeof *ids);
		r = pw_pool_add(cc->ctx, l.a, l.n, &m, res, ids);
	}
	if (r == 0 && !cc->quiet) {
		o = out_new(cc->fmt, cols, 3, cc->color);
		for (size_t i = 0; i < l.n; i++) {
			char idb[32], *url = pw_addr_format(&l.a[i],
			    cc->show_secrets ? PW_CREDS_SHOW : PW_CREDS_MASK);
			const char *v[3] = { idb, url, res[i] == PW_ADDED ?
			    "added" : res[i] == PW_UPDATED ? "updated" :
			    "duplicate" };
			snprintf(idb, sizeof idb, "%lld", (long long)ids[i]);
			out_row(o, v);
			free(url);
		}
		out_free(o);
	}
	for (size_t i = 0; i < l.n; i++)
		pw_addr_release(&l.a[i]);
	free(l.a);
	free(res);
	free(ids);
	return r;
}

/* ----------------------------------------------------------- rm, clear */

static int
resolve_all(struct pw_cmdctx *cc, int64_t **out)
{
	int64_t	*ids = pw_xcalloc(cc->args->argc, sizeof *ids);
	int	 r;

	for (int i = 0; i < cc->args->argc; i++) {
		r = pw_pool_resolve(cc->ctx, cc->args->argv[i], &ids[i]);
		if (r != 0) {
			free(ids);
			return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
		}
	}
	*out = ids;
	return 0;
}

static int
cmp_id(const void *a, const void *b)
{
	int64_t	x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int
pool_rm(struct pw_cmdctx *cc)
{
	int64_t	*ids = NULL;
	size_t	 n = 0;
	int	 r;

	if ((r = resolve_all(cc, &ids)) != 0)
		return r;
	/* "rm 3 3" or an id and its URL name one proxy: remove it once. */
	qsort(ids, cc->args->argc, sizeof *ids, cmp_id);
	for (int i = 0; i < cc->args->argc; i++)
		if (n == 0 || ids[i] != ids[n - 1])
			ids[n++] = ids[i];
	r = pw_pool_remove(cc->ctx, ids, n);
	if (r != 0)
		pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	free(ids);
	return r;
}

static int
pool_clear(struct pw_cmdctx *cc)
{
	int64_t	n;
	int	r;

	if (!arg_has(cc->args, "yes"))
		return cmd_usagef(cc, "this removes every proxy; add --yes "
		    "to confirm");
	if ((r = pw_pool_clear(cc->ctx, &n)) != 0)
		return r;
	if (!cc->quiet)
		fprintf(stderr, "removed %lld %s\n", (long long)n,
		    n == 1 ? "proxy" : "proxies");
	return 0;
}

/* ------------------------------------------------------------ ls, show */

struct ls_arg {
	struct out	*o;
	int		 secrets;
};

static int
ls_one(void *arg, const struct pw_proxy *p)
{
	struct ls_arg		*la = arg;
	struct proxy_vals	 pv;

	proxy_vals_fill(&pv, p, la->secrets);
	out_row(la->o, pv.v);
	free(pv.url);
	return 0;
}

static int
filter_opts(struct pw_cmdctx *cc, struct pw_filter *f, char ccode[3])
{
	const char	*v;
	enum pw_scheme	 sch;

	pw_filter_init(f);
	if ((v = arg_get(cc->args, "status")) != NULL &&
	    pw_status_parse(v, &f->status) != 0)
		return cmd_usagef(cc, "--status: '%s': want unknown, healthy, "
		    "degraded, unhealthy or pending", v);
	if ((v = arg_get(cc->args, "scheme")) != NULL) {
		if (pw_scheme_parse(v, &sch) != 0)
			return cmd_usagef(cc, "--scheme: '%s': want http, "
			    "https, socks4, socks4a, socks5 or socks5h", v);
		f->scheme = sch;
	}
	if ((v = arg_get(cc->args, "country")) != NULL) {
		if (pw_country_check(v, ccode, &cc->ctx->err) != 0)
			return pw_err_prefix(&cc->ctx->err, "%s: --country",
			    cc->path);
		f->country = ccode;
	}
	if ((v = arg_get(cc->args, "anonymity")) != NULL) {
		if (strcmp(v, "transparent") && strcmp(v, "anonymous") &&
		    strcmp(v, "elite"))
			return cmd_usagef(cc, "--anonymity: '%s': want "
			    "transparent, anonymous or elite", v);
		f->anonymity = v;
	}
	f->source = arg_get(cc->args, "source");
	f->region = arg_get(cc->args, "region");
	return 0;
}

static int
pool_ls(struct pw_cmdctx *cc)
{
	struct pw_filter	f;
	struct ls_arg		la;
	char			ccode[3];
	int			r;

	if ((r = filter_opts(cc, &f, ccode)) != 0)
		return r;
	la.secrets = cc->show_secrets;
	la.o = out_new(cc->fmt, proxy_cols, NPROXY_COLS, cc->color);
	r = pw_pool_each(cc->ctx, &f, cc->show_secrets, ls_one, &la);
	out_free(la.o);
	return r;
}

static int
pool_show(struct pw_cmdctx *cc)
{
	struct pw_proxy		p;
	struct proxy_vals	pv;
	int64_t			id;
	int			r;

	if ((r = pw_pool_resolve(cc->ctx, cc->args->argv[0], &id)) != 0 ||
	    (r = pw_pool_get(cc->ctx, id, cc->show_secrets, &p)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	proxy_vals_fill(&pv, &p, cc->show_secrets);
	out_record(cc->fmt, proxy_cols, NPROXY_COLS, pv.v);
	free(pv.url);
	pw_proxy_release(&p);
	return 0;
}

static int
pool_set(struct pw_cmdctx *cc)
{
	struct pw_meta	m;
	char		ccode[3];
	int64_t		id;
	int		r;

	if ((r = cmd_meta_opts(cc, &m, ccode)) != 0)
		return r;
	if (m.source == NULL && m.country == NULL && m.region == NULL &&
	    m.weight < 0)
		return cmd_usagef(cc, "nothing to set (give --weight, "
		    "--country, --region or --source)");
	if ((r = pw_pool_resolve(cc->ctx, cc->args->argv[0], &id)) != 0 ||
	    (r = pw_pool_set(cc->ctx, id, &m)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	return 0;
}

/* ----------------------------------------------------- next, report */

/* pool next --format json with a service: how the proxy was chosen. */
static const struct out_col path_cols[] = {
	{ "path", COL_STR, 1 },
	{ "endpoint", COL_STR, 1 },
	{ "service_strategy", COL_STR, 1 },
	{ "ttl_seconds", COL_INT, 1 },
	{ "fallback_reason", COL_STR, 1 },
};
#define NPATH_COLS ((int)(sizeof path_cols / sizeof path_cols[0]))

static void
next_json(const struct proxy_vals *pv, const struct pw_delegation *d)
{
	struct out_col	cols[NPROXY_COLS + NPATH_COLS];
	const char	*v[NPROXY_COLS + NPATH_COLS];
	char		ttl[32];
	int		svc = d->path == PW_PATH_SERVICE ||
			    d->path == PW_PATH_CACHE;

	memcpy(cols, proxy_cols, sizeof proxy_cols);
	memcpy(cols + NPROXY_COLS, path_cols, sizeof path_cols);
	memcpy(v, pv->v, sizeof pv->v);
	snprintf(ttl, sizeof ttl, "%lld", (long long)d->ttl);
	v[NPROXY_COLS] = pw_path_name(d->path);
	v[NPROXY_COLS + 1] = svc ? d->endpoint : NULL;
	v[NPROXY_COLS + 2] = svc ? d->strategy : NULL;
	v[NPROXY_COLS + 3] = svc ? ttl : NULL;
	v[NPROXY_COLS + 4] = d->path == PW_PATH_FALLBACK ? d->why : NULL;
	out_record(OUT_JSON, cols, NPROXY_COLS + NPATH_COLS, v);
}

static int
pool_next(struct pw_cmdctx *cc)
{
	struct pw_pick		 pk;
	struct pw_proxy		 p;
	struct proxy_vals	 pv;
	struct pw_delegation	 d;
	struct pw_service_ask	 ask;
	const char		*fmt = arg_get(cc->args, "format"), *v;
	char			 ccode[3], **ex;
	int64_t			*exclude = NULL;
	int			 r, nex = 0, delegate;

	if (fmt == NULL)
		fmt = "url";
	if (strcmp(fmt, "url") != 0 && strcmp(fmt, "json") != 0)
		return cmd_usagef(cc, "--format: '%s': want url or json", fmt);
	memset(&pk, 0, sizeof pk);
	memset(&ask, 0, sizeof ask);
	if ((r = filter_opts(cc, &pk.filter, ccode)) != 0)
		return r;
	if ((v = arg_get(cc->args, "max-latency")) != NULL &&
	    pw_parse_double(v, 0.001, 1e9, &pk.filter.max_latency_ms) != 0)
		return cmd_usagef(cc, "--max-latency: '%s': want milliseconds "
		    "above 0", v);
	if ((v = arg_get(cc->args, "target")) != NULL &&
	    strncasecmp(v, "http://", 7) != 0 &&
	    strncasecmp(v, "https://", 8) != 0 &&
	    strncasecmp(v, "ws://", 5) != 0 &&
	    strncasecmp(v, "wss://", 6) != 0) {
		char *shown = pw_redact_url(v);

		r = cmd_usagef(cc, "--target: '%s': want an http, https, ws "
		    "or wss URL", shown);
		free(shown);
		return r;
	}
	ask.target = v;
	pk.strategy = arg_get(cc->args, "strategy");
	pk.plugin = arg_get(cc->args, "strategy-plugin");
	pk.session = arg_get(cc->args, "session");
	if (pk.session != NULL && !pw_session_ok(pk.session))
		return cmd_usagef(cc, "--session: want 1 to 256 bytes of text "
		    "without control characters");
	ex = arg_all(cc->args, "exclude", &nex);
	if (nex > 0) {
		exclude = pw_xcalloc(nex, sizeof *exclude);
		for (int i = 0; i < nex; i++) {
			if (pw_parse_int(ex[i], 1, INT64_MAX,
			    &exclude[i]) != 0) {
				free(exclude);
				return cmd_usagef(cc, "--exclude: '%s': want "
				    "a proxy id", ex[i]);
			}
		}
	}
	pk.exclude = exclude;
	pk.nexclude = nex;
	/* The URL is for curl -x: it carries the credentials. */
	pk.secrets = 1;
	/* A selection the service cannot make as asked stays local. */
	delegate = nex == 0 && pw_service_delegable(cc->ctx, &pk);
	memset(&d, 0, sizeof d);
	ask.region = pk.filter.region;
	if (delegate)
		r = pw_service_next(cc->ctx, &ask, &pk, &p, &d);
	else
		r = pw_pool_next(cc->ctx, &pk, &p);
	free(exclude);
	if (r != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	proxy_vals_fill(&pv, &p, 1);
	if (strcmp(fmt, "json") == 0 && pw_service_enabled(cc->ctx))
		next_json(&pv, &d);
	else if (strcmp(fmt, "json") == 0)
		out_record(OUT_JSON, proxy_cols, NPROXY_COLS, pv.v);
	else
		printf("%s\n", pv.url);
	free(pv.url);
	pw_proxy_release(&p);
	return 0;
}

static int
pool_report(struct pw_cmdctx *cc)
{
	const char	*v, *word = cc->args->argc > 1 ? cc->args->argv[1] :
			    NULL;
	double		 lat = -1;
	int64_t		 id;
	int		 ok = arg_has(cc->args, "ok"), fail, r;

	fail = arg_has(cc->args, "fail");
	if (word != NULL) {
		if (strcmp(word, "ok") != 0 && strcmp(word, "fail") != 0)
			return cmd_usagef(cc, "'%s': want ok or fail", word);
		if (ok || fail)
			return cmd_usagef(cc, "give ok or fail once");
		ok = strcmp(word, "ok") == 0;
		fail = !ok;
	}
	if (ok == fail)
		return cmd_usagef(cc, "give one of --ok or --fail");
	if ((v = arg_get(cc->args, "latency-ms")) == NULL)
		v = arg_get(cc->args, "latency");
	else if (arg_has(cc->args, "latency"))
		return cmd_usagef(cc, "give --latency or --latency-ms once");
	if (v != NULL) {
		if (!ok)
			return cmd_usagef(cc, "--latency-ms goes with --ok");
		if (pw_parse_double(v, 0, 3.6e6, &lat) != 0)
			return cmd_usagef(cc, "--latency-ms: '%s': want "
			    "milliseconds from 0 to 3600000", v);
	}
	/* A proxy the service handed out: the outcome is the service's. */
	if (pw_service_enabled(cc->ctx)) {
		r = pw_service_resolve(cc->ctx, cc->args->argv[0], &id);
		if (r == 0) {
			if ((r = pw_service_report(cc->ctx, id, ok, lat,
			    NULL)) != 0)
				return pw_err_prefix(&cc->ctx->err, "%s",
				    cc->path);
			if (cc->verbose)
				fprintf(stderr, "pw: %s: proxy %lld: queued "
				    "for the service\n", cc->path,
				    (long long)id);
			return 0;
		}
		if (r != PW_ENOTFOUND)
			return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	}
	if ((r = pw_pool_resolve(cc->ctx, cc->args->argv[0], &id)) != 0 ||
	    (r = pw_pool_report(cc->ctx, id, ok ? PW_REPORT_OK :
	    PW_REPORT_FAIL, lat)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	return 0;
}

static int
pool_flush(struct pw_cmdctx *cc)
{
	struct pw_flush_result	fr;
	int64_t			budget = 10;
	int			r;

	if ((r = cmd_int_opt(cc, "timeout", 1, 3600, &budget)) != 0)
		return r;
	if (!pw_service_enabled(cc->ctx))
		return cmd_usagef(cc, "no service configured (set "
		    "service.endpoints)");
	r = pw_service_flush(cc->ctx, budget * 1000, &fr);
	if (!cc->quiet)
		fprintf(stderr, "pw: %s: sent %lld, %lld left\n", cc->path,
		    (long long)fr.sent, (long long)fr.left);
	if (r != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	return 0;
}

/* ------------------------------------------------------------ sessions */

static const struct out_col session_cols[] = {
	{ "session", COL_STR, 1 },
	{ "proxy_id", COL_INT, 1 },
	{ "url", COL_STR, 1 },
	{ "requests", COL_INT, 1 },
	{ "failovers", COL_INT, 1 },
	{ "created_at", COL_TIME, 0 },
	{ "last_used", COL_TIME, 0 },
	{ "expires_at", COL_TIME, 1 },
};
#define NSESSION_COLS ((int)(sizeof session_cols / sizeof session_cols[0]))

struct sessions_arg {
	struct pw_cmdctx	*cc;
	struct out		*o;
};

static int
sessions_one(void *arg, const struct pw_session *s)
{
	struct sessions_arg	*sa = arg;
	struct pw_proxy		 p;
	struct proxy_vals	 pv;
	char			 num[5][32];
	const char		*v[NSESSION_COLS];

	memset(&pv, 0, sizeof pv);
	if (pw_pool_get(sa->cc->ctx, s->proxy_id, sa->cc->show_secrets,
	    &p) == 0) {
		proxy_vals_fill(&pv, &p, sa->cc->show_secrets);
		pw_proxy_release(&p);
	}
	v[0] = s->id;
	v[1] = fmt_i64(num[0], s->proxy_id, 0);
	v[2] = pv.url;
	v[3] = fmt_i64(num[1], s->requests, 0);
	v[4] = fmt_i64(num[2], s->failovers, 0);
	v[5] = fmt_i64(num[3], s->created_at, 1);
	v[6] = fmt_i64(num[4], s->last_used, 1);
	v[7] = fmt_i64(pv.num[0], s->expires_at, 1);
	out_row(sa->o, v);
	free(pv.url);
	return 0;
}

static int
pool_sessions(struct pw_cmdctx *cc)
{
	struct sessions_arg	sa = { cc, NULL };
	int			r;

	sa.o = out_new(cc->fmt, session_cols, NSESSION_COLS, cc->color);
	r = pw_session_each(cc->ctx, sessions_one, &sa);
	out_free(sa.o);
	return r;
}

static const struct pw_opt meta_optv[] = {
	{ "country", 0, "CC", 0, "ISO 3166-1 alpha-2 country code" },
	{ "region", 0, "REGION", 0, "region, city or any grouping" },
	{ "source", 0, "NAME", 0, "where the proxy came from" },
	{ "weight", 0, "W", 0, "weight for the weighted strategy (0-1e9)" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt ls_optv[] = {
	{ "status", 0, "STATUS", 0,
	  "unknown, healthy, degraded, unhealthy or pending" },
	{ "scheme", 0, "SCHEME", 0, "http, https, socks4, socks4a, socks5 or "
	  "socks5h" },
	{ "source", 0, "NAME", 0, "only proxies from this source" },
	{ "country", 0, "CC", 0, "only proxies in this country" },
	{ "region", 0, "REGION", 0, "only proxies in this region" },
	{ "anonymity", 0, "GRADE", 0, "transparent, anonymous or elite" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt next_optv[] = {
	{ "strategy", 's', "NAME", 0, "round-robin, random, weighted, "
	  "least-used, performance, sticky, geo or a plugin's name" },
	{ "strategy-plugin", 0, "PATH", 0, "load a strategy plugin and use "
	  "it" },
	{ "session", 0, "ID", 0, "keep the same proxy for this session id" },
	{ "country", 0, "CC", 0, "only proxies in this country" },
	{ "region", 0, "REGION", 0, "only proxies in this region" },
	{ "scheme", 0, "SCHEME", 0, "only proxies of this scheme" },
	{ "source", 0, "NAME", 0, "only proxies from this source" },
	{ "status", 0, "STATUS", 0, "only proxies with this status" },
	{ "anonymity", 0, "GRADE", 0, "transparent, anonymous or elite" },
	{ "max-latency", 0, "MS", 0, "only proxies at most this slow "
	  "(EMA)" },
	{ "exclude", 'x', "ID", OPT_REPEAT, "never this proxy (repeatable)" },
	{ "format", 'f', "FMT", 0, "url (default) or json" },
	{ "target", 0, "URL", 0, "the URL the proxy is for (asked of a "
	  "service)" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt report_optv[] = {
	{ "ok", 0, NULL, 0, "the request through the proxy worked" },
	{ "fail", 0, NULL, 0, "the request through the proxy failed" },
	{ "latency-ms", 0, "MS", 0, "how long it took (with --ok)" },
	{ "latency", 0, "MS", 0, "the same as --latency-ms" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt flush_optv[] = {
	{ "timeout", 0, "SECONDS", 0, "give up sending after this long "
	  "(default 10)" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt clear_optv[] = {
	{ "yes", 'y', NULL, 0, "really remove every proxy" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_cmd pool_add_entry = {
	"add", "add proxies to the pool", "[options] URL...|-", meta_optv,
	1, -1, CMD_STORE_RW | CMD_OUTPUT, pool_add, NULL
};
static const struct pw_cmd pool_rm_entry = {
	"rm", "remove proxies", "ID|URL...", NULL,
	1, -1, CMD_STORE_RW, pool_rm, NULL
};
static const struct pw_cmd pool_ls_entry = {
	"ls", "list proxies", "[options]", ls_optv,
	0, 0, CMD_STORE_RO | CMD_OUTPUT, pool_ls, NULL
};
static const struct pw_cmd pool_show_entry = {
	"show", "show everything about one proxy", "ID|URL", NULL,
	1, 1, CMD_STORE_RO | CMD_OUTPUT, pool_show, NULL
};
static const struct pw_cmd pool_set_entry = {
	"set", "change a proxy's metadata", "ID|URL [options]", meta_optv,
	1, 1, CMD_STORE_RW, pool_set, NULL
};
static const struct pw_cmd pool_clear_entry = {
	"clear", "remove every proxy", "--yes", clear_optv,
	0, 0, CMD_STORE_RW, pool_clear, NULL
};

static const struct pw_cmd pool_next_entry = {
	"next", "choose a proxy and print its URL", "[options]", next_optv,
	0, 0, CMD_STORE_RW, pool_next, NULL
};
static const struct pw_cmd pool_report_entry = {
	"report", "record how a request through a proxy went",
	"ID|URL ok|fail [--latency MS]", report_optv,
	1, 2, CMD_STORE_RW, pool_report, NULL
};
static const struct pw_cmd pool_flush_entry = {
	"flush", "send the outcomes queued for the service", "[options]",
	flush_optv, 0, 0, CMD_STORE_RW, pool_flush, NULL
};
static const struct pw_cmd pool_sessions_entry = {
	"sessions", "list live sticky sessions", "[options]", NULL,
	0, 0, CMD_STORE_RO | CMD_OUTPUT, pool_sessions, NULL
};

static const struct pw_cmd *const pool_verbs[] = {
	&pool_add_entry,
	&pool_rm_entry,
	&pool_ls_entry,
	&pool_show_entry,
	&pool_set_entry,
	&pool_clear_entry,
	&pool_next_entry,
	&pool_report_entry,
	&pool_flush_entry,
	&pool_sessions_entry,
	NULL
};

const struct pw_cmd cmd_pool_entry = {
	"pool", "manage the proxy pool", "VERB [options] [ARGS]", NULL,
	0, -1, 0, NULL, pool_verbs
};
