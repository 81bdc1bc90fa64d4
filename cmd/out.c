/*
 * out.c -- rendering records as a table, plain tab-separated lines, JSON,
 * JSON lines or CSV. Only tables are buffered (to size the columns).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

struct out {
	int			 fmt;
	const struct out_col	*cols;
	int			 ncols;
	int			 color;
	long			 rows;
	char			**cells;	/* table: rows x ncols */
	size_t			 ncells, capcells;
};

int
out_isatty(void)
{
	static int	tty = -1;

	if (tty < 0)
		tty = isatty(STDOUT_FILENO);
	return tty;
}

void
out_json_str(FILE *f, const char *s)
{
	out_json_strn(f, s, strlen(s));
}

void
out_json_strn(FILE *f, const char *s, size_t n)
{
	static struct pw_buf	b;	/* kept: one command, many strings */

	pw_buf_reset(&b);
	pw_buf_json(&b, s, n);
	fwrite(b.data, 1, b.len, f);
}

void
out_json_member(struct pw_buf *b, int first, const char *name,
    const char *value, int is_str)
{
	if (!first)
		pw_buf_addc(b, ',');
	pw_buf_json(b, name, strlen(name));
	pw_buf_addc(b, ':');
	if (value == NULL)
		pw_buf_adds(b, "null");
	else if (is_str)
		pw_buf_json(b, value, strlen(value));
	else
		pw_buf_adds(b, value);
}

