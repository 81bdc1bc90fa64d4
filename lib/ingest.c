/*
 * ingest.c -- parsers and writers for proxy lists: txt (one URL a line),
 * csv (RFC 4180, with a header row), json (an array of objects or
 * strings) and jsonl (one object or string a line).
 *
 * Pure: the parsers take bytes pushed in chunks of any size and hand each
 * record to a callback, each bad one to another; they do no I/O, so the
 * fuzzer, pw cache warm and the serve API share them. Memory is bounded:
 * a line or JSON element longer than PW_INGEST_MAX_RECORD is rejected
 * and skipped, never buffered whole.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* Raw fields of a record, as text, before validation. */
enum field {
	F_URL, F_SCHEME, F_HOST, F_PORT, F_USER, F_PASS, F_COUNTRY,
	F_REGION, F_SOURCE, F_WEIGHT, F_EXPIRES, NFIELDS
};

/* Column and key names; the first of each is the one export writes. */
static const struct {
	const char	*name;
	enum field	 f;
} field_names[] = {
	{ "url", F_URL }, { "proxy", F_URL },
	{ "scheme", F_SCHEME }, { "protocol", F_SCHEME },
	{ "host", F_HOST }, { "ip", F_HOST },
	{ "port", F_PORT },
	{ "username", F_USER }, { "user", F_USER },
	{ "password", F_PASS }, { "pass", F_PASS },
	{ "country", F_COUNTRY },
	{ "region", F_REGION },
	{ "source", F_SOURCE },
	{ "weight", F_WEIGHT },
	{ "expires_at", F_EXPIRES },
};
#define NNAMES	((int)(sizeof field_names / sizeof field_names[0]))

static const char *const format_names[PW_FMT_COUNT] = {
	[PW_FMT_AUTO] = "auto", [PW_FMT_TXT] = "txt", [PW_FMT_CSV] = "csv",
	[PW_FMT_JSON] = "json", [PW_FMT_JSONL] = "jsonl",
};

#define JSON_MAX_DEPTH	32

/*
 * How far --format auto looks for a first line that is not empty or a
 * comment. Only this much is looked at, however the input is split.
 */
#define SNIFF_MAX	(64 * 1024)

/* A record being assembled: field values as offsets into a scratch. */
struct raw {
	struct pw_buf	 text;
	size_t		 off[NFIELDS];
	int		 set[NFIELDS];
	long		 line;
};

enum jstate { J_START, J_VALUE, J_FIRST, J_SEP, J_SKIP, J_DONE, J_DEAD };

/*
 * Where a scan of a CSV record is: at a field's start, in a field, in
 * quotes, or just after a quote in quotes (a close, or half of "").
 */
enum csvq { CSVQ_FIELD, CSVQ_PLAIN, CSVQ_QUOTED, CSVQ_QUOTE };

struct pw_ingest {
	int		 format;
	pw_record_fn	*fn;
	pw_reject_fn	*reject;
	void		*arg;
	struct pw_buf	 in;		/* bytes not yet consumed */
	size_t		 pos;		/* first unconsumed byte of in */
	long		 line;		/* line number at pos */
	int		 started;	/* BOM checked */
	int		 skipping;	/* dropping an over-long line */
	enum csvq	 skip_q;	/* where that CSV record's scan is */
	int		 stop;		/* a callback said stop */
	/* csv */
	int		 header_done;
	int		*colmap;	/* column -> field, or -1 */
	int		 ncols;
	/* json */
	enum jstate	 js;
	/* J_SKIP: where the scan of an over-long element is. */
	int		 jdepth;
	uint64_t	 jopen;		/* a bit an open bracket, 1 for '{' */
	int		 jstr, jesc;	/* in a string; after its backslash */
	struct raw	 raw;
	struct pw_buf	 str;		/* a decoded JSON string */
	struct pw_buf	 url;		/* a URL made of columns */
	char		 why[80];	/* a wrong-type message */
};

static int	field_lookup(const char *, size_t);

const char *
pw_format_name(int f)
{
	return f >= 0 && f < PW_FMT_COUNT ? format_names[f] : "?";
}

