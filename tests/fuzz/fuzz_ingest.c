/*
 * fuzz_ingest.c -- libFuzzer target for the proxy-list parsers and
 * writers (lib/ingest.c).
 *
 * The first byte picks the format (auto, txt, csv, json, jsonl) and the
 * chunk size; the rest is the list. Checked:
 *   - no crash, leak or undefined behaviour, whatever the bytes;
 *   - the records and rejections are the same whether the list is fed
 *     whole or in chunks (a parser must not depend on where reads end);
 *   - every record is a valid proxy (it formats and parses back the same)
 *     and every rejection is one printable line;
 *   - the records written back with pw_ingest_write (json, jsonl, csv)
 *     parse back to the same records, with no rejection.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/internal.h"

struct run {
	struct pw_buf	 log;		/* records and rejections, in order */
	struct pw_proxy	*p;		/* the records, to write back */
	char		**url;
	size_t		 n;
};

static void
die(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "fuzz_ingest: %s\n--- a\n%s\n--- b\n%s\n", what,
	    a ? a : "(null)", b ? b : "(null)");
	abort();
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? pw_xstrdup(s) : NULL;
}

static int
on_rec(void *arg, struct pw_record *r)
{
	struct run	*run = arg;
	struct pw_addr	 b;
	struct pw_err	 err = { 0 };
	struct pw_proxy	*p;
	char		*url = pw_addr_format(&r->addr, PW_CREDS_SHOW), *again;

	if (r->addr.port < 1 || r->addr.port > 65535 ||
	    r->addr.host == NULL || r->addr.host[0] == '\0')
		die("record out of range", url, NULL);
	/* A user name from a column may hold anything; from a URL it
	 * parsed already. Either way the shown form must parse back. */
	if (pw_addr_parse(url, &b, &err) != 0)
		die("record does not parse back", url, err.msg);
	again = pw_addr_format(&b, PW_CREDS_SHOW);
	if (strcmp(again, url) != 0)
		die("record formats differently", url, again);
	free(again);
	pw_addr_release(&b);
	pw_buf_addf(&run->log, "%ld %s|%s|%s|%s|%.17g|%lld\n", r->line, url,
	    r->country, r->region ? r->region : "-",
	    r->source ? r->source : "-", r->weight,
	    (long long)r->expires_at);
	run->p = pw_xrealloc(run->p, (run->n + 1) * sizeof *run->p);
	run->url = pw_xrealloc(run->url, (run->n + 1) * sizeof *run->url);
	p = &run->p[run->n];
	memset(p, 0, sizeof *p);
	p->country = r->country[0] ? pw_xstrdup(r->country) : NULL;
	p->region = dup_or_null(r->region);
	p->source = dup_or_null(r->source);
	p->weight = r->weight;
	p->expires_at = r->expires_at;
	run->url[run->n++] = url;
	pw_addr_release(&r->addr);
	return 0;
}

static void
on_reject(void *arg, long line, const char *why)
{
	struct run	*run = arg;

	for (const unsigned char *s = (const unsigned char *)why; *s; s++)
		if (*s == '\n' || *s == '\r')
			die("rejection is not one line", why, NULL);
	pw_buf_addf(&run->log, "%ld! %s\n", line, why);
}

static void
run_free(struct run *run)
{
	for (size_t i = 0; i < run->n; i++) {
		free(run->p[i].country);
		free(run->p[i].region);
		free(run->p[i].source);
		free(run->url[i]);
	}
	free(run->p);
	free(run->url);
	pw_buf_release(&run->log);
}

static int
parse(int fmt, const uint8_t *d, size_t n, size_t chunk, struct run *run)
{
	struct pw_ingest	*in;
	int			 used;

	memset(run, 0, sizeof *run);
	pw_buf_init(&run->log);
	in = pw_ingest_new(fmt, on_rec, on_reject, run);
	if (chunk == 0)
		chunk = n ? n : 1;
	for (size_t i = 0; i < n; i += chunk)
		pw_ingest_feed(in, d + i, n - i < chunk ? n - i : chunk);
	pw_ingest_end(in);
	used = pw_ingest_format(in);
	pw_ingest_free(in);
	return used;
}

/* Is there a rejection ("N! why") in the log? */
static int
has_reject(const char *s)
{
	for (; *s; s = strchr(s, '\n') + 1) {
		const char *sp = strchr(s, ' ');
		if (sp != NULL && sp > s && sp[-1] == '!' &&
		    sp < strchr(s, '\n'))
			return 1;
	}
	return 0;
}

/* Records only, without line numbers, to compare across formats. */
static char *
records(const struct run *run)
{
	struct pw_buf	b;
	const char	*s = run->log.data;

	pw_buf_init(&b);
	while (*s) {
		const char *nl = strchr(s, '\n'), *sp = strchr(s, ' ');
		if (sp != NULL && sp < nl && sp[-1] != '!')
			pw_buf_add(&b, sp + 1, nl + 1 - (sp + 1));
		s = nl + 1;
	}
	return pw_buf_detach(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int	fmts[] = { PW_FMT_AUTO, PW_FMT_TXT, PW_FMT_CSV,
				    PW_FMT_JSON, PW_FMT_JSONL };
	struct run		whole, split, back;
	struct pw_export	x;
	struct pw_buf		out;
	int			fmt, used;
	size_t			chunk;
	char			*a, *b;

	if (size < 1 || size > 64 * 1024)
		return 0;
	fmt = fmts[data[0] % 5];
	chunk = 1 + (data[0] >> 3);
	used = parse(fmt, data + 1, size - 1, 0, &whole);
	parse(fmt, data + 1, size - 1, chunk, &split);
	if (strcmp(whole.log.data, split.log.data) != 0)
		die("chunked parse differs", whole.log.data, split.log.data);
	run_free(&split);

	/* Write the records back in each writable format: same records. */
	for (int f = PW_FMT_CSV; f <= PW_FMT_JSONL; f++) {
		pw_buf_init(&out);
		pw_ingest_write_begin(f, &out);
		for (size_t i = 0; i < whole.n; i++) {
			x.p = &whole.p[i];
			x.url = whole.url[i];
			pw_ingest_write(f, &x, (long)i, &out);
		}
		pw_ingest_write_end(f, (long)whole.n, &out);
		parse(f, (const uint8_t *)out.data, out.len, 0, &back);
		if (has_reject(back.log.data))
			die("written list has a bad record", out.data,
			    back.log.data);
		a = records(&whole);
		b = records(&back);
		if (strcmp(a, b) != 0)
			die("written list reads back differently", a, b);
		free(a);
		free(b);
		run_free(&back);
		pw_buf_release(&out);
	}
	(void)used;
	run_free(&whole);
	return 0;
}
