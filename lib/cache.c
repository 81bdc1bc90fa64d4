/*
 * cache.c -- the pool as a cache: warming it from lists in batches,
 * exporting it, expiring and evicting, and its statistics.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

static const char *const evict_names[PW_EVICT_COUNT] = {
	"ttl", "health", "manual", "corruption"
};
static const char *const evict_stats[PW_EVICT_COUNT] = {
	"evict.ttl", "evict.health", "evict.manual", "evict.corruption"
};

/* Rows a prune or an eviction deletes per transaction. */
#define EVICT_BATCH	10000
/* Export hands its output on in chunks of about this size. */
#define EXPORT_CHUNK	(256 * 1024)

const char *
pw_evict_name(int reason)
{
	return reason >= 0 && reason < PW_EVICT_COUNT ? evict_names[reason] :
	    "?";
}

const char *
pw_evict_stat(int reason)
{
	return evict_stats[reason];
}

/* ------------------------------------------------------------- id set */

/* Open addressing over int64 ids (never 0), for "seen in this run". */
struct idset {
	int64_t	*slot;
	size_t	 cap, n;
};

static size_t
id_hash(int64_t id, size_t cap)
{
	uint64_t	x = (uint64_t)id * 0x9e3779b97f4a7c15ULL;

	return (size_t)(x >> 17) & (cap - 1);
}

static int
idset_has(const struct idset *s, int64_t id)
{
	if (s->cap == 0)
		return 0;
	for (size_t i = id_hash(id, s->cap);; i = (i + 1) & (s->cap - 1)) {
		if (s->slot[i] == id)
			return 1;
		if (s->slot[i] == 0)
			return 0;
	}
}

static void
idset_add(struct idset *s, int64_t id)
{
	size_t	i;

	if (2 * (s->n + 1) > s->cap) {
		struct idset	ns = { NULL, s->cap ? s->cap * 2 : 1024, 0 };
		ns.slot = pw_xcalloc(ns.cap, sizeof *ns.slot);
		for (size_t k = 0; k < s->cap; k++)
			if (s->slot[k] != 0)
				idset_add(&ns, s->slot[k]);
		free(s->slot);
		*s = ns;
	}
	for (i = id_hash(id, s->cap); s->slot[i] != 0 && s->slot[i] != id;
	    i = (i + 1) & (s->cap - 1))
		;
	if (s->slot[i] == 0) {
		s->slot[i] = id;
		s->n++;
	}
}

/* --------------------------------------------------------------- warm */

struct pend {
	struct pw_addr	 a;
	char		 country[3];
	char		*region, *source;
	double		 weight;
	int64_t		 expires_at;
};

struct pw_warm {
	struct pw_ctx		*ctx;
	struct pw_ingest	*in;
	struct pw_meta		 meta;
	pw_reject_fn		*reject;
	void			*reject_arg;
	struct pw_warm_counts	 c;
	struct pend		*pend;
	int64_t			*flush_ids;	/* id of each pending one */
	struct pw_row		*rows;		/* their rows, while flushing */
	int			 tuned;		/* pw_store_bulk done */
	size_t			 npend, batch;
	int			 need_key;
	int			 pending;	/* new ones wait for a check */
	struct idset		 seen;
	int64_t			*ids;
	size_t			 nids, capids;
};

struct pw_warm *
pw_warm_new(struct pw_ctx *ctx)
{
	struct pw_warm	*w = pw_xcalloc(1, sizeof *w);

	w->ctx = ctx;
	w->batch = (size_t)pw_config_int(ctx, "cache.batch");
	if (w->batch < 1)
		w->batch = 1;
	w->pend = pw_xcalloc(w->batch, sizeof *w->pend);
	w->flush_ids = pw_xcalloc(w->batch, sizeof *w->flush_ids);
	w->rows = pw_xcalloc(w->batch, sizeof *w->rows);
	return w;
}

static void
pend_release(struct pend *p)
{
	pw_addr_release(&p->a);
	free(p->region);
	free(p->source);
	memset(p, 0, sizeof *p);
}