int
pw_format_parse(const char *s, int *out)
{
	for (int i = 0; i < PW_FMT_COUNT; i++) {
		if (s != NULL && strcasecmp(s, format_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	if (s != NULL && strcasecmp(s, "ndjson") == 0) {
		*out = PW_FMT_JSONL;
		return 0;
	}
	return PW_EUSAGE;
}

int
pw_format_from_name(const char *name)
{
	const char	*dot, *slash;
	int		 f;

	if (name == NULL)
		return PW_FMT_AUTO;
	slash = strrchr(name, '/');
	dot = strrchr(name, '.');
	if (dot == NULL || (slash != NULL && dot < slash))
		return PW_FMT_AUTO;
	/* A URL's query does not name the format. */
	if (strchr(dot, '?') != NULL)
		return PW_FMT_AUTO;
	if (pw_format_parse(dot + 1, &f) == 0 && f != PW_FMT_AUTO)
		return f;
	if (strcasecmp(dot + 1, "list") == 0)
		return PW_FMT_TXT;
	return PW_FMT_AUTO;
}

/*
 * A header word: a column name, or a column pw ignores ("note", "last
 * checked", "speed (ms)"). No ':', '/' or '@', so no proxy URL is one.
 */
static int
header_word(const unsigned char *s, const unsigned char *e)
{
	/* A first column of row numbers is often headed "#". */
	if (e - s == 1 && *s == '#')
		return 1;
	for (; s < e; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') &&
		    memchr(" \t_-.()", *s, 7) == NULL)
			return 0;
	return 1;
}

/*
 * Whether the line [s, e) reads as a CSV header: two fields or more,
 * each a header word (in double quotes or not), at least one of them a
 * column name. Names are matched whole, so a comment or a txt line that
 * merely mentions "host" or "port" is no header.
 */
static int
header_like(const unsigned char *s, const unsigned char *e)
{
	const unsigned char	*f, *fe;
	int			 nf = 0, named = 0;

	if (e > s && e[-1] == '\r')
		e--;
	for (;;) {
		for (f = s; s < e && *s != ','; s++)
			;
		fe = s;
		while (f < fe && (*f == ' ' || *f == '\t'))
			f++;
		while (fe > f && (fe[-1] == ' ' || fe[-1] == '\t'))
			fe--;
		if (fe - f >= 2 && *f == '"' && fe[-1] == '"') {
			f++;
			fe--;
		}
		if (!header_word(f, fe))
			return 0;
		named |= field_lookup((const char *)f, fe - f) >= 0;
		nf++;
		if (s == e)
			return nf >= 2 && named;
		s++;
	}
}

/*
 * The format [s, e) looks like, from its first line that is neither
 * empty nor a '#' comment; -1 when that line runs into e and more input
 * may tell (unless final: then e is the end).
 */
static int
sniff(const unsigned char *s, const unsigned char *e, int final)
{
	const unsigned char	*nl;

	for (;;) {
		while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' ||
		    *s == '\n'))
			s++;
		if (s == e)
			return final ? PW_FMT_TXT : -1;
		if (*s == '[')
			return PW_FMT_JSON;
		if (*s == '{')
			return PW_FMT_JSONL;
		if ((nl = memchr(s, '\n', e - s)) == NULL) {
			if (!final)
				return -1;
			nl = e;
		}
		/* A quoted header is csv; a string alone, jsonl. */
		if (header_like(s, nl))
			return PW_FMT_CSV;
		if (*s == '"')
			return PW_FMT_JSONL;
		if (*s != '#')
			return PW_FMT_TXT;
		s = nl;
	}
}

int
pw_format_sniff(const void *p, size_t n)
{
	const unsigned char	*s = p;

	if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
		return sniff(s + 3, s + n, 1);
	return sniff(s, s + n, 1);
}

struct pw_ingest *
pw_ingest_new(int format, pw_record_fn *fn, pw_reject_fn *reject, void *arg)
{
	struct pw_ingest	*in = pw_xcalloc(1, sizeof *in);

	in->format = format;
	in->fn = fn;
	in->reject = reject;
	in->arg = arg;
	in->line = 1;
	pw_buf_init(&in->in);
	pw_buf_init(&in->raw.text);
	pw_buf_init(&in->str);
	pw_buf_init(&in->url);
	return in;
}

void
pw_ingest_free(struct pw_ingest *in)
{
	if (in == NULL)
		return;
	pw_buf_release(&in->in);
	pw_buf_release(&in->raw.text);
	pw_buf_release(&in->str);
	pw_buf_release(&in->url);
	free(in->colmap);
	free(in);
}

int
pw_ingest_format(const struct pw_ingest *in)
{
	return in->format;
}

/* ------------------------------------------------------------ records */

static void
raw_reset(struct raw *r, long line)
{
	pw_buf_reset(&r->text);
	memset(r->set, 0, sizeof r->set);
	r->line = line;
}

static void
raw_put(struct raw *r, int f, const char *s, size_t n)
{
	r->off[f] = r->text.len;
	r->set[f] = 1;
	pw_buf_add(&r->text, s, n);
	pw_buf_addc(&r->text, '\0');
}

static const char *
raw_get(const struct raw *r, int f)
{
	const char	*s;

	if (!r->set[f])
		return NULL;
	s = r->text.data + r->off[f];
	return *s != '\0' ? s : NULL;
}

static int
field_lookup(const char *name, size_t n)
{
	while (n > 0 && (*name == ' ' || *name == '\t')) {
		name++;
		n--;
	}
	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	for (int i = 0; i < NNAMES; i++)
		if (strlen(field_names[i].name) == n &&
		    strncasecmp(field_names[i].name, name, n) == 0)
			return field_names[i].f;
	return -1;
}

static void
reject(struct pw_ingest *in, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reject(struct pw_ingest *in, long line, const char *fmt, ...)
{
	char	why[400];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	/* A value quoted from the input stays on one printable line. */
	for (char *c = why; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	if (in->reject != NULL)
		in->reject(in->arg, line, why);
}

/* The last second of 9999: a later time is not written back as it came. */
#define TIME_MAX	INT64_C(253402300799)

/* The number the n digits at s make; -1 if one is not a digit. */
static int
digits(const char *s, int n)
{
	int	v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * "2026-11-29T18:00:00Z" or epoch seconds, up to the end of 9999. Each
 * part is checked, not normalised: February 31st is no date, and
 * neither is "2030- 2- 1" (sscanf's %d took the spaces). Seconds go to
 * 59: a proxy list has no use for a leap second.
 */
static int
parse_time(const char *s, int64_t *out)
{
	static const int	mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31,
				    30, 31, 30, 31 };
	int			y, mo, d, h, mi, se, leap;
	int64_t			days;

	if (s[0] != '\0' && s[strspn(s, "0123456789")] == '\0')
		/* Found by fuzz_ingest: 18934560056000 was year 601982. */
		return pw_parse_int(s, 1, TIME_MAX, out);
	if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':' || s[19] != 'Z')
		return PW_EUSAGE;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	se = digits(s + 17, 2);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 ||
	    mi < 0 || mi > 59 || se < 0 || se > 59)
		return PW_EUSAGE;
	leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
	if (d > mdays[mo - 1] + (mo == 2 && leap))
		return PW_EUSAGE;
	/* Days since 1970-01-01: whole years, then this year's months. */
	days = 365 * (int64_t)(y - 1970) + (y - 1969) / 4 - (y - 1901) / 100 +
	    (y - 1601) / 400;
	for (int m = 1; m < mo; m++)
		days += mdays[m - 1] + (m == 2 && leap);
	days += d - 1;
	*out = days * 86400 + h * 3600 + mi * 60 + se;
	return *out > 0 ? 0 : PW_EUSAGE;
}

/*
 * Whether [s, e) is an IPv6 address. A literal is at most
 * INET6_ADDRSTRLEN - 1 bytes long.
 */
static int
is_ipv6(const char *s, size_t n)
{
	char		buf[INET6_ADDRSTRLEN];
	unsigned char	bin[16];

	if (n == 0 || n >= sizeof buf)
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, bin) == 1;
}

/*
 * The URL of a record given as scheme, host and port columns, in
 * in->url; NULL, or why the parts cannot make one. Each part is checked
 * for what would change the URL's meaning if it were pasted in as it
 * is (an '@' that turns the host into a user name, a ':' that adds a
 * port, a '/', '?' or '#' that ends the authority); pw_addr_parse then
 * checks the URL as any other. User and password are not in it: they
 * go into the record as they are.
 */
static const char *
url_from_parts(struct pw_ingest *in, const struct raw *r)
{
	const char	*scheme = raw_get(r, F_SCHEME);
	const char	*host = raw_get(r, F_HOST);
	const char	*port = raw_get(r, F_PORT);
	size_t		 n = strlen(host);
	int		 v6 = 0;

	for (const char *c = scheme; c != NULL && *c != '\0'; c++)
		if (!isalnum((unsigned char)*c))
			return "unsupported scheme (use http, https, socks4, "
			    "socks4a, socks5 or socks5h)";
	if (host[0] == '[' && host[n - 1] == ']') {
		if (!is_ipv6(host + 1, n - 2))
			return "bad host: want a host name or an IP address";
		v6 = 1;
	} else if (strchr(host, ':') != NULL) {
		if (!is_ipv6(host, n))
			return "bad host: want a host name or an IP address";
		v6 = 2;
	} else if (strpbrk(host, "@/?#[]\\%") != NULL)
		return "bad host: want a host name or an IP address";
	for (const char *c = port; c != NULL && *c != '\0'; c++)
		if (*c < '0' || *c > '9')
			return "port is not a number";
	pw_buf_reset(&in->url);
	pw_buf_adds(&in->url, scheme != NULL ? scheme : "http");
	pw_buf_adds(&in->url, v6 == 2 ? "://[" : "://");
	pw_buf_adds(&in->url, host);
	if (v6 == 2)
		pw_buf_addc(&in->url, ']');
	if (port != NULL) {
		pw_buf_addc(&in->url, ':');
		pw_buf_adds(&in->url, port);
	}
	return NULL;
}

/*
 * Validate the raw fields and hand a record on. Returns non-zero only
 * when the callback asks to stop.
 */
static int
emit(struct pw_ingest *in, struct raw *r)
{
	struct pw_record	 rec;
	struct pw_err		 err = { 0 };
	const char		*url = raw_get(r, F_URL), *v;
	const char		*user = raw_get(r, F_USER);
	const char		*pass = raw_get(r, F_PASS);
	char			 canon[3];
	int			 rc;

	memset(&rec, 0, sizeof rec);
	rec.line = r->line;
	rec.weight = -1;
	if (url == NULL) {
		if (raw_get(r, F_HOST) == NULL) {
			reject(in, r->line, "missing url or host");
			return 0;
		}
		if ((v = url_from_parts(in, r)) != NULL) {
			reject(in, r->line, "%s", v);
			return 0;
		}
		url = in->url.data;
	}
	rc = pw_addr_parse(url, &rec.addr, &err);
	if (rc != 0) {
		reject(in, r->line, "%s", err.msg);
		return 0;
	}
	if (rec.addr.user == NULL && user != NULL) {
		rec.addr.user = pw_xstrdup(user);
		if (pass != NULL)
			rec.addr.pass = pw_xstrdup(pass);
	} else if (rec.addr.user == NULL && pass != NULL) {
		reject(in, r->line, "password without a user name");
		goto bad;
	}
	if ((v = raw_get(r, F_COUNTRY)) != NULL) {
		if (pw_country_check(v, canon, &err) != 0) {
			reject(in, r->line, "country %s", err.msg);
			goto bad;
		}
		memcpy(rec.country, canon, 3);
	}
	rec.region = raw_get(r, F_REGION);
	rec.source = raw_get(r, F_SOURCE);
	/* Stored as they are, and printed one a line: no controls. */
	if (rec.region != NULL && (v = pw_label_why(rec.region)) != NULL) {
		reject(in, r->line, "region: %s", v);
		goto bad;
	}
	if (rec.source != NULL && (v = pw_label_why(rec.source)) != NULL) {
		reject(in, r->line, "source: %s", v);
		goto bad;
	}
	if ((v = raw_get(r, F_WEIGHT)) != NULL &&
	    pw_parse_double(v, 0, 1e9, &rec.weight) != 0) {
		reject(in, r->line, "weight '%.40s': want a number from 0 to "
		    "1e9", v);
		goto bad;
	}
	if ((v = raw_get(r, F_EXPIRES)) != NULL &&
	    parse_time(v, &rec.expires_at) != 0) {
		reject(in, r->line, "expires_at '%.40s': want epoch seconds "
		    "or YYYY-MM-DDTHH:MM:SSZ", v);
		goto bad;
	}
	/* The record's address is the callback's from here. */
	return in->fn(in->arg, &rec);
bad:
	pw_addr_release(&rec.addr);
	return 0;
}

/* -------------------------------------------------------------- lines */

static void
trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

static int
txt_line(struct pw_ingest *in, const char *s, const char *e, long line)
{
	trim(&s, &e);
	if (s == e || *s == '#')
		return 0;
	raw_reset(&in->raw, line);
	raw_put(&in->raw, F_URL, s, e - s);
	return emit(in, &in->raw);
}

static int json_line(struct pw_ingest *, const char *, const char *, long);

static int
csv_header(struct pw_ingest *in, const char *s, const char *e, long line);
static int
csv_record(struct pw_ingest *in, const char *s, const char *e, long line);

/* One complete line (without its newline) of a line-based format. */
static int
one_line(struct pw_ingest *in, const char *s, const char *e, long line)
{
	if (e > s && e[-1] == '\r')
		e--;
	if (memchr(s, '\0', e - s) != NULL) {
		reject(in, line, "contains a NUL byte");
		return 0;
	}
	switch (in->format) {
	case PW_FMT_TXT:
		return txt_line(in, s, e, line);
	case PW_FMT_JSONL:
		return json_line(in, s, e, line);
	default:
		return 0;
	}
}

/* ---------------------------------------------------------------- csv */

/*
 * Find the end of the CSV record starting at s: the first newline not
 * inside a quoted field. A quote opens a quoted field only at the start
 * of a field (RFC 4180); anywhere else it is data, and csv_split refuses
 * that one record, so a stray quote cannot swallow the rows after it.
 * *q is where the scan stands, in and out, so that a record can be
 * scanned in parts (CSVQ_FIELD to begin one); *nlines counts the
 * newlines in quotes. NULL when the record does not end in [s, e).
 */
static const char *
csv_end(const char *s, const char *e, enum csvq *q, long *nlines)
{
	const char	*p = s, *nl;
	enum csvq	 st = *q;
	long		 n = 0;

	/* Most records have no quote: two memchr find their end. */
	if (st != CSVQ_QUOTED && (nl = memchr(s, '\n', e - s)) != NULL &&
	    memchr(s, '"', nl - s) == NULL) {
		*q = CSVQ_FIELD;
		*nlines = 0;
		return nl;
	}
	while (p < e) {
		if (st == CSVQ_QUOTED) {
			for (; p < e && *p != '"'; p++)
				if (*p == '\n')
					n++;
			if (p == e)
				break;
			p++;
			st = CSVQ_QUOTE;
			continue;
		}
		/* A quote after a quote in quotes is one quote of data. */
		if (*p == '"' && st != CSVQ_PLAIN) {
			p++;
			st = CSVQ_QUOTED;
			continue;
		}
		for (; p < e && *p != ',' && *p != '\n'; p++)
			;
		if (p == e) {
			st = CSVQ_PLAIN;
			break;
		}
		if (*p == '\n') {
			*q = CSVQ_FIELD;
			*nlines = n;
			return p;
		}
		p++;
		st = CSVQ_FIELD;
	}
	*q = st;
	*nlines = n;
	return NULL;
}

/*
 * Split one CSV record into fields; fn(i, value, n) for each. Returns the
 * number of fields, or -1 with *why set on bad quoting.
 */
static int
csv_split(struct pw_ingest *in, const char *s, const char *e,
    const char **why)
{
	int	 nf = 0;

	for (;;) {
		pw_buf_reset(&in->str);
		if (s < e && *s == '"') {
			s++;
			for (;;) {
				if (s == e) {
					*why = "unterminated quoted field";
					return -1;
				}
				if (*s == '"') {
					if (s + 1 < e && s[1] == '"') {
						pw_buf_addc(&in->str, '"');
						s += 2;
						continue;
					}
					s++;
					break;
				}
				/* CR before LF is nothing, in quotes too. */
				if (*s == '\r' && s + 1 < e && s[1] == '\n')
					s++;
				pw_buf_addc(&in->str, *s++);
			}
			if (s < e && *s != ',') {
				*why = "junk after a closing quote";
				return -1;
			}
		} else {
			const char *f = s;
			while (s < e && *s != ',') {
				if (*s == '"') {
					*why = "quote inside an unquoted field";
					return -1;
				}
				s++;
			}
			const char *fs = f, *fe = s;
			trim(&fs, &fe);
			pw_buf_add(&in->str, fs, fe - fs);
		}
		if (!in->header_done) {
			in->colmap = pw_xrealloc(in->colmap, (nf + 1) *
			    sizeof *in->colmap);
			in->colmap[nf] = field_lookup(in->str.data,
			    in->str.len);
		} else if (nf < in->ncols && in->colmap[nf] >= 0)
			raw_put(&in->raw, in->colmap[nf], in->str.data,
			    in->str.len);
		nf++;
		if (s == e)
			return nf;
		s++;	/* the comma */
	}
}

static int
csv_header(struct pw_ingest *in, const char *s, const char *e, long line)
{
	const char	*why = NULL;
	int		 n, url = 0, host = 0;

	n = csv_split(in, s, e, &why);
	if (n < 0) {
		reject(in, line, "csv header: %s; rest of the input ignored",
		    why);
		in->js = J_DEAD;
		return 0;
	}
	in->ncols = n;
	in->header_done = 1;
	for (int i = 0; i < n; i++) {
		url |= in->colmap[i] == F_URL;
		host |= in->colmap[i] == F_HOST;
	}
	if (!url && !host) {
		reject(in, line, "csv header names no url or host column; "
		    "rest of the input ignored");
		in->js = J_DEAD;
	}
	return 0;
}

static int
csv_record(struct pw_ingest *in, const char *s, const char *e, long line)
{
	const char	*why = NULL;
	int		 n;

	if (e > s && e[-1] == '\r')
		e--;
	if (memchr(s, '\0', e - s) != NULL) {
		reject(in, line, "contains a NUL byte");
		return 0;
	}
	if (!in->header_done) {
		/*
		 * Empty lines and comments before the header are nothing,
		 * as --format auto passed over them ("#" may head a column).
		 */
		const char *ts = s, *te = e;
		trim(&ts, &te);
		if (ts == te || (*ts == '#' && !header_like((const unsigned
		    char *)ts, (const unsigned char *)te)))
			return 0;
		return csv_header(in, s, e, line);
	}
	{
		const char *ts = s, *te = e;
		trim(&ts, &te);
		if (ts == te)
			return 0;
	}
	raw_reset(&in->raw, line);
	n = csv_split(in, s, e, &why);
	if (n < 0) {
		reject(in, line, "bad CSV quoting: %s", why);
		return 0;
	}
	if (n != in->ncols) {
		reject(in, line, "%d fields, the header has %d", n, in->ncols);
		return 0;
	}
	return emit(in, &in->raw);
}

/* --------------------------------------------------------------- json */

struct jp {
	const char	*s, *end;
	const char	*why;
	int		 incomplete;
	struct pw_buf	*str;
};

static void
jws(struct jp *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' ||
	    *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static int
jfail(struct jp *p, const char *why)
{
	if (p->s >= p->end)
		p->incomplete = 1;
	p->why = why;
	return -1;
}

static void
utf8_put(struct pw_buf *b, unsigned long c)
{
	if (c < 0x80)
		pw_buf_addc(b, (char)c);
	else if (c < 0x800) {
		pw_buf_addc(b, (char)(0xc0 | c >> 6));
		pw_buf_addc(b, (char)(0x80 | (c & 0x3f)));
	} else if (c < 0x10000) {
		pw_buf_addc(b, (char)(0xe0 | c >> 12));
		pw_buf_addc(b, (char)(0x80 | ((c >> 6) & 0x3f)));
		pw_buf_addc(b, (char)(0x80 | (c & 0x3f)));
	} else {
		pw_buf_addc(b, (char)(0xf0 | c >> 18));
		pw_buf_addc(b, (char)(0x80 | ((c >> 12) & 0x3f)));
		pw_buf_addc(b, (char)(0x80 | ((c >> 6) & 0x3f)));
		pw_buf_addc(b, (char)(0x80 | (c & 0x3f)));
	}
}

static int
hex4(const char *s, unsigned long *out)
{
	unsigned long	v = 0;

	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)s[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

/* A string at p->s (the opening quote), decoded into p->str. */
static int
jstring(struct jp *p)
{
	unsigned long	c, c2;

	pw_buf_reset(p->str);
	p->s++;
	for (;;) {
		const char *q = p->s;
		while (q < p->end && *q != '"' && *q != '\\' &&
		    (unsigned char)*q >= 0x20)
			q++;
		pw_buf_add(p->str, p->s, q - p->s);
		p->s = q;
		if (p->s >= p->end)
			return jfail(p, "unterminated string");
		if (*p->s == '"') {
			p->s++;
			return 0;
		}
		if ((unsigned char)*p->s < 0x20)
			return jfail(p, "control character in a string");
		/* A backslash escape. */
		if (p->s + 1 >= p->end) {
			p->s = p->end;
			return jfail(p, "unterminated string");
		}
		switch (p->s[1]) {
		case '"': pw_buf_addc(p->str, '"'); break;
		case '\\': pw_buf_addc(p->str, '\\'); break;
		case '/': pw_buf_addc(p->str, '/'); break;
		case 'b': pw_buf_addc(p->str, '\b'); break;
		case 'f': pw_buf_addc(p->str, '\f'); break;
		case 'n': pw_buf_addc(p->str, '\n'); break;
		case 'r': pw_buf_addc(p->str, '\r'); break;
		case 't': pw_buf_addc(p->str, '\t'); break;
		case 'u':
			if (p->end - p->s < 6) {
				p->s = p->end;
				return jfail(p, "unterminated string");
			}
			if (hex4(p->s + 2, &c) != 0)
				return jfail(p, "bad \\u escape");
			p->s += 4;
			if (c >= 0xd800 && c < 0xdc00) {
				ptrdiff_t have = p->end - p->s;
				if ((have > 2 && p->s[2] != '\\') ||
				    (have > 3 && p->s[3] != 'u'))
					return jfail(p, "lone surrogate in "
					    "\\u escape");
				if (have < 8) {
					p->s = p->end;
					return jfail(p, "unterminated string");
				}
				if (p->s[2] != '\\' || p->s[3] != 'u' ||
				    hex4(p->s + 4, &c2) != 0 || c2 < 0xdc00 ||
				    c2 > 0xdfff)
					return jfail(p, "lone surrogate in "
					    "\\u escape");
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (c2 - 0xdc00);
				p->s += 6;
			} else if (c >= 0xdc00 && c < 0xe000)
				return jfail(p, "lone surrogate in \\u escape");
			if (c == 0)
				return jfail(p, "NUL (\\u0000) in a string");
			utf8_put(p->str, c);
			break;
		default:
			return jfail(p, "bad escape in a string");
		}
		p->s += 2;
	}
}

/* A number: its text stays in [start, p->s). */
static int
jnumber(struct jp *p)
{
	const char	*s = p->s;

	if (s < p->end && *s == '-')
		s++;
	if (s >= p->end)
		goto out;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (s < p->end && isdigit((unsigned char)*s))
			s++;
	else {
		p->s = s;
		return jfail(p, "bad number");
	}
	if (s < p->end && *s == '.') {
		s++;
		if (s >= p->end || !isdigit((unsigned char)*s))
			goto out;
		while (s < p->end && isdigit((unsigned char)*s))
			s++;
	}
	if (s < p->end && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < p->end && (*s == '+' || *s == '-'))
			s++;
		if (s >= p->end || !isdigit((unsigned char)*s))
			goto out;
		while (s < p->end && isdigit((unsigned char)*s))
			s++;
	}
	/* A number that runs into the end may go on in the next chunk. */
	if (s >= p->end) {
		p->s = s;
		return jfail(p, "truncated number");
	}
	p->s = s;
	return 0;
out:
	p->s = s;
	return jfail(p, "bad number");
}

static int
jword(struct jp *p, const char *w)
{
	size_t	n = strlen(w), have = p->end - p->s;

	if (have < n) {
		if (memcmp(p->s, w, have) == 0) {
			p->s = p->end;
			return jfail(p, "truncated literal");
		}
		return jfail(p, "bad literal");
	}
	if (memcmp(p->s, w, n) != 0)
		return jfail(p, "bad literal");
	p->s += n;
	return 0;
}

/* Any value, skipped (checked, not kept). */
static int
jskip(struct jp *p, int depth)
{
	jws(p);
	if (p->s >= p->end)
		return jfail(p, "missing value");
	if (depth > JSON_MAX_DEPTH)
		return jfail(p, "nested too deep");
	switch (*p->s) {
	case '"':
		return jstring(p);
	case '{':
	case '[': {
		char close = *p->s == '{' ? '}' : ']';
		int obj = close == '}';
		p->s++;
		jws(p);
		if (p->s < p->end && *p->s == close) {
			p->s++;
			return 0;
		}
		for (;;) {
			if (obj) {
				jws(p);
				if (p->s >= p->end || *p->s != '"')
					return jfail(p, "want a key string");
				if (jstring(p) != 0)
					return -1;
				jws(p);
				if (p->s >= p->end || *p->s != ':')
					return jfail(p, "want ':'");
				p->s++;
			}
			if (jskip(p, depth + 1) != 0)
				return -1;
			jws(p);
			if (p->s >= p->end)
				return jfail(p, "unterminated");
			if (*p->s == close) {
				p->s++;
				return 0;
			}
			if (*p->s != ',')
				return jfail(p, "want ',' or a close");
			p->s++;
		}
	}
	case 't':
		return jword(p, "true");
	case 'f':
		return jword(p, "false");
	case 'n':
		return jword(p, "null");
	default:
		return jnumber(p);
	}
}

/*
 * One element: an object of fields or a URL string, into in->raw.
 * Returns 0, -1 on a syntax error (p->why; p->incomplete when more input
 * may fix it) or 1 when it is well-formed JSON of the wrong shape
 * (p->why says what).
 */
static const char *
field_name(int f)
{
	for (int i = 0; i < NNAMES; i++)
		if (field_names[i].f == (enum field)f)
			return field_names[i].name;
	return "?";
}

/*
 * One element: an object of fields or a URL string, into in->raw.
 * Returns 0, -1 on a syntax error (p->why; p->incomplete when more input
 * may fix it) or 1 when it is well-formed JSON of the wrong shape
 * (p->why says what).
 */
static int
jrecord(struct pw_ingest *in, struct jp *p, long line)
{
	int	bad = -1;

	raw_reset(&in->raw, line);
	jws(p);
	if (p->s >= p->end)
		return jfail(p, "missing value");
	if (*p->s == '"') {
		if (jstring(p) != 0)
			return -1;
		raw_put(&in->raw, F_URL, p->str->data, p->str->len);
		return 0;
	}
	if (*p->s != '{') {
		if (jskip(p, 0) != 0)
			return -1;
		p->why = "want an object or a URL string";
		return 1;
	}
	p->s++;
	jws(p);
	if (p->s < p->end && *p->s == '}') {
		p->s++;
		return 0;
	}
	for (;;) {
		int f;
		const char *v;
		jws(p);
		if (p->s >= p->end || *p->s != '"')
			return jfail(p, "want a key string");
		if (jstring(p) != 0)
			return -1;
		f = field_lookup(p->str->data, p->str->len);
		jws(p);
		if (p->s >= p->end || *p->s != ':')
			return jfail(p, "want ':'");
		p->s++;
		jws(p);
		if (p->s >= p->end)
			return jfail(p, "missing value");
		v = p->s;
		if (f < 0) {
			if (jskip(p, 1) != 0)
				return -1;
		} else if (*p->s == '"') {
			if (jstring(p) != 0)
				return -1;
			raw_put(&in->raw, f, p->str->data, p->str->len);
		} else if (*p->s == 'n') {
			if (jword(p, "null") != 0)
				return -1;
		} else if (*p->s == '-' || isdigit((unsigned char)*p->s)) {
			if (jnumber(p) != 0)
				return -1;
			if (f == F_PORT || f == F_WEIGHT || f == F_EXPIRES)
				raw_put(&in->raw, f, v, p->s - v);
			else if (bad < 0)
				bad = f;
		} else {
			if (jskip(p, 1) != 0)
				return -1;
			if (bad < 0)
				bad = f;
		}
		jws(p);
		if (p->s >= p->end)
			return jfail(p, "unterminated object");
		if (*p->s == '}') {
			p->s++;
			break;
		}
		if (*p->s != ',')
			return jfail(p, "want ',' or '}'");
		p->s++;
	}
	if (bad >= 0) {
		snprintf(in->why, sizeof in->why,
		    "\"%s\": wrong type (want %s)",
		    field_name(bad), bad == F_PORT || bad == F_WEIGHT ?
		    "a number or a string" : bad == F_EXPIRES ?
		    "a number or a date string" : "a string");
		p->why = in->why;
		return 1;
	}
	return 0;
}

static long
count_nl(const char *s, const char *e)
{
	long	n = 0;

	while (s < e && (s = memchr(s, '\n', e - s)) != NULL) {
		n++;
		s++;
	}
	return n;
}

static int
json_line(struct pw_ingest *in, const char *s, const char *e, long line)
{
	struct jp	p = { s, e, NULL, 0, &in->str };
	int		r;

	trim(&s, &e);
	if (s == e)
		return 0;
	p.s = s;
	p.end = e;
	/* A line is whole: a number at its end is complete. */
	r = jrecord(in, &p, line);
	if (r < 0 && p.incomplete && (*s == '-' ||
	    isdigit((unsigned char)*s))) {
		/* A bare number: whole, since the line is. */
		reject(in, line, "want an object or a URL string");
		return 0;
	}
	if (r < 0 && p.incomplete) {
		reject(in, line, "JSON syntax error: %s at the end of the "
		    "line", p.why);
		return 0;
	}
	if (r < 0) {
		reject(in, line, "JSON syntax error: %s", p.why);
		return 0;
	}
	if (r > 0) {
		reject(in, line, "%s", p.why);
		return 0;
	}
	jws(&p);
	if (p.s != p.end) {
		reject(in, line, "JSON syntax error: junk after the value");
		return 0;
	}
	return emit(in, &in->raw);
}

/* Advance pos to q, counting lines. */
static void
advance(struct pw_ingest *in, const char *q)
{
	const char	*s = in->in.data + in->pos;

	in->line += count_nl(s, q);
	in->pos = q - in->in.data;
}

static void
json_dead(struct pw_ingest *in, long line, const char *why)
{
	reject(in, line, "JSON syntax error: %s; rest of the input ignored",
	    why);
	in->js = J_DEAD;
}

/*
 * Drop an over-long element as it comes: up to the ',' or ']' after it,
 * minding strings and brackets (nothing else is checked: it is refused
 * anyway). The state is in `in`, so the bytes may come in any pieces.
 * Returns where the element ends, or NULL when it goes on past e; or
 * where the brackets go wrong, with *why, when the array cannot go on.
 */
static const char *
json_skip(struct pw_ingest *in, const char *s, const char *e,
    const char **why)
{
	*why = NULL;
	for (; s < e; s++) {
		if (in->jstr) {
			if (in->jesc)
				in->jesc = 0;
			else if (*s == '\\')
				in->jesc = 1;
			else if (*s == '"')
				in->jstr = 0;
			continue;
		}
		switch (*s) {
		case '"':
			in->jstr = 1;
			break;
		case '{':
		case '[':
			/* As deep as jskip goes, and no deeper. */
			if (in->jdepth > JSON_MAX_DEPTH) {
				*why = "nested too deep";
				return s;
			}
			in->jopen = in->jopen << 1 | (*s == '{');
			in->jdepth++;
			break;
		case '}':
		case ']':
			if (in->jdepth == 0 && *s == ']')
				return s;
			if (in->jdepth == 0 || (in->jopen & 1) != (*s == '}')) {
				*why = "want ',' or a close";
				return s;
			}
			in->jopen >>= 1;
			in->jdepth--;
			break;
		case ',':
			if (in->jdepth == 0)
				return s;
			break;
		}
	}
	return NULL;
}

/* Consume what can be consumed of a JSON array. */
static int
json_run(struct pw_ingest *in, int eof)
{
	const char	*end = in->in.data + in->in.len, *q, *why;
	struct jp	 p;
	long		 line;
	int		 r;

	for (;;) {
		/* An over-long element is dropped as its bytes come. */
		if (in->js == J_SKIP) {
			q = json_skip(in, in->in.data + in->pos, end, &why);
			if (why != NULL) {
				advance(in, q);
				json_dead(in, in->line, why);
				continue;
			}
			if (q == NULL) {
				advance(in, end);
				if (eof)
					json_dead(in, in->line,
					    "unterminated array");
				return 0;
			}
			advance(in, q);
			in->js = J_SEP;
			continue;
		}
		p.s = in->in.data + in->pos;
		p.end = end;
		p.str = &in->str;
		p.why = NULL;
		p.incomplete = 0;
		jws(&p);
		advance(in, p.s);
		if (in->js == J_DEAD) {
			in->pos = in->in.len;
			return 0;
		}
		if (p.s == end) {
			if (eof && in->js != J_DONE)
				json_dead(in, in->line, in->js == J_START ?
				    "empty input, want a JSON array" :
				    "unterminated array");
			return 0;
		}
		switch (in->js) {
		case J_START:
			if (*p.s != '[') {
				json_dead(in, in->line, "want a JSON array "
				    "(for one object a line, use jsonl)");
				continue;
			}
			advance(in, p.s + 1);
			in->js = J_FIRST;
			continue;
		case J_FIRST:
		case J_SEP:
			if (*p.s == ']') {
				advance(in, p.s + 1);
				in->js = J_DONE;
				continue;
			}
			if (in->js == J_SEP) {
				if (*p.s != ',') {
					json_dead(in, in->line,
					    "want ',' or ']'");
					continue;
				}
				advance(in, p.s + 1);
				in->js = J_VALUE;
				continue;
			}
			in->js = J_VALUE;
			continue;
		case J_VALUE:
			if (*p.s == ']') {
				json_dead(in, in->line, "trailing comma");
				continue;
			}
			line = in->line;
			/*
			 * Past the limit an element is dropped as it comes:
			 * the parse looks no further, whole input or not.
			 */
			if ((size_t)(end - p.s) > PW_INGEST_MAX_RECORD + 1)
				p.end = p.s + PW_INGEST_MAX_RECORD + 1;
			r = jrecord(in, &p, line);
			if (r < 0 && p.incomplete && p.end < end) {
				reject(in, line, "element too long");
				in->js = J_SKIP;
				in->jdepth = in->jstr = in->jesc = 0;
				in->jopen = 0;
				continue;
			}
			if (r < 0 && p.incomplete && !eof)
				return 0;
			if (r < 0) {
				json_dead(in, line, p.why);
				continue;
			}
			if (p.s - (in->in.data + in->pos) >
			    PW_INGEST_MAX_RECORD) {
				advance(in, p.s);
				in->js = J_SEP;
				reject(in, line, "element too long");
				continue;
			}
			advance(in, p.s);
			in->js = J_SEP;
			if (r > 0) {
				reject(in, line, "%s", p.why);
				continue;
			}
			if ((r = emit(in, &in->raw)) != 0)
				return r;
			continue;
		case J_DONE:
			json_dead(in, in->line, "junk after the array");
			continue;
		case J_SKIP:	/* handled before the switch */
		case J_DEAD:
			return 0;
		}
	}
}

/* ------------------------------------------------------------ driving */

/* Consume complete lines (records, for csv) from in->in. */
static int
lines_run(struct pw_ingest *in, int eof)
{
	const char	*s, *e, *nl;
	enum csvq	 q;
	long		 extra;
	int		 r;

	for (;;) {
		if (in->js == J_DEAD) {
			in->pos = in->in.len;
			return 0;
		}
		s = in->in.data + in->pos;
		e = in->in.data + in->in.len;
		if (s == e)
			return 0;
		if (in->skipping) {
			/* Dropped as it comes: a CSV record to its real end. */
			extra = 0;
			if (in->format == PW_FMT_CSV)
				nl = csv_end(s, e, &in->skip_q, &extra);
			else
				nl = memchr(s, '\n', e - s);
			if (nl == NULL) {
				in->line += extra;
				in->pos = in->in.len;
				return 0;
			}
			in->skipping = 0;
			in->line += 1 + extra;
			in->pos = nl + 1 - in->in.data;
			continue;
		}
		extra = 0;
		q = CSVQ_FIELD;
		if (in->format == PW_FMT_CSV)
			nl = csv_end(s, e, &q, &extra);
		else
			nl = memchr(s, '\n', e - s);
		if (nl == NULL && !eof) {
			if ((size_t)(e - s) > PW_INGEST_MAX_RECORD) {
				reject(in, in->line, "line too long (over %d "
				    "bytes)", PW_INGEST_MAX_RECORD);
				in->skipping = 1;
				in->skip_q = q;
				in->line += extra;
				in->pos = in->in.len;
			}
			return 0;
		}
		if (nl == NULL) {
			nl = e;
			extra = count_nl(s, e);
		}
		if ((size_t)(nl - s) > PW_INGEST_MAX_RECORD) {
			reject(in, in->line, "line too long (over %d bytes)",
			    PW_INGEST_MAX_RECORD);
			r = 0;
		} else if (in->format == PW_FMT_CSV)
			r = csv_record(in, s, nl, in->line);
		else
			r = one_line(in, s, nl, in->line);
		in->line += 1 + extra;
		in->pos = (nl < e ? nl + 1 : nl) - in->in.data;
		if (r != 0)
			return r;
	}
}

static int
run(struct pw_ingest *in, int eof)
{
	int	r;

	if (in->stop)
		return 0;
	if (in->format == PW_FMT_JSON)
		r = json_run(in, eof);
	else
		r = lines_run(in, eof);
	/* Drop what was consumed, keep the rest for the next chunk. */
	if (in->pos > 0) {
		memmove(in->in.data, in->in.data + in->pos,
		    in->in.len - in->pos);
		in->in.len -= in->pos;
		in->in.data[in->in.len] = '\0';
		in->pos = 0;
	}
	if (r != 0)
		in->stop = 1;
	return r;
}

/*
 * The format of the input, sniffed once enough of it is in: the line
 * that tells is whole, or SNIFF_MAX bytes are. -1: not yet.
 */
static int
sniff_input(const struct pw_ingest *in, int final)
{
	const unsigned char	*s;
	size_t			 n = in->in.len - in->pos;

	s = (const unsigned char *)in->in.data + in->pos;
	if (n >= SNIFF_MAX)
		return sniff(s, s + SNIFF_MAX, 1);
	return sniff(s, s + n, final);
}

int
pw_ingest_feed(struct pw_ingest *in, const void *p, size_t n)
{
	int	f;

	if (in->stop || n == 0)
		return 0;
	pw_buf_add(&in->in, p, n);
	if (!in->started) {
		/* Hold the first bytes until a BOM can be told apart. */
		if (in->in.len < 3)
			return 0;
		in->started = 1;
		if ((unsigned char)in->in.data[0] == 0xef &&
		    (unsigned char)in->in.data[1] == 0xbb &&
		    (unsigned char)in->in.data[2] == 0xbf)
			in->pos = 3;
	}
	if (in->format == PW_FMT_AUTO) {
		if ((f = sniff_input(in, 0)) < 0)
			return 0;
		in->format = f;
	}
	return run(in, 0);
}

int
pw_ingest_end(struct pw_ingest *in)
{
	if (in->stop)
		return 0;
	if (!in->started)
		in->started = 1;
	if (in->format == PW_FMT_AUTO)
		in->format = sniff_input(in, 1);
	if (in->in.len == 0 && in->format != PW_FMT_JSON)
		return 0;
	return run(in, 1);
}

/* ------------------------------------------------------------- writing */

static void
json_str(struct pw_buf *b, const char *s)
{
	pw_buf_json(b, s, strlen(s));
}

static void
csv_str(struct pw_buf *b, const char *s)
{
	if (s == NULL)
		return;
	if (strpbrk(s, ",\"\r\n") == NULL && s[0] != ' ' && s[0] != '\t' &&
	    (s[0] == '\0' || (s[strlen(s) - 1] != ' ' &&
	    s[strlen(s) - 1] != '\t'))) {
		pw_buf_adds(b, s);
		return;
	}
	pw_buf_addc(b, '"');
	for (; *s; s++) {
		if (*s == '"')
			pw_buf_addc(b, '"');
		pw_buf_addc(b, *s);
	}
	pw_buf_addc(b, '"');
}

static void
iso_time(int64_t t, char out[32])
{
	time_t		tt = (time_t)t;
	struct tm	tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
pw_ingest_write_begin(int format, struct pw_buf *b)
{
	if (format == PW_FMT_JSON)
		pw_buf_addc(b, '[');
	else if (format == PW_FMT_CSV)
		pw_buf_adds(b, "url,country,region,source,weight,expires_at\n");
}

void
pw_ingest_write_end(int format, long n, struct pw_buf *b)
{
	if (format == PW_FMT_JSON)
		pw_buf_adds(b, n > 0 ? "\n]\n" : "]\n");
}

void
pw_ingest_write(int format, const struct pw_export *x, long i,
    struct pw_buf *b)
{
	const struct pw_proxy	*p = x->p;
	char			 w[32], t[32];
	const char		*cols[5];

	w[0] = '\0';
	if (p->weight >= 0)
		pw_fmt_double(w, p->weight);
	t[0] = '\0';
	if (p->expires_at > 0)
		iso_time(p->expires_at, t);
	switch (format) {
	case PW_FMT_TXT:
		pw_buf_adds(b, x->url);
		pw_buf_addc(b, '\n');
		return;
	case PW_FMT_CSV:
		csv_str(b, x->url);
		cols[0] = p->country;
		cols[1] = p->region;
		cols[2] = p->source;
		cols[3] = w;
		cols[4] = t;
		for (int k = 0; k < 5; k++) {
			pw_buf_addc(b, ',');
			csv_str(b, cols[k]);
		}
		pw_buf_addc(b, '\n');
		return;
	case PW_FMT_JSON:
		pw_buf_adds(b, i > 0 ? ",\n" : "\n");
		break;
	default:
		break;
	}
	pw_buf_adds(b, "{\"url\":");
	json_str(b, x->url);
#define OPT_STR(name, v) do {						\
	if ((v) != NULL) {						\
		pw_buf_adds(b, ",\"" name "\":");			\
		json_str(b, (v));					\
	}								\
} while (0)
	OPT_STR("country", p->country);
	OPT_STR("region", p->region);
	OPT_STR("source", p->source);
#undef OPT_STR
	if (w[0] != '\0') {
		pw_buf_adds(b, ",\"weight\":");
		pw_buf_adds(b, w);
	}
	if (t[0] != '\0') {
		pw_buf_adds(b, ",\"expires_at\":\"");
		pw_buf_adds(b, t);
		pw_buf_addc(b, '"');
	}
	pw_buf_addc(b, '}');
	if (format == PW_FMT_JSONL)
		pw_buf_addc(b, '\n');
}
