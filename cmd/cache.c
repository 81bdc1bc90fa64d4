/*
 * cache.c -- "pw cache": warm the pool from lists, export it, prune what
 * expired or died, and show its statistics.
 *
 * Warming a file or stdin never loads libcurl: only a URL or the
 * configured sources make requests (lib/download.c loads it then).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

#define READ_CHUNK	(256 * 1024)

static int
is_url(const char *s)
{
	return strncasecmp(s, "http://", 7) == 0 ||
	    strncasecmp(s, "https://", 8) == 0;
}

static int
format_opt(struct pw_cmdctx *cc, int def, int allow_auto, int *out)
{
	const char	*v = arg_get(cc->args, "format");

	*out = def;
	if (v == NULL)
		return 0;
	if (pw_format_parse(v, out) != 0 || (!allow_auto &&
	    *out == PW_FMT_AUTO))
		return cmd_usagef(cc, "--format: '%s': want %stxt, csv, json "
		    "or jsonl", v, allow_auto ? "auto, " : "");
	return 0;
}

/* --------------------------------------------------------------- warm */

static const struct out_col warm_cols[] = {
	{ "source", COL_STR, 1 },
	{ "format", COL_STR, 0 },
	{ "status", COL_STR, 1 },
	{ "records", COL_INT, 1 },
	{ "added", COL_INT, 1 },
	{ "updated", COL_INT, 1 },
	{ "duplicate", COL_INT, 1 },
	{ "invalid", COL_INT, 1 },
	{ "error", COL_STR, 1 },
	/* With --validate only. */
	{ "validated", COL_INT, 1 },
	{ "healthy", COL_INT, 1 },
	{ "failed", COL_INT, 1 },
};
#define NWARM_COLS	9
#define NWARM_VCOLS	((int)(sizeof warm_cols / sizeof warm_cols[0]))

/* One input's line of the summary, kept until validation counted it. */
struct warm_line {
	char			*source, *status, *error;
	int			 format, counted;
	struct pw_warm_counts	 c;
	int64_t			 v[3];	/* validated, healthy, failed */
};

struct warm_run {
	struct pw_cmdctx	*cc;
	struct pw_warm		*w;
	struct pw_meta		 meta;
	const char		*name;	/* for warnings */
	struct out		*o;
	int			 format;
	int			 validate;
	struct warm_line	*lines;
	size_t			 nlines;
	size_t			*line_end;	/* ids before line i's end */
	struct warm_owner	*owner;		/* id -> line, by id */
	size_t			 nowner;
	size_t			 nsources;	/* --sources: configured */
	size_t			 failed;	/* and not fetched */
};

static void
warm_reject(void *arg, long line, const char *why)
{
	struct warm_run	*wr = arg;

	if (!wr->cc->quiet)
		fprintf(stderr, "pw: %s: %s:%ld: %s\n", wr->cc->path,
		    wr->name, line, why);
}

static void
line_print(struct warm_run *wr, const struct warm_line *l)
{
	char		 num[8][32];
	const char	*v[NWARM_VCOLS];
	int64_t		 f[8] = { 0 };

	if (l->counted) {
		f[0] = l->c.records;
		f[1] = l->c.added;
		f[2] = l->c.updated;
		f[3] = l->c.duplicate;
		f[4] = l->c.invalid;
	}
	for (int i = 0; i < 3; i++)
		f[5 + i] = l->v[i];
	for (int i = 0; i < 8; i++)
		snprintf(num[i], sizeof num[i], "%lld", (long long)f[i]);
	v[0] = l->source;
	v[1] = pw_format_name(l->format);
	v[2] = l->status;
	for (int i = 0; i < 5; i++)
		v[3 + i] = num[i];
	v[8] = l->error;
	for (int i = 0; i < 3; i++)
		v[9 + i] = num[5 + i];
	if (!wr->cc->quiet)
		out_row(wr->o, v);
}

/*
 * An input is done: its line now, or with --validate once the check
 * has counted it.
 */
static void
warm_row(struct warm_run *wr, const char *source, const char *status,
    const struct pw_warm_counts *c, const char *error)
{
	struct warm_line	 l;
	size_t			 nids;

	memset(&l, 0, sizeof l);
	l.source = (char *)source;
	l.status = (char *)status;
	l.error = (char *)error;
	l.format = pw_warm_format(wr->w);
	if (c != NULL) {
		l.c = *c;
		l.counted = 1;
	}
	if (!wr->validate) {
		line_print(wr, &l);
		return;
	}
	l.source = source ? pw_xstrdup(source) : NULL;
	l.status = pw_xstrdup(status);
	l.error = error ? pw_xstrdup(error) : NULL;
	pw_warm_ids(wr->w, &nids);
	wr->lines = pw_xrealloc(wr->lines, (wr->nlines + 1) *
	    sizeof *wr->lines);
	wr->line_end = pw_xrealloc(wr->line_end, (wr->nlines + 1) *
	    sizeof *wr->line_end);
	wr->line_end[wr->nlines] = nids;
	wr->lines[wr->nlines++] = l;
}