void
pw_warm_free(struct pw_warm *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->npend; i++)
		pend_release(&w->pend[i]);
	free(w->pend);
	free(w->flush_ids);
	free(w->rows);
	pw_ingest_free(w->in);
	free(w->seen.slot);
	free(w->ids);
	free(w);
}

static void
ids_push(struct pw_warm *w, int64_t id)
{
	if (w->nids == w->capids) {
		w->capids = w->capids ? w->capids * 2 : 1024;
		w->ids = pw_xrealloc(w->ids, w->capids * sizeof *w->ids);
	}
	w->ids[w->nids++] = id;
}

/*
 * Write the pending records in one short transaction: inserted many rows
 * a statement, then sorted into added, updated (refreshed here) and
 * duplicate by their ids.
 */
static int
flush(struct pw_warm *w)
{
	struct pw_ctx	*ctx = w->ctx;
	struct pw_proxy	 m;
	struct pw_row	*rows, row;
	int64_t		 now = pw_now(), max_before, id;
	size_t		 i, n = w->npend;
	int		 r;

	if (n == 0)
		return 0;
	if (w->need_key && (r = pw_ctx_key(ctx, 1)) != 0)
		return r;
	rows = w->rows;
	for (i = 0; i < n; i++) {
		struct pend *p = &w->pend[i];
		memset(&m, 0, sizeof m);
		m.source = w->meta.source ? (char *)w->meta.source : p->source;
		m.country = p->country[0] ? p->country :
		    (char *)w->meta.country;
		m.region = p->region ? p->region : (char *)w->meta.region;
		m.weight = p->weight >= 0 ? p->weight : w->meta.weight;
		m.added_at = now;
		m.expires_at = p->expires_at > 0 ? p->expires_at :
		    w->meta.ttl > 0 ? now + w->meta.ttl : 0;
		pw_pool_row(ctx, &p->a, &m, &rows[i]);
	}
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		goto out;
	/* After begin: that is when a new state file is made. */
	if (!w->tuned) {
		if ((r = pw_store_bulk(ctx->store, &ctx->err)) != 0)
			goto fail;
		w->tuned = 1;
	}
	if ((r = pw_store_max_id(ctx->store, &max_before, &ctx->err)) != 0 ||
	    (r = pw_store_proxy_insert_many(ctx->store, rows, n,
	    w->flush_ids, &ctx->err)) != 0)
		goto fail;
	/* In the same transaction: never seen eligible, not for a moment. */
	if (w->pending && (r = pw_store_proxy_pend(ctx->store, max_before,
	    &ctx->err)) != 0)
		goto fail;
	for (i = 0; i < n; i++) {
		id = w->flush_ids[i];
		if (idset_has(&w->seen, id)) {
			w->c.duplicate++;
			continue;
		}
		if (id > max_before)
			w->c.added++;
		else {
			row = rows[i];
			if ((r = pw_store_proxy_refresh(ctx->store, id, &row,
			    now, &ctx->err)) != 0 ||
			    (r = pw_pool_pass_update(ctx, id, &w->pend[i].a,
			    now)) < 0)
				goto fail;
			r = 0;
			w->c.updated++;
		}
		idset_add(&w->seen, id);
		ids_push(w, id);
	}
	if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0)
		goto out;
	for (i = 0; i < n; i++)
		pend_release(&w->pend[i]);
	w->npend = 0;
	w->need_key = 0;
	goto out;
fail:
	pw_store_rollback(ctx->store);
out:
	for (i = 0; i < n; i++)
		pw_pool_row_release(&rows[i]);
	return r;
}

static int
warm_record(void *arg, struct pw_record *rec)
{
	struct pw_warm	*w = arg;
	struct pend	*p = &w->pend[w->npend++];

	p->a = rec->addr;
	memcpy(p->country, rec->country, 3);
	p->region = rec->region ? pw_xstrdup(rec->region) : NULL;
	p->source = rec->source ? pw_xstrdup(rec->source) : NULL;
	p->weight = rec->weight;
	p->expires_at = rec->expires_at;
	if (p->a.user != NULL)
		w->need_key = 1;
	w->c.records++;
	if (w->npend == w->batch)
		return flush(w);
	return 0;
}