/* Times are carried as epoch seconds and shown as ISO 8601 UTC. */
static const char *
iso_time(const char *v, char *buf, size_t n)
{
	time_t		t = strtoll(v, NULL, 10);
	struct tm	tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static void
json_value(FILE *f, const struct out_col *c, const char *v)
{
	char	buf[32];

	if (v == NULL)
		fputs("null", f);
	else if (c->type == COL_INT || c->type == COL_REAL)
		fputs(v, f);
	else if (c->type == COL_BOOL)
		fputs(strcmp(v, "0") && strcmp(v, "false") ? "true" : "false",
		    f);
	else if (c->type == COL_TIME)
		out_json_str(f, iso_time(v, buf, sizeof buf));
	else
		out_json_str(f, v);
}

static void
json_object(FILE *f, const struct out_col *cols, int ncols,
    const char *const *vals)
{
	putc('{', f);
	for (int i = 0; i < ncols; i++) {
		if (i > 0)
			putc(',', f);
		out_json_str(f, cols[i].name);
		putc(':', f);
		json_value(f, &cols[i], vals[i]);
	}
	putc('}', f);
}

static void
csv_field(FILE *f, const char *v)
{
	if (v == NULL)
		return;
	if (strpbrk(v, ",\"\r\n") == NULL) {
		fputs(v, f);
		return;
	}
	putc('"', f);
	for (; *v; v++) {
		if (*v == '"')
			putc('"', f);
		putc(*v, f);
	}
	putc('"', f);
}

/* A cell as shown in a table or plain line. */
static char *
text_value(const struct out_col *c, const char *v)
{
	char	buf[32];

	if (v == NULL)
		return pw_xstrdup("-");
	if (c->type == COL_TIME)
		return pw_xstrdup(iso_time(v, buf, sizeof buf));
	if (c->type == COL_BOOL)
		return pw_xstrdup(strcmp(v, "0") && strcmp(v, "false") ?
		    "yes" : "no");
	return pw_xstrdup(v);
}

struct out *
out_new(int fmt, const struct out_col *cols, int ncols, int color)
{
	struct out	*o = pw_xcalloc(1, sizeof *o);
	static char	 obuf[1 << 16];

	setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
	o->fmt = fmt;
	o->cols = cols;
	o->ncols = ncols;
	o->color = color;
	if (fmt == OUT_CSV) {
		for (int i = 0; i < ncols; i++) {
			if (i > 0)
				putchar(',');
			csv_field(stdout, cols[i].name);
		}
		putchar('\n');
	} else if (fmt == OUT_JSON)
		putchar('[');
	return o;
}

void
out_row(struct out *o, const char *const *vals)
{
	int	first = 1;

	switch (o->fmt) {
	case OUT_JSON:
		if (o->rows > 0)
			putchar(',');
		json_object(stdout, o->cols, o->ncols, vals);
		break;
	case OUT_JSONL:
		json_object(stdout, o->cols, o->ncols, vals);
		putchar('\n');
		break;
	case OUT_CSV:
		for (int i = 0; i < o->ncols; i++) {
			if (i > 0)
				putchar(',');
			csv_field(stdout, vals[i]);
		}
		putchar('\n');
		break;
	case OUT_PLAIN:
		for (int i = 0; i < o->ncols; i++) {
			if (!o->cols[i].brief)
				continue;
			if (!first)
				putchar('\t');
			first = 0;
			char *t = text_value(&o->cols[i], vals[i]);
			fputs(t, stdout);
			free(t);
		}
		putchar('\n');
		break;
	case OUT_TABLE:
		if (o->ncells + o->ncols > o->capcells) {
			o->capcells = o->capcells ? o->capcells * 2 :
			    (size_t)o->ncols * 64;
			o->cells = pw_xrealloc(o->cells, o->capcells *
			    sizeof *o->cells);
		}
		for (int i = 0; i < o->ncols; i++)
			o->cells[o->ncells++] = text_value(&o->cols[i],
			    vals[i]);
		break;
	}
	o->rows++;
}

/* Is c, a code point, one a terminal shows two columns wide? */
static int
wide(unsigned long c)
{
	static const unsigned long r[][2] = {
		{ 0x1100, 0x115f }, { 0x231a, 0x231b }, { 0x2329, 0x232a },
		{ 0x2e80, 0x303e }, { 0x3041, 0x33ff }, { 0x3400, 0x4dbf },
		{ 0x4e00, 0x9fff }, { 0xa000, 0xa4cf }, { 0xac00, 0xd7a3 },
		{ 0xf900, 0xfaff }, { 0xfe30, 0xfe4f }, { 0xff00, 0xff60 },
		{ 0xffe0, 0xffe6 }, { 0x1f300, 0x1f64f }, { 0x1f900, 0x1f9ff },
		{ 0x20000, 0x3fffd },
	};

	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
		if (c >= r[i][0] && c <= r[i][1])
			return 1;
	return 0;
}

/* Does c take no column of its own (a combining mark, a joiner)? */
static int
zero_width(unsigned long c)
{
	return (c >= 0x300 && c <= 0x36f) || (c >= 0x1ab0 && c <= 0x1aff) ||
	    (c >= 0x1dc0 && c <= 0x1dff) || (c >= 0x200b && c <= 0x200f) ||
	    (c >= 0x20d0 && c <= 0x20ff) || (c >= 0xfe00 && c <= 0xfe0f) ||
	    (c >= 0xfe20 && c <= 0xfe2f);
}

/*
 * The columns s takes on a terminal: labels and session ids are UTF-8,
 * and a byte is not a column (a byte that starts no sequence counts as
 * one). Tables pad by this, not by strlen.
 */
static size_t
text_width(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 w = 0;

	while (*p != '\0') {
		unsigned long	c = *p;
		int		n = c >= 0xf0 && c < 0xf8 ? 3 : c >= 0xe0 ? 2 :
				    c >= 0xc0 ? 1 : 0;
		int		k;

		if (c >= 0xf8 || (c >= 0x80 && c < 0xc0))
			n = 0;
		c = n == 3 ? c & 0x07 : n == 2 ? c & 0x0f : n == 1 ? c & 0x1f :
		    c;
		for (k = 1; k <= n && (p[k] & 0xc0) == 0x80; k++)
			c = c << 6 | (p[k] & 0x3f);
		if (k <= n) {
			/* Cut short: the lead byte alone, one column. */
			w++;
			p++;
			continue;
		}
		p += n + 1;
		w += zero_width(c) ? 0 : wide(c) ? 2 : 1;
	}
	return w;
}

static void
pad(size_t n)
{
	while (n-- > 0)
		putchar(' ');
}

static void
table_flush(struct out *o)
{
	size_t	*w = pw_xcalloc(o->ncols, sizeof *w), tw;
	int	 last = -1;

	for (int i = 0; i < o->ncols; i++) {
		if (!o->cols[i].brief)
			continue;
		w[i] = strlen(o->cols[i].name);
		last = i;
	}
	for (size_t k = 0; k < o->ncells; k++) {
		int i = k % o->ncols;
		if (o->cols[i].brief && (tw = text_width(o->cells[k])) > w[i])
			w[i] = tw;
	}
	if (o->color)
		fputs("\033[1m", stdout);
	for (int i = 0; i < o->ncols; i++) {
		if (!o->cols[i].brief)
			continue;
		for (const char *p = o->cols[i].name; *p; p++)
			putchar(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		if (i != last)
			pad(w[i] - strlen(o->cols[i].name) + 2);
	}
	if (o->color)
		fputs("\033[0m", stdout);
	putchar('\n');
	for (size_t k = 0; k < o->ncells; k++) {
		int i = k % o->ncols;
		if (o->cols[i].brief) {
			int num = o->cols[i].type == COL_INT ||
			    o->cols[i].type == COL_REAL;
			tw = text_width(o->cells[k]);
			/* Numbers to the right, the last column's too. */
			if (num)
				pad(w[i] - tw);
			fputs(o->cells[k], stdout);
			if (i != last)
				pad(num ? 2 : w[i] - tw + 2);
		}
		if (i == o->ncols - 1)
			putchar('\n');
	}
	for (size_t k = 0; k < o->ncells; k++)
		free(o->cells[k]);
	free(o->cells);
	free(w);
}

void
out_free(struct out *o)
{
	if (o == NULL)
		return;
	if (o->fmt == OUT_JSON)
		fputs("]\n", stdout);
	else if (o->fmt == OUT_TABLE && o->rows > 0)
		table_flush(o);
	free(o);
}

void
out_record(int fmt, const struct out_col *cols, int ncols,
    const char *const *vals)
{
	struct out	*o;
	size_t		 w = 0;

	if (fmt == OUT_JSON || fmt == OUT_JSONL) {
		json_object(stdout, cols, ncols, vals);
		putchar('\n');
		return;
	}
	if (fmt == OUT_CSV) {
		o = out_new(fmt, cols, ncols, 0);
		out_row(o, vals);
		out_free(o);
		return;
	}
	for (int i = 0; i < ncols; i++)
		if (strlen(cols[i].name) > w)
			w = strlen(cols[i].name);
	for (int i = 0; i < ncols; i++) {
		char *t = text_value(&cols[i], vals[i]);
		if (fmt == OUT_PLAIN)
			printf("%s\t%s\n", cols[i].name, t);
		else
			printf("%-*s  %s\n", (int)w + 1, cols[i].name, t);
		free(t);
	}
}

static void
base64(FILE *f, const unsigned char *p, size_t n)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t	i;

	putc('"', f);
	for (i = 0; i + 2 < n; i += 3) {
		putc(b64[p[i] >> 2], f);
		putc(b64[(p[i] & 3) << 4 | p[i + 1] >> 4], f);
		putc(b64[(p[i + 1] & 15) << 2 | p[i + 2] >> 6], f);
		putc(b64[p[i + 2] & 63], f);
	}
	if (i < n) {
		putc(b64[p[i] >> 2], f);
		if (i + 1 < n) {
			putc(b64[(p[i] & 3) << 4 | p[i + 1] >> 4], f);
			putc(b64[(p[i + 1] & 15) << 2], f);
		} else {
			putc(b64[(p[i] & 3) << 4], f);
			putc('=', f);
		}
		putc('=', f);
	}
	putc('"', f);
}

void
out_fetch_json(FILE *f, const struct pw_fetch_result *res, const char *hdrs,
    size_t hlen, const void *body, size_t blen)
{
	static const char *const kinds[] = { "none", "proxy", "target" };
	struct pw_buf	h;
	int		text = pw_utf8_text(body, blen);
	double		ms = 0;

	fprintf(f, "{\"status\":%ld,\"headers\":", res->status);
	pw_buf_init(&h);
	pw_headers_json(&h, hdrs ? hdrs : "", hlen);
	fwrite(h.data, 1, h.len, f);
	pw_buf_release(&h);
	fputs(",\"body\":", f);
	if (text)
		out_json_strn(f, body ? body : "", blen);
	else
		base64(f, body, blen);
	fprintf(f, ",\"body_encoding\":\"%s\",\"proxy\":",
	    text ? "text" : "base64");
	if (res->proxy != NULL)
		out_json_str(f, res->proxy);
	else
		fputs("null", f);
	fprintf(f, ",\"proxy_id\":%lld,\"attempts\":[",
	    (long long)res->proxy_id);
	for (size_t i = 0; i < res->nattempts; i++) {
		const struct pw_attempt *a = &res->attempts[i];
		fprintf(f, "%s{\"proxy\":", i ? "," : "");
		out_json_str(f, a->proxy);
		fprintf(f, ",\"proxy_id\":%lld,\"status\":%ld,"
		    "\"failure\":\"%s\",\"error\":", (long long)a->proxy_id,
		    a->status, kinds[a->kind]);
		if (a->error != NULL)
			out_json_str(f, a->error);
		else
			fputs("null", f);
		fprintf(f, ",\"ms\":%.1f", a->ms);
		if (res->delegated)
			fprintf(f, ",\"path\":\"%s\"", pw_path_name(a->path));
		fputc('}', f);
	}
	for (size_t i = 0; i < res->nattempts; i++)
		ms += res->attempts[i].ms;
	fprintf(f, "],\"elapsed_ms\":%.1f", ms);
	/* Which way the proxy was chosen, when a service is configured. */
	if (res->delegated) {
		fprintf(f, ",\"path\":\"%s\",\"fallback_reason\":",
		    pw_path_name(res->path));
		if (res->fallback_why != NULL)
			out_json_str(f, res->fallback_why);
		else
			fputs("null", f);
	}
	fputs("}\n", f);
}
