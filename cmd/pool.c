/*
 * pool.c -- "pw pool": add, remove, list, show, change and clear proxies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Metadata options shared by add and set; validated into m. */
static int
meta_opts(struct pw_cmdctx *cc, struct pw_meta *m, char cc_buf[3])
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
		lineno++;
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

	if ((r = meta_opts(cc, &m, ccode)) != 0)
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
			    "added" : "duplicate" };
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
pool_rm(struct pw_cmdctx *cc)
{
	int64_t	*ids = NULL;
	int	 r;

	if ((r = resolve_all(cc, &ids)) != 0)
		return r;
	r = pw_pool_remove(cc->ctx, ids, cc->args->argc);
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
		    "degraded or unhealthy", v);
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

	if ((r = meta_opts(cc, &m, ccode)) != 0)
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

static const struct pw_opt meta_optv[] = {
	{ "country", 0, "CC", 0, "ISO 3166-1 alpha-2 country code" },
	{ "region", 0, "REGION", 0, "region, city or any grouping" },
	{ "source", 0, "NAME", 0, "where the proxy came from" },
	{ "weight", 0, "W", 0, "weight for the weighted strategy (0-1e9)" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt ls_optv[] = {
	{ "status", 0, "STATUS", 0,
	  "unknown, healthy, degraded or unhealthy" },
	{ "scheme", 0, "SCHEME", 0, "http, https, socks4, socks4a, socks5 or "
	  "socks5h" },
	{ "source", 0, "NAME", 0, "only proxies from this source" },
	{ "country", 0, "CC", 0, "only proxies in this country" },
	{ "region", 0, "REGION", 0, "only proxies in this region" },
	{ "anonymity", 0, "GRADE", 0, "transparent, anonymous or elite" },
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

static const struct pw_cmd *const pool_verbs[] = {
	&pool_add_entry,
	&pool_rm_entry,
	&pool_ls_entry,
	&pool_show_entry,
	&pool_set_entry,
	&pool_clear_entry,
	NULL
};

const struct pw_cmd cmd_pool_entry = {
	"pool", "manage the proxy pool", "VERB [options] [ARGS]", NULL,
	0, -1, 0, NULL, pool_verbs
};