static void
warm_reject(void *arg, long line, const char *why)
{
	struct pw_warm	*w = arg;

	w->c.invalid++;
	if (w->reject != NULL)
		w->reject(w->reject_arg, line, why);
}

void
pw_warm_input(struct pw_warm *w, int format, const struct pw_meta *meta,
    pw_reject_fn *reject, void *arg)
{
	pw_ingest_free(w->in);
	w->in = pw_ingest_new(format, warm_record, warm_reject, w);
	w->meta = *meta;
	w->reject = reject;
	w->reject_arg = arg;
	memset(&w->c, 0, sizeof w->c);
}

int
pw_warm_feed(struct pw_warm *w, const void *p, size_t n)
{
	return pw_ingest_feed(w->in, p, n);
}

int
pw_warm_input_end(struct pw_warm *w, struct pw_warm_counts *c)
{
	int	r;

	if ((r = pw_ingest_end(w->in)) != 0 || (r = flush(w)) != 0)
		return r;
	*c = w->c;
	return 0;
}

void
pw_warm_pending(struct pw_warm *w, int on)
{
	w->pending = on;
}

int
pw_warm_format(const struct pw_warm *w)
{
	return w->in != NULL ? pw_ingest_format(w->in) : PW_FMT_AUTO;
}

const int64_t *
pw_warm_ids(const struct pw_warm *w, size_t *n)
{
	*n = w->nids;
	return w->ids;
}

int
pw_warm_finish(struct pw_warm *w)
{
	struct pw_ctx	*ctx = w->ctx;
	int		 r;

	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		return r;
	if ((r = pw_store_meta_put(ctx->store, "last_warm", pw_now(),
	    &ctx->err)) != 0) {
		pw_store_rollback(ctx->store);
		return r;
	}
	return pw_store_commit(ctx->store, &ctx->err);
}

/* ---------------------------------------------------------- corruption */

/*
 * Can row r be read: does its URL parse and agree with its columns, and
 * (unseal) do its credentials open? On success a is the address, with
 * the credentials when unsealed; on failure why says what is wrong and
 * *sealed says it was the credentials.
 */
static int
row_check(struct pw_ctx *ctx, const struct pw_row *r, int unseal,
    struct pw_addr *a, int *sealed, char *why, size_t whylen)
{
	struct pw_err	 err = { 0 };
	char		*user = NULL, *pass = NULL;

	*sealed = 0;
	if (r->url == NULL || pw_addr_parse(r->url, a, &err) != 0) {
		snprintf(why, whylen, "its URL does not parse");
		return -1;
	}
	if (a->user != NULL || a->scheme != r->p.addr.scheme ||
	    a->port != r->p.addr.port || r->p.addr.host == NULL ||
	    strcmp(a->host, r->p.addr.host) != 0) {
		pw_addr_release(a);
		snprintf(why, whylen, "its URL and its columns disagree");
		return -1;
	}
	if (!unseal || r->user == NULL)
		return 0;
	if (pw_crypto_unseal(ctx->key, r->user, r->user_len, &user,
	    &err) != 0 || (r->pass != NULL && pw_crypto_unseal(ctx->key,
	    r->pass, r->pass_len, &pass, &err) != 0)) {
		pw_secret_free(user);
		pw_addr_release(a);
		*sealed = 1;
		snprintf(why, whylen, "its credentials cannot be unsealed");
		return -1;
	}
	a->user = user;
	a->pass = pass;
	return 0;
}

struct corrupt {
	int64_t	*ids;
	size_t	 n, cap;
	int64_t	 sealed_bad, sealed_ok;
};

static void
corrupt_add(struct corrupt *c, int64_t id, int sealed, const char *why)
{
	pw_log(PW_LOG_WARN, "proxy %lld: %s: evicting it (corruption)",
	    (long long)id, why);
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->ids = pw_xrealloc(c->ids, c->cap * sizeof *c->ids);
	}
	c->ids[c->n++] = id;
	c->sealed_bad += sealed;
}

/*
 * Evict the corrupt rows, counted, in batches. When the key opens no
 * sealed row at all, it is the key that is wrong, not the rows: those
 * are kept and that is an error.
 */