/* ----------------------------------------------------------- validate */

struct warm_owner {
	int64_t	id;
	size_t	line;
};

static int
owner_cmp(const void *a, const void *b)
{
	const struct warm_owner	*x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int
validate_result(void *arg, const struct pw_health_result *r)
{
	struct warm_run		*wr = arg;
	struct warm_owner	 key = { r->id, 0 }, *o;

	o = bsearch(&key, wr->owner, wr->nowner, sizeof *wr->owner,
	    owner_cmp);
	if (o == NULL)
		return 0;
	wr->lines[o->line].v[0]++;
	if (r->status == PW_HEALTHY && !r->evicted)
		wr->lines[o->line].v[1]++;
	else
		wr->lines[o->line].v[2]++;
	return 0;
}

/*
 * Check what this warm added or updated: the new proxies were stored
 * pending, so none was eligible before its check.
 */
static int
warm_validate(struct warm_run *wr, struct pw_health_opts *o)
{
	struct pw_ctx			*ctx = wr->cc->ctx;
	struct pw_health_summary	 s;
	const int64_t			*ids;
	size_t				 n, line = 0;
	int64_t				 conc;
	int				 r;

	ids = pw_warm_ids(wr->w, &n);
	if (n == 0)
		return 0;
	wr->owner = pw_xcalloc(n, sizeof *wr->owner);
	for (size_t i = 0; i < n; i++) {
		while (line + 1 < wr->nlines && i >= wr->line_end[line])
			line++;
		wr->owner[i].id = ids[i];
		wr->owner[i].line = line;
	}
	wr->nowner = n;
	qsort(wr->owner, n, sizeof *wr->owner, owner_cmp);
	conc = o->concurrency > 0 ? o->concurrency :
	    pw_config_int(ctx, "health.concurrency");
	o->concurrency = (int)cmd_fit_fd_limit(conc);
	o->on_result = validate_result;
	o->arg = wr;
	if ((r = pw_health_run(ctx, o, ids, n, &s)) != 0)
		return pw_err_prefix(&ctx->err, "%s: --validate",
		    wr->cc->path);
	return 0;
}

/* --url, --timeout, --concurrency and --evict say how to --validate. */
static int
validate_opts(struct pw_cmdctx *cc, struct pw_health_opts *o, int *on)
{
	static const char *const need[] = {
		"url", "timeout", "concurrency", "evict", NULL
	};
	int	r;

	*on = arg_has(cc->args, "validate");
	if (!*on) {
		for (int i = 0; need[i] != NULL; i++)
			if (arg_has(cc->args, need[i]))
				return cmd_usagef(cc, "--%s needs --validate",
				    need[i]);
		return 0;
	}
	if ((r = cmd_check_opts(cc, o)) != 0)
		return r;
	if ((r = pw_health_check_opts(cc->ctx, o)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s: --validate",
		    cc->path);
	return 0;
}

/* Warm from an open stream. */
static int
warm_stream(struct warm_run *wr, FILE *f, const char *label)
{
	struct pw_ctx		*ctx = wr->cc->ctx;
	struct pw_warm_counts	 c;
	char			*buf = pw_xmalloc(READ_CHUNK);
	size_t			 n;
	int			 r = 0;

	pw_warm_input(wr->w, wr->format, &wr->meta, warm_reject, wr);
	while (r == 0 && (n = fread(buf, 1, READ_CHUNK, f)) > 0)
		r = pw_warm_feed(wr->w, buf, n);
	free(buf);
	if (r == 0 && ferror(f))
		r = pw_failf(&ctx->err, PW_EFAIL, "%s: %s: read error: %s",
		    wr->cc->path, wr->name, strerror(errno));
	if (r == 0)
		r = pw_warm_input_end(wr->w, &c);
	if (r != 0)
		return r;
	warm_row(wr, label, "ok", &c, NULL);
	return 0;
}

/* Warm from bytes in memory (a download). */
static int
warm_bytes(struct warm_run *wr, const char *p, size_t n, const char *label)
{
	struct pw_warm_counts	c;
	int			r;

	pw_warm_input(wr->w, wr->format, &wr->meta, warm_reject, wr);
	if ((r = pw_warm_feed(wr->w, p, n)) == 0)
		r = pw_warm_input_end(wr->w, &c);
	if (r != 0)
		return r;
	warm_row(wr, label, "ok", &c, NULL);
	return 0;
}

static void
download_limits(struct pw_ctx *ctx, size_t *max, int64_t *t, int64_t *ct)
{
	*max = (size_t)pw_config_int(ctx, "cache.max_size");
	*t = pw_config_int(ctx, "fetch.timeout") * 1000;
	*ct = pw_config_int(ctx, "fetch.connect_timeout") * 1000;
}

static int
warm_url(struct warm_run *wr, const char *url)
{
	struct pw_ctx		*ctx = wr->cc->ctx;
	struct pw_download	 d;
	size_t			 max;
	int64_t			 t, ct;
	int			 r;

	download_limits(ctx, &max, &t, &ct);
	pw_download(&url, 1, max, t, ct, &d);
	if (d.error != NULL) {
		r = pw_failf(&ctx->err, PW_EFAIL, "%s: %s: %s",
		    wr->cc->path, wr->name, d.error);
		pw_download_release(&d);
		return r;
	}
	if (wr->format == PW_FMT_AUTO)
		wr->format = pw_format_from_name(url);
	r = warm_bytes(wr, d.data, d.len, wr->meta.source ? wr->meta.source :
	    wr->name);
	pw_download_release(&d);
	return r;
}

/*
 * Every configured source, fetched at once, warmed one after another. A
 * source that could not be fetched is counted in wr->failed, not an
 * error: what the others brought is imported, and validated, all the
 * same.
 */
static int
warm_sources(struct warm_run *wr)
{
	struct pw_ctx		*ctx = wr->cc->ctx;
	struct pw_source	*src = NULL;
	struct pw_download	*d;
	const char		**urls;
	size_t			 n = 0, max;
	int64_t			 t, ct;
	int			 r;

	if ((r = pw_sources_parse(pw_config_get(ctx, "cache.sources", NULL),
	    &src, &n, &ctx->err)) != 0)
		return pw_err_prefix(&ctx->err, "%s", wr->cc->path);
	download_limits(ctx, &max, &t, &ct);
	urls = pw_xcalloc(n, sizeof *urls);
	d = pw_xcalloc(n, sizeof *d);
	for (size_t i = 0; i < n; i++)
		urls[i] = src[i].url;
	pw_download(urls, n, max, t, ct, d);
	for (size_t i = 0; i < n && r == 0; i++) {
		char *shown = pw_redact_url(src[i].url);
		struct pw_meta m = wr->meta;
		wr->name = shown;
		if (d[i].error != NULL) {
			wr->failed++;
			if (!wr->cc->quiet)
				fprintf(stderr, "pw: %s: %s: %s\n",
				    wr->cc->path, shown, d[i].error);
			pw_warm_input(wr->w, src[i].format, &m, NULL, NULL);
			warm_row(wr, src[i].name, "failed", NULL, d[i].error);
		} else {
			/* Each proxy is tagged with its source's name. */
			wr->meta.source = src[i].name;
			wr->format = src[i].format;
			r = warm_bytes(wr, d[i].data, d[i].len, src[i].name);
			wr->meta = m;
		}
		free(shown);
	}
	for (size_t i = 0; i < n; i++)
		pw_download_release(&d[i]);
	free(d);
	free(urls);
	pw_sources_free(src, n);
	wr->nsources = n;
	return r;
}

static int
cache_warm(struct pw_cmdctx *cc)
{
	struct pw_ctx		*ctx = cc->ctx;
	struct pw_health_opts	 ho;
	struct warm_run		 wr;
	const char		*in = cc->args->argc > 0 ? cc->args->argv[0] :
				    NULL;
	const char		*v;
	char			 ccode[3], *shown = NULL;
	FILE			*f = NULL;
	int			 r;

	memset(&wr, 0, sizeof wr);
	wr.cc = cc;
	if ((r = cmd_meta_opts(cc, &wr.meta, ccode)) != 0 ||
	    (r = format_opt(cc, PW_FMT_AUTO, 1, &wr.format)) != 0)
		return r;
	wr.meta.ttl = pw_config_int(ctx, "cache.ttl");
	if ((v = arg_get(cc->args, "ttl")) != NULL &&
	    (pw_parse_duration(v, &wr.meta.ttl) != 0 || wr.meta.ttl < 0 ||
	    wr.meta.ttl > 86400 * 365 * 10))
		return cmd_usagef(cc, "--ttl: '%s': want a duration (90, 90s, "
		    "15m, 2h, 7d) up to 10 years, 0 for never", v);
	if (arg_has(cc->args, "sources") && in != NULL)
		return cmd_usagef(cc, "--sources and '%s': give one", in);
	if (!arg_has(cc->args, "sources") && in == NULL)
		return cmd_usagef(cc, "missing argument (usage: pw %s %s)",
		    cc->path, cc->cmd->usage);
	if ((r = validate_opts(cc, &ho, &wr.validate)) != 0)
		return r;
	if (in != NULL && !is_url(in)) {
		if (strcmp(in, "-") == 0) {
			f = stdin;
			wr.name = "stdin";
		} else if ((f = fopen(in, "r")) == NULL) {
			return pw_failf(&ctx->err, PW_EFAIL, "%s: %s: %s",
			    cc->path, in, strerror(errno));
		} else {
			struct stat sb;
			if (fstat(fileno(f), &sb) == 0 &&
			    S_ISDIR(sb.st_mode)) {
				fclose(f);
				return pw_failf(&ctx->err, PW_EFAIL, "%s: %s: "
				    "is a directory", cc->path, in);
			}
			wr.name = in;
			if (wr.format == PW_FMT_AUTO)
				wr.format = pw_format_from_name(in);
		}
	}
	wr.w = pw_warm_new(ctx);
	pw_warm_pending(wr.w, wr.validate);
	wr.o = out_new(cc->fmt, warm_cols, wr.validate ? NWARM_VCOLS :
	    NWARM_COLS, cc->color);
	if (f != NULL) {
		r = warm_stream(&wr, f, wr.meta.source ? wr.meta.source :
		    wr.name);
		if (f != stdin)
			fclose(f);
	} else {
		if (in != NULL) {
			shown = pw_redact_url(in);
			wr.name = shown;
			r = warm_url(&wr, in);
		} else
			r = warm_sources(&wr);
	}
	{
		size_t	nids;
		/*
		 * A warm is a list that brought proxies: batches committed
		 * before an error count; an empty list, one of invalid
		 * records or failed sources alone do not (the last warm is
		 * what a check of the pool's freshness reads).
		 */
		pw_warm_ids(wr.w, &nids);
		if (nids > 0) {
			if (r == 0)
				r = pw_warm_finish(wr.w);
			else
				pw_warm_finish(wr.w);
		}
	}
	/*
	 * Then the check of what was imported, from the sources that were
	 * fetched too when others were not. When the import failed, or this
	 * process dies first, what it committed stays pending until pw
	 * health checks it.
	 */
	if (r == 0 && wr.validate)
		r = warm_validate(&wr, &ho);
	if (r == 0 && wr.failed > 0)
		r = pw_failf(&ctx->err, PW_EFAIL, "%s: %zu of %zu sources "
		    "failed", cc->path, wr.failed, wr.nsources);
	for (size_t i = 0; i < wr.nlines; i++) {
		line_print(&wr, &wr.lines[i]);
		free(wr.lines[i].source);
		free(wr.lines[i].status);
		free(wr.lines[i].error);
	}
	free(wr.lines);
	free(wr.line_end);
	free(wr.owner);
	out_free(wr.o);
	pw_warm_free(wr.w);
	free(shown);
	return r;
}

/* ------------------------------------------------------------- export */

/*
 * Where the list goes. A regular file (or a path that does not exist yet)
 * is written to a temporary beside it and renamed over it when complete;
 * anything else -o names (a FIFO, a terminal, /dev/null) is written as it
 * is, and never replaced.
 */
struct export_out {
	FILE		*f;
	int		 failed;	/* errno of a failed write */
	const char	*name;		/* as given, for messages */
	char		*tmp;		/* the temporary, or NULL */
	char		*dest;		/* the file tmp replaces */
	int		 existed;	/* dest was there: dev, ino say which */
	dev_t		 dev;
	ino_t		 ino;
};

static int
export_write(void *arg, const void *p, size_t n)
{
	struct export_out	*eo = arg;

	if (fwrite(p, 1, n, eo->f) != n) {
		eo->failed = errno ? errno : EIO;
		return PW_EFAIL;
	}
	return 0;
}

static int
export_fail(struct pw_cmdctx *cc, const char *name, int e)
{
	return pw_failf(&cc->ctx->err, PW_EFAIL, "%s: %s: %s", cc->path,
	    name, strerror(e));
}

/* Someone put another file in its place while the export ran. */
static int
export_swapped(struct pw_cmdctx *cc, const struct export_out *eo)
{
	return pw_failf(&cc->ctx->err, PW_EFAIL, "%s: %s: replaced by another "
	    "file during the export; left as it is", cc->path, eo->name);
}

/*
 * Into a temporary in dest's directory, mode as given (mkstemp makes it
 * 0600 first, so a secret is never readable by others meanwhile). st is
 * the file it will replace, NULL for none.
 */
static int
export_temp(struct pw_cmdctx *cc, struct export_out *eo, const char *dest,
    mode_t mode, const struct stat *st)
{
	int	fd, e;

	eo->tmp = pw_xasprintf("%s.tmp.XXXXXX", dest);
	if ((fd = mkstemp(eo->tmp)) < 0) {
		e = errno;
		free(eo->tmp);
		eo->tmp = NULL;
		return export_fail(cc, eo->name, e);
	}
	if (fchmod(fd, mode) != 0 || (eo->f = fdopen(fd, "w")) == NULL) {
		e = errno;
		close(fd);
		unlink(eo->tmp);
		free(eo->tmp);
		eo->tmp = NULL;
		return export_fail(cc, eo->name, e);
	}
	eo->dest = pw_xstrdup(dest);
	if (st != NULL) {
		eo->existed = 1;
		eo->dev = st->st_dev;
		eo->ino = st->st_ino;
	}
	return 0;
}

/*
 * The file open on standard output or error, when a link (/dev/stdout)
 * names it: written there, as "-o -" would, not replaced.
 */
static FILE *
export_std(const struct stat *st)
{
	struct stat	sb;

	if (fstat(STDOUT_FILENO, &sb) == 0 && sb.st_dev == st->st_dev &&
	    sb.st_ino == st->st_ino)
		return stdout;
	if (fstat(STDERR_FILENO, &sb) == 0 && sb.st_dev == st->st_dev &&
	    sb.st_ino == st->st_ino)
		return stderr;
	return NULL;
}

static int
export_open(struct pw_cmdctx *cc, struct export_out *eo, int creds)
{
	struct stat	 lst, st;
	mode_t		 mode;
	char		*real;
	int		 fd, r;

	if (lstat(eo->name, &lst) != 0) {
		if (errno != ENOENT)
			return export_fail(cc, eo->name, errno);
		/*
		 * A new file: a list without secrets may be read by all
		 * that the umask lets (umask(umask(0)) would give the 0).
		 */
		mode = umask(0);
		umask(mode);
		return export_temp(cc, eo, eo->name, creds ? 0600 :
		    0644 & ~mode, NULL);
	}
	/*
	 * stat follows a link as open would (fs.protected_symlinks
	 * included); a link to nothing is not written through, as cp
	 * refuses to: whoever made it chose where the file would go.
	 */
	if (stat(eo->name, &st) != 0) {
		if (errno == ENOENT && S_ISLNK(lst.st_mode))
			return pw_failf(&cc->ctx->err, PW_EFAIL, "%s: %s: not "
			    "writing through a dangling symbolic link",
			    cc->path, eo->name);
		return export_fail(cc, eo->name, errno);
	}
	if (S_ISDIR(st.st_mode))
		return export_fail(cc, eo->name, EISDIR);
	if (S_ISREG(st.st_mode)) {
		/* Its mode stays, but a list with secrets is private. */
		mode = st.st_mode & (creds ? 0700 : 0777);
		if (!S_ISLNK(lst.st_mode))
			return export_temp(cc, eo, eo->name, mode, &st);
		if ((eo->f = export_std(&st)) != NULL)
			return 0;
		/*
		 * The target is replaced, in its own directory: a link is
		 * followed, never replaced by a file.
		 */
		if ((real = realpath(eo->name, NULL)) == NULL)
			return export_fail(cc, eo->name, errno);
		r = export_temp(cc, eo, real, mode, &st);
		free(real);
		return r;
	}
	/* A FIFO, a device: written as it is, never replaced. */
	if ((fd = open(eo->name, O_WRONLY | O_NOCTTY | O_CLOEXEC)) < 0)
		return export_fail(cc, eo->name, errno);
	if (fstat(fd, &st) != 0)
		r = export_fail(cc, eo->name, errno);
	else if (S_ISREG(st.st_mode))
		/* Opened now, it would be written over, not replaced. */
		r = export_swapped(cc, eo);
	else if ((eo->f = fdopen(fd, "w")) == NULL)
		r = export_fail(cc, eo->name, errno);
	else
		return 0;
	close(fd);
	return r;
}

/* Whether dest is still what export_temp saw: the same file, or none. */
static int
export_unchanged(const struct export_out *eo)
{
	struct stat	st;

	if (lstat(eo->dest, &st) != 0)
		return errno == ENOENT && !eo->existed;
	return eo->existed && S_ISREG(st.st_mode) && st.st_dev == eo->dev &&
	    st.st_ino == eo->ino;
}

/* Written: close it, and put the temporary in place when r is 0. */
static int
export_close(struct pw_cmdctx *cc, struct export_out *eo, int r)
{
	if (eo->f == stdout || eo->f == stderr)
		return r;
	if (fclose(eo->f) != 0 && r == 0)
		r = export_fail(cc, eo->name, errno);
	if (eo->tmp == NULL)
		return r;
	if (r == 0 && !export_unchanged(eo))
		r = export_swapped(cc, eo);
	if (r == 0 && rename(eo->tmp, eo->dest) != 0)
		r = export_fail(cc, eo->name, errno);
	if (r != 0)
		unlink(eo->tmp);
	free(eo->tmp);
	free(eo->dest);
	return r;
}

static int
cache_export(struct pw_cmdctx *cc)
{
	struct pw_ctx		*ctx = cc->ctx;
	struct export_out	 eo;
	const char		*out = arg_get(cc->args, "output");
	int64_t			 n = 0;
	int			 fmt, r, creds;

	if ((r = format_opt(cc, PW_FMT_JSONL, 0, &fmt)) != 0)
		return r;
	creds = arg_has(cc->args, "with-credentials");
	memset(&eo, 0, sizeof eo);
	eo.f = stdout;
	eo.name = "stdout";
	if (out != NULL && strcmp(out, "-") != 0) {
		eo.name = out;
		if ((r = export_open(cc, &eo, creds)) != 0)
			return r;
	}
	r = pw_cache_export(ctx, fmt, creds, export_write, &eo, &n);
	if (eo.failed != 0 || (r == 0 && fflush(eo.f) != 0))
		r = export_fail(cc, eo.name, eo.failed ? eo.failed : errno);
	else if (r != 0)
		pw_err_prefix(&ctx->err, "%s", cc->path);
	if (out != NULL && strcmp(out, "-") != 0) {
		r = export_close(cc, &eo, r);
		if (r == 0 && !cc->quiet)
			fprintf(stderr, "exported %lld %s to %s\n",
			    (long long)n, n == 1 ? "proxy" : "proxies", out);
	}
	return r;
}

/* -------------------------------------------------------------- prune */

static int
cache_prune(struct pw_cmdctx *cc)
{
	static const struct out_col cols[] = {
		{ "ttl", COL_INT, 1 }, { "health", COL_INT, 1 },
		{ "corruption", COL_INT, 1 },
	};
	int64_t		 removed[PW_EVICT_COUNT];
	char		 num[3][32];
	const char	*v[3];
	int		 r;

	if ((r = pw_cache_prune(cc->ctx, removed)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	snprintf(num[0], 32, "%lld", (long long)removed[PW_EVICT_TTL]);
	snprintf(num[1], 32, "%lld", (long long)removed[PW_EVICT_HEALTH]);
	snprintf(num[2], 32, "%lld",
	    (long long)removed[PW_EVICT_CORRUPTION]);
	for (int i = 0; i < 3; i++)
		v[i] = num[i];
	if (!cc->quiet)
		out_record(cc->fmt, cols, 3, v);
	return 0;
}

/* -------------------------------------------------------------- stats */

/* The delegation counters, by name, for every format. */
static const struct {
	const char	*name;		/* text and JSON */
	const char	*prom;		/* Prometheus */
	const char	*type;
	const char	*help;
	size_t		 off;
} svc_stats[] = {
#define S(n, p, t, h, f) { n, p, t, h, offsetof(struct pw_cache_stats, f) }
	S("calls", "pw_service_calls_total", "counter",
	    "Calls made to a remote service.", svc_calls),
	S("errors", "pw_service_errors_total", "counter",
	    "Calls to a remote service that failed.", svc_errors),
	S("cache_hits", "pw_service_cache_hits_total", "counter",
	    "Selections answered from the service cache.", svc_cache_hits),
	S("fallbacks", "pw_service_fallbacks_total", "counter",
	    "Selections that fell back to the local pool.", svc_fallbacks),
	S("breaker_opened", "pw_service_breaker_opened_total", "counter",
	    "Circuit breakers that opened.", svc_breaker_opened),
	S("breaker_half_opened", "pw_service_breaker_half_opened_total",
	    "counter", "Circuit breakers that went half-open.",
	    svc_breaker_half_opened),
	S("breaker_closed", "pw_service_breaker_closed_total", "counter",
	    "Circuit breakers that closed again.", svc_breaker_closed),
	S("outbox_depth", "pw_service_outbox_depth", "gauge",
	    "Outcomes waiting to be sent to the service.", svc_outbox_depth),
	S("outbox_sent", "pw_service_outbox_sent_total", "counter",
	    "Outcomes sent to the service.", svc_outbox_sent),
	S("outbox_dropped", "pw_service_outbox_dropped_total", "counter",
	    "Outcomes dropped from a full outbox.", svc_outbox_dropped),
	S("delegated_requests", "pw_delegate_requests_total", "counter",
	    "Proxies handed to delegating clients.", dlg_requests),
	S("delegated_feedback", "pw_delegate_feedback_total", "counter",
	    "Outcomes delegating clients reported.", dlg_feedback),
#undef S
};
#define NSVC_STATS ((int)(sizeof svc_stats / sizeof svc_stats[0]))

static int64_t
svc_stat(const struct pw_cache_stats *s, int i)
{
	return *(const int64_t *)((const char *)s + svc_stats[i].off);
}

/* Whether to show them: a service is configured or was ever used. */
static int
svc_shown(struct pw_ctx *ctx, const struct pw_cache_stats *s)
{
	for (int i = 0; i < NSVC_STATS; i++)
		if (svc_stat(s, i) != 0)
			return 1;
	return pw_service_enabled(ctx);
}

static void
iso(int64_t t, char buf[32])
{
	time_t		tt = (time_t)t;
	struct tm	tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
stats_text(const struct pw_cache_stats *s, int svc)
{
	char	t[32];

	printf("%-22s %lld\n", "entries", (long long)s->total);
	for (int i = 0; i < PW_STATUS_COUNT; i++)
		printf("  %-20s %lld\n", pw_status_name(i),
		    (long long)s->by_status[i]);
	printf("%-22s %lld\n", "expired", (long long)s->expired);
	printf("by source:\n");
	for (size_t i = 0; i < s->nsources; i++)
		printf("  %-20s %lld\n", s->by_source[i].name ?
		    s->by_source[i].name : "(none)",
		    (long long)s->by_source[i].n);
	printf("%-22s %lld\n", "selection hits", (long long)s->hits);
	printf("%-22s %lld\n", "selection misses", (long long)s->misses);
	printf("evictions:\n");
	for (int i = 0; i < PW_EVICT_COUNT; i++)
		printf("  %-20s %lld\n", pw_evict_name(i),
		    (long long)s->evictions[i]);
	if (s->last_warm)
		iso(s->last_warm, t);
	printf("%-22s %s\n", "last warm", s->last_warm ? t : "never");
	if (s->last_health)
		iso(s->last_health, t);
	printf("%-22s %s\n", "last health check", s->last_health ? t :
	    "never");
	printf("%-22s %lld\n", "state file bytes", (long long)s->file_bytes);
	if (svc) {
		printf("service:\n");
		for (int i = 0; i < NSVC_STATS; i++)
			printf("  %-20s %lld\n", svc_stats[i].name,
			    (long long)svc_stat(s, i));
	}
}

static void
json_time(int64_t t)
{
	char	buf[32];

	if (t == 0) {
		fputs("null", stdout);
		return;
	}
	iso(t, buf);
	out_json_str(stdout, buf);
}

static void
stats_json(const struct pw_cache_stats *s, int svc)
{
	printf("{\"entries\":%lld,\"by_status\":{", (long long)s->total);
	for (int i = 0; i < PW_STATUS_COUNT; i++)
		printf("%s\"%s\":%lld", i ? "," : "", pw_status_name(i),
		    (long long)s->by_status[i]);
	printf("},\"expired\":%lld,\"by_source\":[", (long long)s->expired);
	for (size_t i = 0; i < s->nsources; i++) {
		printf("%s{\"source\":", i ? "," : "");
		if (s->by_source[i].name != NULL)
			out_json_str(stdout, s->by_source[i].name);
		else
			fputs("null", stdout);
		printf(",\"count\":%lld}", (long long)s->by_source[i].n);
	}
	printf("],\"hits\":%lld,\"misses\":%lld,\"evictions\":{",
	    (long long)s->hits, (long long)s->misses);
	for (int i = 0; i < PW_EVICT_COUNT; i++)
		printf("%s\"%s\":%lld", i ? "," : "", pw_evict_name(i),
		    (long long)s->evictions[i]);
	printf("},\"last_warm\":");
	json_time(s->last_warm);
	printf(",\"last_health\":");
	json_time(s->last_health);
	printf(",\"file_bytes\":%lld", (long long)s->file_bytes);
	if (svc) {
		printf(",\"service\":{");
		for (int i = 0; i < NSVC_STATS; i++)
			printf("%s\"%s\":%lld", i ? "," : "",
			    svc_stats[i].name, (long long)svc_stat(s, i));
		putchar('}');
	}
	printf("}\n");
}

/* A label value in the text exposition format: \\, \" and \n escaped. */
static void
prom_label(const char *v)
{
	putchar('"');
	for (; v != NULL && *v; v++) {
		if (*v == '\\' || *v == '"')
			printf("\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", stdout);
		else
			putchar(*v);
	}
	putchar('"');
}

static void
prom_head(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
stats_prometheus(const struct pw_cache_stats *s)
{
	prom_head("pw_proxies", "gauge", "Proxies in the pool by status.");
	for (int i = 0; i < PW_STATUS_COUNT; i++)
		printf("pw_proxies{status=\"%s\"} %lld\n", pw_status_name(i),
		    (long long)s->by_status[i]);
	prom_head("pw_proxies_by_source", "gauge",
	    "Proxies in the pool by source (\"\" for none).");
	for (size_t i = 0; i < s->nsources; i++) {
		printf("pw_proxies_by_source{source=");
		prom_label(s->by_source[i].name);
		printf("} %lld\n", (long long)s->by_source[i].n);
	}
	prom_head("pw_proxies_expired", "gauge",
	    "Proxies past their TTL, not yet pruned.");
	printf("pw_proxies_expired %lld\n", (long long)s->expired);
	prom_head("pw_selection_hits_total", "counter",
	    "Selections that found an eligible proxy.");
	printf("pw_selection_hits_total %lld\n", (long long)s->hits);
	prom_head("pw_selection_misses_total", "counter",
	    "Selections that found no eligible proxy.");
	printf("pw_selection_misses_total %lld\n", (long long)s->misses);
	prom_head("pw_evictions_total", "counter",
	    "Proxies removed, by reason.");
	for (int i = 0; i < PW_EVICT_COUNT; i++)
		printf("pw_evictions_total{reason=\"%s\"} %lld\n",
		    pw_evict_name(i), (long long)s->evictions[i]);
	prom_head("pw_last_warm_timestamp_seconds", "gauge",
	    "When the pool was last warmed (0: never).");
	printf("pw_last_warm_timestamp_seconds %lld\n",
	    (long long)s->last_warm);
	prom_head("pw_last_health_timestamp_seconds", "gauge",
	    "When the pool was last health-checked (0: never).");
	printf("pw_last_health_timestamp_seconds %lld\n",
	    (long long)s->last_health);
	prom_head("pw_state_file_bytes", "gauge",
	    "Size of the state file and its write-ahead log.");
	printf("pw_state_file_bytes %lld\n", (long long)s->file_bytes);
	for (int i = 0; i < NSVC_STATS; i++) {
		prom_head(svc_stats[i].prom, svc_stats[i].type,
		    svc_stats[i].help);
		printf("%s %lld\n", svc_stats[i].prom,
		    (long long)svc_stat(s, i));
	}
}

static int
cache_stats(struct pw_cmdctx *cc)
{
	struct pw_cache_stats	 s;
	const char		*v = arg_get(cc->args, "format");
	int			 fmt = 0, r;

	if (v != NULL) {
		if (strcmp(v, "text") == 0)
			fmt = 0;
		else if (strcmp(v, "json") == 0)
			fmt = 1;
		else if (strcmp(v, "prometheus") == 0)
			fmt = 2;
		else
			return cmd_usagef(cc, "--format: '%s': want text, "
			    "json or prometheus", v);
	}
	if (arg_has(cc->args, "json")) {
		if (fmt == 2)
			return cmd_usagef(cc, "--json and --format "
			    "prometheus: give one");
		fmt = 1;
	}
	if ((r = pw_cache_stats(cc->ctx, &s)) != 0)
		return pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	if (fmt == 0)
		stats_text(&s, svc_shown(cc->ctx, &s));
	else if (fmt == 1)
		stats_json(&s, svc_shown(cc->ctx, &s));
	else
		stats_prometheus(&s);
	pw_cache_stats_release(&s);
	return 0;
}

/* ------------------------------------------------------------- entries */

static const struct pw_opt warm_optv[] = {
	{ "format", 'f', "FMT", 0, "auto (default), txt, csv, json or "
	  "jsonl" },
	{ "ttl", 0, "DURATION", 0, "lifetime of the proxies (default "
	  "cache.ttl; 0: never expire)" },
	{ "sources", 0, NULL, 0, "fetch and warm every list in "
	  "cache.sources" },
	{ "source", 0, "NAME", 0, "tag every proxy with this source" },
	{ "country", 0, "CC", 0, "ISO 3166-1 alpha-2 country code, where "
	  "a record has none" },
	{ "region", 0, "REGION", 0, "region, where a record has none" },
	{ "weight", 0, "W", 0, "weight (0-1e9), where a record has none" },
	{ "validate", 0, NULL, 0, "health-check what was imported; new "
	  "proxies are not selected before they pass" },
	{ "url", 0, "JUDGE", OPT_REPEAT, "with --validate: judge URL "
	  "(repeatable; default health.urls, then health.url)" },
	{ "timeout", 0, "S", 0, "with --validate: seconds one check may "
	  "take (default health.timeout)" },
	{ "concurrency", 0, "N", 0, "with --validate: checks at once "
	  "(default health.concurrency)" },
	{ "evict", 0, NULL, 0, "with --validate: remove the proxies that "
	  "fail instead of keeping them unhealthy" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt export_optv[] = {
	{ "format", 'f', "FMT", 0, "jsonl (default), json, csv or txt" },
	{ "output", 'o', "FILE", 0, "write to FILE instead of stdout (a "
	  "regular file is replaced when complete)" },
	{ "with-credentials", 0, NULL, 0, "include user names and passwords "
	  "in the URLs" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_opt stats_optv[] = {
	{ "format", 'f', "FMT", 0, "text (default), json or prometheus" },
	{ "json", 0, NULL, 0, "the same as --format json" },
	{ NULL, 0, NULL, 0, NULL }
};

static const struct pw_cmd cache_warm_entry = {
	"warm", "import proxies from a list", "[options] FILE|URL|-|--sources",
	warm_optv, 0, 1, CMD_STORE_RW | CMD_OUTPUT, cache_warm, NULL
};
static const struct pw_cmd cache_export_entry = {
	"export", "write the pool out as a list", "[options]", export_optv,
	0, 0, CMD_STORE_RO, cache_export, NULL
};
static const struct pw_cmd cache_prune_entry = {
	"prune", "remove expired, unhealthy and unreadable proxies",
	"[options]", NULL, 0, 0, CMD_STORE_RW | CMD_OUTPUT, cache_prune, NULL
};
static const struct pw_cmd cache_stats_entry = {
	"stats", "show what the pool holds and how it is used", "[options]",
	stats_optv, 0, 0, CMD_STORE_RO, cache_stats, NULL
};

static const struct pw_cmd *const cache_verbs[] = {
	&cache_warm_entry,
	&cache_export_entry,
	&cache_prune_entry,
	&cache_stats_entry,
	NULL
};

const struct pw_cmd cmd_cache_entry = {
	"cache", "warm, export, prune and measure the pool",
	"VERB [options] [ARGS]", NULL, 0, -1, 0, NULL, cache_verbs
};