static int
corrupt_evict(struct pw_ctx *ctx, struct corrupt *c, int64_t *evicted)
{
	size_t	i = 0, k;
	int	r;

	*evicted = 0;
	if (c->sealed_bad > 0 && c->sealed_ok == 0)
		return pw_failf(&ctx->err, PW_ESTATE, "the key opens none of "
		    "the %lld sealed credentials: wrong $PW_SECRET_KEY or key "
		    "file? (nothing evicted)", (long long)c->sealed_bad);
	while (i < c->n) {
		if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
			return r;
		for (k = 0; i < c->n && k < EVICT_BATCH; i++, k++)
			if ((r = pw_store_proxy_delete(ctx->store, c->ids[i],
			    &ctx->err)) != 0)
				goto fail;
		if ((r = pw_store_stat_add(ctx->store,
		    evict_stats[PW_EVICT_CORRUPTION], (int64_t)k,
		    &ctx->err)) != 0)
			goto fail;
		if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0)
			return r;
		*evicted += k;
	}
	return 0;
fail:
	pw_store_rollback(ctx->store);
	return r;
}

/* ------------------------------------------------------------- export */

struct export_arg {
	struct pw_ctx	*ctx;
	int		 format, creds;
	pw_write_fn	*write;
	void		*arg;
	struct pw_buf	 b;
	long		 n;
	struct corrupt	 bad;
	int		 key_missing;
};

static int
export_row(void *arg, const struct pw_row *r)
{
	struct export_arg	*ea = arg;
	struct pw_export	 x;
	struct pw_proxy		 p;
	struct pw_addr		 a;
	char			 why[96], *url;
	int			 sealed, rc;

	if (ea->creds && r->user != NULL && ea->ctx->key == NULL) {
		ea->key_missing = 1;
		return PW_ESTATE;
	}
	if (row_check(ea->ctx, r, ea->creds, &a, &sealed, why,
	    sizeof why) != 0) {
		corrupt_add(&ea->bad, r->p.id, sealed, why);
		return 0;
	}
	if (ea->creds && r->user != NULL)
		ea->bad.sealed_ok++;
	p = r->p;
	p.addr = a;
	url = pw_addr_format(&a, ea->creds ? PW_CREDS_SHOW : PW_CREDS_NONE);
	x.p = &p;
	x.url = url;
	pw_ingest_write(ea->format, &x, ea->n++, &ea->b);
	if (ea->creds)
		pw_secret_free(url);
	else
		free(url);
	pw_addr_release(&a);
	if (ea->b.len >= EXPORT_CHUNK) {
		rc = ea->write(ea->arg, ea->b.data, ea->b.len);
		pw_buf_reset(&ea->b);
		return rc;
	}
	return 0;
}

int
pw_cache_export(struct pw_ctx *ctx, int format, int creds,
    pw_write_fn *write, void *arg, int64_t *n)
{
	struct export_arg	ea;
	int64_t			evicted;
	int			r, kr = 0;

	memset(&ea, 0, sizeof ea);
	ea.ctx = ctx;
	ea.format = format;
	ea.creds = creds;
	ea.write = write;
	ea.arg = arg;
	pw_buf_init(&ea.b);
	/* No key: an error only if some row has credentials to show. */
	if (creds && (kr = pw_ctx_key(ctx, 0)) != 0 && kr != PW_ESTATE)
		return kr;
	pw_ingest_write_begin(format, &ea.b);
	r = pw_store_proxy_each(ctx->store, NULL, 0, export_row, &ea,
	    &ctx->err);
	if (ea.key_missing) {
		/* ctx->err still says why the key did not load. */
		r = PW_ESTATE;
		pw_err_prefix(&ctx->err, "--with-credentials");
	}
	if (r == 0) {
		pw_ingest_write_end(format, ea.n, &ea.b);
		if (ea.b.len > 0)
			r = write(arg, ea.b.data, ea.b.len);
	}
	/* With credentials, the buffer held secrets. */
	pw_secret_free(pw_buf_detach(&ea.b));
	if (r == 0 && ea.bad.n > 0)
		r = corrupt_evict(ctx, &ea.bad, &evicted);
	free(ea.bad.ids);
	if (r == 0)
		*n = ea.n;
	return r;
}

/* -------------------------------------------------------------- prune */

struct scan_arg {
	struct pw_ctx	*ctx;
	int		 unseal;
	struct corrupt	 bad;
};

static int
scan_row(void *arg, const struct pw_row *r)
{
	struct scan_arg	*sa = arg;
	struct pw_addr	 a;
	char		 why[96];
	int		 sealed;

	if (row_check(sa->ctx, r, sa->unseal, &a, &sealed, why,
	    sizeof why) != 0) {
		corrupt_add(&sa->bad, r->p.id, sealed, why);
		return 0;
	}
	if (sa->unseal && r->user != NULL)
		sa->bad.sealed_ok++;
	pw_addr_release(&a);
	return 0;
}

/* Remove the proxies `what` says, EVICT_BATCH a transaction; *n counts. */
static int
evict_all(struct pw_ctx *ctx, int what, int64_t now, int64_t *n)
{
	int64_t	k;
	int	r;

	*n = 0;
	do {
		if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
			return r;
		if ((r = pw_store_evict(ctx->store, what, now, EVICT_BATCH, &k,
		    &ctx->err)) != 0 || (k > 0 &&
		    (r = pw_store_stat_add(ctx->store, evict_stats[what], k,
		    &ctx->err)) != 0)) {
			pw_store_rollback(ctx->store);
			return r;
		}
		if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0)
			return r;
		*n += k;
	} while (k == EVICT_BATCH);
	return 0;
}

int
pw_cache_prune_expired(struct pw_ctx *ctx, int64_t *removed)
{
	return evict_all(ctx, PW_EVICT_TTL, pw_now(), removed);
}

int
pw_cache_prune(struct pw_ctx *ctx, int64_t removed[PW_EVICT_COUNT])
{
	static const int	 what[2] = { PW_EVICT_TTL, PW_EVICT_HEALTH };
	struct scan_arg		 sa;
	int64_t			 got[PW_EVICT_COUNT] = { 0 }, now = pw_now();
	int			 r;

	for (int w = 0; w < 2; w++)
		if ((r = evict_all(ctx, what[w], now, &got[what[w]])) != 0)
			return r;
	/* Rows that cannot be read; credentials too when the key is here. */
	memset(&sa, 0, sizeof sa);
	sa.ctx = ctx;
	sa.unseal = pw_ctx_key(ctx, 0) == 0;
	pw_err_clear(&ctx->err);
	r = pw_store_proxy_each(ctx->store, NULL, 0, scan_row, &sa,
	    &ctx->err);
	if (r == 0 && sa.bad.n > 0)
		r = corrupt_evict(ctx, &sa.bad, &got[PW_EVICT_CORRUPTION]);
	free(sa.bad.ids);
	if (r == 0)
		memcpy(removed, got, sizeof got);
	return r;
}

/* -------------------------------------------------------------- stats */

int
pw_cache_stats(struct pw_ctx *ctx, struct pw_cache_stats *s)
{
	struct pw_cache_stats	 cs;
	struct stat		 sb;
	const char		*path = pw_store_path(ctx->store);
	char			*wal;
	int			 r;

	memset(&cs, 0, sizeof cs);
	if ((r = pw_store_cache_stats(ctx->store, pw_now(), &cs,
	    &ctx->err)) != 0) {
		pw_cache_stats_release(&cs);
		return r;
	}
	if (stat(path, &sb) == 0)
		cs.file_bytes += sb.st_size;
	wal = pw_xasprintf("%s-wal", path);
	if (stat(wal, &sb) == 0)
		cs.file_bytes += sb.st_size;
	free(wal);
	*s = cs;
	return 0;
}

void
pw_cache_stats_release(struct pw_cache_stats *s)
{
	for (size_t i = 0; i < s->nsources; i++)
		free(s->by_source[i].name);
	free(s->by_source);
	memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------ sources */

static int
source_entry(const char *s, const char *e, struct pw_source **out,
    size_t *n, struct pw_err *err)
{
	const char	*w[3][2];
	int		 nw = 0, fmt = PW_FMT_AUTO;
	struct pw_source *src;
	char		*word;

	while (s < e) {
		while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
			s++;
		if (s == e || *s == '#')
			break;
		if (nw == 3)
			return pw_failf(err, PW_EUSAGE, "'%.*s': want URL "
			    "[FORMAT [NAME]]", (int)(e - s), s);
		w[nw][0] = s;
		while (s < e && *s != ' ' && *s != '\t' && *s != '\r')
			s++;
		w[nw++][1] = s;
	}
	if (nw == 0)
		return 0;
	if (strncasecmp(w[0][0], "http://", 7) != 0 &&
	    strncasecmp(w[0][0], "https://", 8) != 0)
		return pw_failf(err, PW_EUSAGE, "'%.*s': not an http:// or "
		    "https:// URL", (int)(w[0][1] - w[0][0]), w[0][0]);
	if (nw > 1) {
		word = pw_xstrndup(w[1][0], w[1][1] - w[1][0]);
		if (pw_format_parse(word, &fmt) != 0) {
			pw_failf(err, PW_EUSAGE, "'%s': unknown format (want "
			    "auto, txt, csv, json or jsonl)", word);
			free(word);
			return PW_EUSAGE;
		}
		free(word);
	}
	*out = pw_xrealloc(*out, (*n + 1) * sizeof **out);
	src = &(*out)[(*n)++];
	src->url = pw_xstrndup(w[0][0], w[0][1] - w[0][0]);
	if (fmt == PW_FMT_AUTO)
		fmt = pw_format_from_name(src->url);
	src->format = fmt;
	if (nw > 2)
		src->name = pw_xstrndup(w[2][0], w[2][1] - w[2][0]);
	else {
		/* host/path, without scheme, query or credentials. */
		const char *h = strstr(src->url, "://") + 3, *q;
		const char *at = strchr(h, '@'), *sl = strchr(h, '/');
		if (at != NULL && (sl == NULL || at < sl))
			h = at + 1;
		q = h + strcspn(h, "?#");
		src->name = pw_xstrndup(h, q - h);
	}
	return 0;
}

static int
sources_text(const char *text, struct pw_source **out, size_t *n,
    struct pw_err *err)
{
	const char	*s = text, *e;
	int		 r;

	while (*s != '\0') {
		e = s + strcspn(s, ",\n");
		if ((r = source_entry(s, e, out, n, err)) != 0)
			return r;
		s = *e ? e + 1 : e;
	}
	return 0;
}

int
pw_sources_parse(const char *value, struct pw_source **out, size_t *n,
    struct pw_err *err)
{
	struct pw_source	*list = NULL;
	size_t			 nl = 0;
	struct pw_buf		 b;
	FILE			*f;
	char			 chunk[4096];
	size_t			 k;
	int			 r;

	if (value == NULL || *value == '\0')
		return pw_failf(err, PW_EUSAGE, "cache.sources is not set "
		    "(see pw-cache(1) and share/sources.example)");
	if (value[0] == '@') {
		if ((f = fopen(value + 1, "r")) == NULL)
			return pw_failf(err, PW_EUSAGE, "cache.sources: %s: %s",
			    value + 1, strerror(errno));
		pw_buf_init(&b);
		while ((k = fread(chunk, 1, sizeof chunk, f)) > 0 &&
		    b.len < 1024 * 1024)
			pw_buf_add(&b, chunk, k);
		fclose(f);
		r = sources_text(b.data, &list, &nl, err);
		pw_buf_release(&b);
	} else
		r = sources_text(value, &list, &nl, err);
	if (r == 0 && nl == 0)
		r = pw_failf(err, PW_EUSAGE, "cache.sources lists no source");
	if (r != 0) {
		pw_err_prefix(err, "cache.sources");
		pw_sources_free(list, nl);
		return r;
	}
	*out = list;
	*n = nl;
	return 0;
}

void
pw_sources_free(struct pw_source *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].url);
		free(s[i].name);
	}
	free(s);
}
