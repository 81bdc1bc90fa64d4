/*
 * fetch.c -- "pw fetch": a URL through the pool, with curl's options
 * where they mean the same.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

/* How long a fetch may spend sending queued outcomes. */
#define FLUSH_BUDGET_MS	250

/* The largest body --json holds in memory. */
#define JSON_BODY_MAX	((size_t)256 << 20)

struct sink {
	FILE		*out;		/* NULL: path, not opened yet */
	const char	*path;		/* -o */
	int		 open_errno;	/* why path could not be opened */
	int		 include;	/* -i: headers too */
	int		 json;
	struct pw_buf	 headers;	/* for --json */
	struct pw_buf	 body;		/* for --json */
	int		 too_big;
	int		 fail;		/* -f: no body for HTTP >= 400 */
	int		 drop;		/* this body is not written */
};

/*
 * The status of the last response in a header block (redirects and 100
 * Continue come before it): its last line starting "HTTP/".
 */
static long
last_status(const char *p, size_t n)
{
	long	status = 0;

	for (size_t i = 0; i + 5 < n; i++) {
		const char *sp;

		if ((i > 0 && p[i - 1] != '\n') || memcmp(p + i, "HTTP/", 5))
			continue;
		sp = memchr(p + i, ' ', n - i);
		if (sp != NULL && sp + 4 <= p + n && sp[1] >= '1' &&
		    sp[1] <= '9')
			status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 +
			    (sp[3] - '0');
	}
	return status;
}

/* How many of s's first characters are an HTTP token's (RFC 9110). */
static size_t
token_len(const char *s)
{
	size_t	n = 0;

	while (s[n] != '\0' && ((s[n] >= 'a' && s[n] <= 'z') ||
	    (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
	    strchr("!#$%&'*+-.^_`|~", s[n]) != NULL))
		n++;
	return n;
}

/* Whether s has a control character a header value may not (tab may). */
static int
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return 1;
	return 0;
}

/* s with its control characters written out (\r, \n, \xHH): one line. */
static char *
one_line(const char *s)
{
	struct pw_buf	b;

	pw_buf_init(&b);
	for (; *s != '\0'; s++) {
		if (*s == '\r')
			pw_buf_adds(&b, "\\r");
		else if (*s == '\n')
			pw_buf_adds(&b, "\\n");
		else if ((unsigned char)*s < 0x20 || *s == 0x7f)
			pw_buf_addf(&b, "\\x%02x", (unsigned char)*s);
		else
			pw_buf_addc(&b, *s);
	}
	return pw_buf_detach(&b);
}

/* A usage error quoting value on one line: "[opt: ]'value': want". */
static int
refuse(struct pw_cmdctx *cc, const char *opt, const char *value,
    const char *want)
{
	char	*shown = one_line(value);
	int	 r;

	r = opt != NULL ? cmd_usagef(cc, "%s: '%s': %s", opt, shown, want) :
	    cmd_usagef(cc, "'%s': %s", shown, want);
	free(shown);
	return r;
}

/*
 * A line for -H, as curl takes it: "Name: value", "Name:" (libcurl sends
 * no such header) or "Name;" (sent empty). One line is one header.
 */
static int
header_line_ok(const char *s)
{
	size_t	n = token_len(s);

	if (n == 0 || has_ctl(s))
		return 0;
	return s[n] == ':' || (s[n] == ';' && s[n + 1] == '\0');
}

static char	outbuf[128 << 10];

/*
 * 0 when path can be written (it is, or its directory is), else why: told
 * before any proxy is picked, though the file is made only at the first
 * byte.
 */
static int
out_writable(const char *path)
{
	char	*dir;
	int	 e = 0;

	if (access(path, F_OK) == 0)
		return access(path, W_OK) == 0 ? 0 : errno;
	if (errno != ENOENT)
		return errno;
	dir = pw_dirname(path);
	if (access(dir, W_OK) != 0)
		e = errno;
	free(dir);
	return e;
}

/*
 * Where the output goes, opened at its first byte, as curl does: a fetch
 * that fails before it leaves an existing -o file as it was.
 */
static FILE *
sink_out(struct sink *s)
{
	if (s->out != NULL)
		return s->out;
	if ((s->out = fopen(s->path, "wb")) == NULL) {
		s->open_errno = errno;
		return NULL;
	}
	/*
	 * Small pieces of a body gather in a large buffer, not stdio's 4
	 * KiB one, for fewer system calls (a terminal stays as is; see
	 * put). glibc ignores the size unless given the buffer; this one
	 * lives until exit, as stdout may.
	 */
	if (!isatty(fileno(s->out)))
		setvbuf(s->out, outbuf, _IOFBF, sizeof outbuf);
	return s->out;
}

static int
sink_header(void *arg, const char *p, size_t n)
{
	struct sink	*s = arg;
	FILE		*f;

	if (s->json) {
		pw_buf_add(&s->headers, p, n);
		return 0;
	}
	/* As curl -f: an error's headers with -i, never its body. */
	s->drop = s->fail && last_status(p, n) >= 400;
	if (s->include && ((f = sink_out(s)) == NULL ||
	    fwrite(p, 1, n, f) != n))
		return -1;
	return 0;
}

/*
 * Write a piece of the body. libcurl hands a read of up to 512 KiB over in
 * pieces of up to 16 KiB: a full one goes straight to the descriptor,
 * after what stdio holds, so it is not copied through the buffer first;
 * small ones gather there until sink_flush, before libcurl waits again.
 */
#define DIRECT_MIN	(16 << 10)
static int
put(FILE *f, const void *p, size_t n)
{
	const char	*c = p;
	ssize_t		 w;

	if (n < DIRECT_MIN)
		return fwrite(p, 1, n, f) == n ? 0 : -1;
	if (fflush(f) != 0)
		return -1;
	while (n > 0) {
		if ((w = write(fileno(f), c, n)) < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= w;
	}
	return 0;
}

static int
sink_body(void *arg, const void *p, size_t n)
{
	struct sink	*s = arg;

	if (s->json) {
		if (s->body.len + n > JSON_BODY_MAX) {
			s->too_big = 1;
			return -1;
		}
		pw_buf_add(&s->body, p, n);
		return 0;
	}
	if (s->drop)
		return 0;
	if (sink_out(s) == NULL)
		return -1;
	return put(s->out, p, n);
}

static int
sink_flush(void *arg)
{
	struct sink	*s = arg;

	return s->json || s->out == NULL ? 0 : fflush(s->out);
}

/* Read FILE, or stdin for "-", whole; for -d @FILE and --data-binary. */
static int
slurp(struct pw_cmdctx *cc, const char *name, int strip_newlines,
    struct pw_buf *b)
{
	FILE	*f = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
	char	 chunk[65536];
	size_t	 n;

	if (f == NULL)
		return pw_failf(&cc->ctx->err, PW_EUSAGE, "%s: %s: %s",
		    cc->path, name, strerror(errno));
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (!strip_newlines) {
			pw_buf_add(b, chunk, n);
			continue;
		}
		for (size_t i = 0; i < n; i++)
			if (chunk[i] != '\n' && chunk[i] != '\r')
				pw_buf_addc(b, chunk[i]);
	}
	n = ferror(f);
	if (f != stdin)
		fclose(f);
	if (n)
		return pw_failf(&cc->ctx->err, PW_EFAIL, "%s: %s: read error",
		    cc->path, name);
	return 0;
}

/*
 * -d (@FILE without its newlines) and --data-binary (@FILE as it is), each
 * repeatable: as curl, every piece in command-line order, joined by '&'.
 */
static int
body_opts(struct pw_cmdctx *cc, struct pw_buf *b, int *has)
{
	char	**d, **bin;
	int	  nd = 0, nbin = 0, id = 0, ibin = 0, r;

	d = arg_all(cc->args, "data", &nd);
	bin = arg_all(cc->args, "data-binary", &nbin);
	*has = nd + nbin > 0;
	while (id + ibin < nd + nbin) {
		int	    text = ibin == nbin || (id < nd &&
			    arg_pos(cc->args, "data", id) <
			    arg_pos(cc->args, "data-binary", ibin));
		const char *v = text ? d[id++] : bin[ibin++];

		if (id + ibin > 1)
			pw_buf_addc(b, '&');
		if (v[0] == '@') {
			if ((r = slurp(cc, v + 1, text, b)) != 0)
				return r;
		} else
			pw_buf_adds(b, v);
	}
	return 0;
}

/* "429,503" into statuses. */
static int
retry_on_opt(struct pw_cmdctx *cc, long **out, size_t *n)
{
	const char	*v = arg_get(cc->args, "retry-on"), *p;
	char		*end;
	long		*l = NULL, x;

	*out = NULL;
	*n = 0;
	if (v == NULL)
		return 0;
	/* Every comma is followed by a status: "503," is refused. */
	for (p = v;; p = end + 1) {
		errno = 0;
		x = strtol(p, &end, 10);
		if (end == p || errno != 0 || x < 100 || x > 599 ||
		    (*end != ',' && *end != '\0')) {
			free(l);
			*n = 0;
			return cmd_usagef(cc, "--retry-on: '%s': want HTTP "
			    "statuses like 429,503", v);
		}
		l = pw_xrealloc(l, (*n + 1) * sizeof *l);
		l[(*n)++] = x;
		if (*end == '\0')
			break;
	}
	*out = l;
	return 0;
}

/* Seconds, possibly fractional, as curl takes them. */
static int
seconds_opt(struct pw_cmdctx *cc, const char *lname, int64_t *ms)
{
	const char	*v = arg_get(cc->args, lname);
	double		 s;

	if (v == NULL)
		return 0;
	if (pw_parse_double(v, 0.001, 86400 * 7, &s) != 0)
		return cmd_usagef(cc, "--%s: '%s': want seconds above 0", lname,
		    v);
	*ms = (int64_t)(s * 1000 + 0.5);
	return 0;
}

static const char *const kinds[] = { "none", "proxy", "target" };

/*
 * The -w variables, in curl's order (by name, as %{json} lists them).
 * Each is curl's of the same name, of the last attempt; proxy, proxy_id
 * and attempts are pw's own.
 */
enum wkind {
	W_NUM,		/* a number */
	W_CODE,		/* an HTTP status, three digits as curl */
	W_TIME,		/* seconds, to the microsecond */
	W_STR,		/* text */
	W_STREAM,	/* %{stdout}, %{stderr}: where the rest goes */
	W_JSON		/* %{json}: all the others */
};

enum wid {
	WV_ATTEMPTS,
	WV_CONTENT_TYPE,
	WV_ERRORMSG,
	WV_EXITCODE,
	WV_HTTP_CODE,
	WV_HTTP_VERSION,
	WV_JSON,
	WV_LOCAL_IP,
	WV_LOCAL_PORT,
	WV_METHOD,
	WV_NUM_CONNECTS,
	WV_NUM_REDIRECTS,
	WV_PROXY,
	WV_PROXY_ID,
	WV_REMOTE_IP,
	WV_REMOTE_PORT,
	WV_RESPONSE_CODE,
	WV_SCHEME,
	WV_SIZE_DOWNLOAD,
	WV_SIZE_HEADER,
	WV_SIZE_REQUEST,
	WV_SIZE_UPLOAD,
	WV_SPEED_DOWNLOAD,
	WV_SPEED_UPLOAD,
	WV_STDERR,
	WV_STDOUT,
	WV_TIME_APPCONNECT,
	WV_TIME_CONNECT,
	WV_TIME_NAMELOOKUP,
	WV_TIME_PRETRANSFER,
	WV_TIME_REDIRECT,
	WV_TIME_STARTTRANSFER,
	WV_TIME_TOTAL,
	WV_URL_EFFECTIVE,
};

static const struct wvar {
	const char	*name;
	int		 kind;
	int		 id;	/* enum wid */
} wvars[] = {
	{ "attempts", W_NUM, WV_ATTEMPTS },
	{ "content_type", W_STR, WV_CONTENT_TYPE },
	{ "errormsg", W_STR, WV_ERRORMSG },
	{ "exitcode", W_NUM, WV_EXITCODE },
	{ "http_code", W_CODE, WV_HTTP_CODE },
	{ "http_version", W_STR, WV_HTTP_VERSION },
	{ "json", W_JSON, WV_JSON },
	{ "local_ip", W_STR, WV_LOCAL_IP },
	{ "local_port", W_NUM, WV_LOCAL_PORT },
	{ "method", W_STR, WV_METHOD },
	{ "num_connects", W_NUM, WV_NUM_CONNECTS },
	{ "num_redirects", W_NUM, WV_NUM_REDIRECTS },
	{ "proxy", W_STR, WV_PROXY },
	{ "proxy_id", W_NUM, WV_PROXY_ID },
	{ "remote_ip", W_STR, WV_REMOTE_IP },
	{ "remote_port", W_NUM, WV_REMOTE_PORT },
	{ "response_code", W_CODE, WV_RESPONSE_CODE },
	{ "scheme", W_STR, WV_SCHEME },
	{ "size_download", W_NUM, WV_SIZE_DOWNLOAD },
	{ "size_header", W_NUM, WV_SIZE_HEADER },
	{ "size_request", W_NUM, WV_SIZE_REQUEST },
	{ "size_upload", W_NUM, WV_SIZE_UPLOAD },
	{ "speed_download", W_NUM, WV_SPEED_DOWNLOAD },
	{ "speed_upload", W_NUM, WV_SPEED_UPLOAD },
	{ "stderr", W_STREAM, WV_STDERR },
	{ "stdout", W_STREAM, WV_STDOUT },
	{ "time_appconnect", W_TIME, WV_TIME_APPCONNECT },
	{ "time_connect", W_TIME, WV_TIME_CONNECT },
	{ "time_namelookup", W_TIME, WV_TIME_NAMELOOKUP },
	{ "time_pretransfer", W_TIME, WV_TIME_PRETRANSFER },
	{ "time_redirect", W_TIME, WV_TIME_REDIRECT },
	{ "time_starttransfer", W_TIME, WV_TIME_STARTTRANSFER },
	{ "time_total", W_TIME, WV_TIME_TOTAL },
	{ "url_effective", W_STR, WV_URL_EFFECTIVE },
	{ NULL, 0, 0 }
};

/* What the -w variables are made of. */
struct wctx {
	const struct pw_fetch_result	*res;
	int				 exitcode;
	const char			*errormsg;	/* NULL: none */
};

/* Variable "name" (n bytes, any case, as curl), or -1. */
static int
wvar_find(const char *name, size_t n)
{
	for (int v = 0; wvars[v].name != NULL; v++)
		if (strlen(wvars[v].name) == n &&
		    strncasecmp(wvars[v].name, name, n) == 0)
			return v;
	return -1;
}

/*
 * Append the value of variable v to b as -w writes it (for %{json}: a
 * status without its leading zeros); 0 when it has none (JSON's null).
 */
static int
wvar_value(int v, const struct wctx *w, struct pw_buf *b, int json)
{
	const struct pw_fetch_result	*res = w->res;
	const char			*str = NULL;
	long long			 num = 0;

	switch (wvars[v].id) {
	case WV_ATTEMPTS:
		num = (long long)res->nattempts;
		break;
	case WV_CONTENT_TYPE:
		str = res->content_type;
		break;
	case WV_ERRORMSG:
		str = w->errormsg;
		break;
	case WV_EXITCODE:
		num = w->exitcode;
		break;
	case WV_HTTP_CODE:
	case WV_RESPONSE_CODE:
		num = res->status;
		break;
	case WV_HTTP_VERSION:
		str = res->http_version != NULL ? res->http_version : "0";
		break;
	case WV_LOCAL_IP:
		str = res->local_ip;
		break;
	case WV_LOCAL_PORT:
		num = res->local_port;
		break;
	case WV_METHOD:
		str = res->method;
		break;
	case WV_NUM_CONNECTS:
		num = res->num_connects;
		break;
	case WV_NUM_REDIRECTS:
		num = res->num_redirects;
		break;
	case WV_PROXY:
		str = res->proxy;
		break;
	case WV_PROXY_ID:
		num = (long long)res->proxy_id;
		break;
	case WV_REMOTE_IP:
		str = res->remote_ip;
		break;
	case WV_REMOTE_PORT:
		num = res->remote_port;
		break;
	case WV_SCHEME:
		str = res->scheme;
		break;
	case WV_SIZE_DOWNLOAD:
		num = (long long)res->size_download;
		break;
	case WV_SIZE_HEADER:
		num = res->size_header;
		break;
	case WV_SIZE_REQUEST:
		num = res->size_request;
		break;
	case WV_SIZE_UPLOAD:
		num = (long long)res->size_upload;
		break;
	case WV_SPEED_DOWNLOAD:
		num = (long long)res->speed_download;
		break;
	case WV_SPEED_UPLOAD:
		num = (long long)res->speed_upload;
		break;
	case WV_TIME_APPCONNECT:
		num = (long long)res->time_appconnect;
		break;
	case WV_TIME_CONNECT:
		num = (long long)res->time_connect;
		break;
	case WV_TIME_NAMELOOKUP:
		num = (long long)res->time_namelookup;
		break;
	case WV_TIME_PRETRANSFER:
		num = (long long)res->time_pretransfer;
		break;
	case WV_TIME_REDIRECT:
		num = (long long)res->time_redirect;
		break;
	case WV_TIME_STARTTRANSFER:
		num = (long long)res->time_starttransfer;
		break;
	case WV_TIME_TOTAL:
		num = (long long)res->time_total;
		break;
	case WV_URL_EFFECTIVE:
		str = res->url_effective;
		break;
	default:	/* not a value: json, stdout, stderr */
		break;
	}
	switch (wvars[v].kind) {
	case W_STR:
		if (str == NULL)
			return 0;
		pw_buf_adds(b, str);
		break;
	case W_CODE:
		pw_buf_addf(b, json ? "%lld" : "%03lld", num);
		break;
	case W_TIME:
		pw_buf_addf(b, "%lld.%06lld", num / 1000000, num % 1000000);
		break;
	default:
		pw_buf_addf(b, "%lld", num);
		break;
	}
	return 1;
}

/* %{json}: every variable, as curl's, in one object. */
static void
wvars_json(const struct wctx *w, struct pw_buf *b)
{
	struct pw_buf	val;
	int		first = 1;

	pw_buf_init(&val);
	pw_buf_addc(b, '{');
	for (int v = 0; wvars[v].name != NULL; v++) {
		if (wvars[v].kind == W_STREAM || wvars[v].kind == W_JSON)
			continue;
		pw_buf_reset(&val);
		out_json_member(b, first, wvars[v].name,
		    wvar_value(v, w, &val, 1) ? val.data : NULL,
		    wvars[v].kind == W_STR);
		first = 0;
	}
	pw_buf_addc(b, '}');
	pw_buf_release(&val);
}

/* Write out what b holds to f, and empty it. */
static void
wflush(struct pw_buf *b, FILE *f)
{
	fwrite(b->data, 1, b->len, f);
	fflush(f);
	pw_buf_reset(b);
}

/*
 * %{errormsg} of a fetch that failed with r: the last attempt's error
 * when it failed the fetch, else what pw says on stderr (without "pw:
 * fetch: ").
 */
static const char *
error_message(struct pw_cmdctx *cc, int r, const struct pw_fetch_result *res)
{
	const char	*m = cc->ctx->err.msg;
	size_t		 n = strlen(cc->path);

	if ((r == PW_ETARGET || r == PW_EALLFAILED) && res->nattempts > 0 &&
	    res->attempts[res->nattempts - 1].error != NULL)
		return res->attempts[res->nattempts - 1].error;
	if (!strncmp(m, cc->path, n) && !strncmp(m + n, ": ", 2))
		m += n + 2;
	return m;
}

/* -w FORMAT; with w NULL, only check it: an unknown variable is refused. */
static int
write_out(struct pw_cmdctx *cc, const char *fmt, const struct wctx *w)
{
	struct pw_buf	 b;
	const char	*p, *e;
	FILE		*f = stdout;

	pw_buf_init(&b);
	for (p = fmt; *p != '\0'; p++) {
		/* As curl: \n, \r and \t; any other stays as written. */
		if (*p == '\\' && p[1] != '\0') {
			p++;
			if (*p == 'n' || *p == 't' || *p == 'r')
				pw_buf_addc(&b, *p == 'n' ? '\n' : *p == 't' ?
				    '\t' : '\r');
			else {
				pw_buf_addc(&b, '\\');
				pw_buf_addc(&b, *p);
			}
			continue;
		}
		if (*p != '%') {
			pw_buf_addc(&b, *p);
			continue;
		}
		if (p[1] == '%') {
			pw_buf_addc(&b, '%');
			p++;
			continue;
		}
		/* A response header's value, as curl 7.84 and later. */
		if (!strncmp(p + 1, "header{", 7) &&
		    (e = strchr(p + 8, '}')) != NULL) {
			char *name = pw_xstrndup(p + 8, e - p - 8), *val;

			p = e;
			if (w != NULL && w->res->headers != NULL &&
			    (val = pw_header_first(w->res->headers,
			    w->res->headers_len, name)) != NULL) {
				pw_buf_adds(&b, val);
				free(val);
			}
			free(name);
			continue;
		}
		if (p[1] != '{' || (e = strchr(p, '}')) == NULL) {
			pw_buf_addc(&b, '%');
			continue;
		}
		size_t	n = e - p - 2;
		int	v = wvar_find(p + 2, n);

		if (v < 0) {
			pw_buf_release(&b);
			return cmd_usagef(cc, "-w: unknown variable "
			    "'%%{%.*s}'", (int)n, p + 2);
		}
		p = e;
		if (w == NULL)
			continue;
		if (wvars[v].kind == W_STREAM) {
			wflush(&b, f);
			f = wvars[v].id == WV_STDERR ? stderr : stdout;
		} else if (wvars[v].kind == W_JSON)
			wvars_json(w, &b);
		else
			(void)wvar_value(v, w, &b, 0);
	}
	if (w != NULL)
		fwrite(b.data, 1, b.len, f);
	pw_buf_release(&b);
	return 0;
}

static int
fetch_exec(struct pw_cmdctx *cc)
{
	struct pw_fetch_opts	 o;
	struct pw_fetch_result	 res;
	struct sink		 s;
	struct pw_buf		 body;
	const char		*v, *wfmt = arg_get(cc->args, "write-out");
	const char		*outfile = arg_get(cc->args, "output");
	char			 ccode[3], **hdrs;
	long			*retry_on = NULL;
	int64_t			 n;
	int			 r, nh = 0, exitcode, ctl;

	memset(&o, 0, sizeof o);
	memset(&s, 0, sizeof s);
	pw_buf_init(&body);
	pw_buf_init(&s.headers);
	pw_buf_init(&s.body);
	o.url = cc->args->argv[0];
	ctl = has_ctl(o.url) || strchr(o.url, '\t') != NULL;
	if (ctl || (strncasecmp(o.url, "http://", 7) != 0 &&
	    strncasecmp(o.url, "https://", 8) != 0)) {
		/* A password in the URL is not repeated on stderr. */
		char *redacted = pw_redact_url(o.url);
		r = refuse(cc, NULL, redacted, ctl ? "want a URL without "
		    "control characters" : "want an http:// or https:// URL");
		free(redacted);
		return r;
	}
	if (wfmt != NULL && (r = write_out(cc, wfmt, NULL)) != 0)
		return r;
	o.method = arg_get(cc->args, "request");
	if (o.method != NULL && (*o.method == '\0' ||
	    o.method[token_len(o.method)] != '\0'))
		return refuse(cc, "--request", o.method, "want a method, a "
		    "token of letters, digits and !#$%&'*+-.^_`|~");
	hdrs = arg_all(cc->args, "header", &nh);
	for (int i = 0; i < nh; i++)
		if (!header_line_ok(hdrs[i]))
			return refuse(cc, "--header", hdrs[i], "want 'Name: "
			    "value', 'Name:' or 'Name;' on one line");
	o.headers = (const char *const *)hdrs;
	o.nheaders = nh;
	o.head = arg_has(cc->args, "head");
	o.follow = arg_has(cc->args, "location");
	o.max_redirs = 50;
	if ((r = cmd_int_opt(cc, "max-redirs", 0, 1000, &n)) != 0)
		return r;
	if (arg_has(cc->args, "max-redirs"))
		o.max_redirs = (long)n;
	o.timeout_ms = pw_config_int(cc->ctx, "fetch.timeout") * 1000;
	o.connect_timeout_ms = pw_config_int(cc->ctx,
	    "fetch.connect_timeout") * 1000;
	if ((r = seconds_opt(cc, "max-time", &o.timeout_ms)) != 0 ||
	    (r = seconds_opt(cc, "connect-timeout",
	    &o.connect_timeout_ms)) != 0)
		return r;
	o.insecure = arg_has(cc->args, "insecure");
	o.cacert = arg_get(cc->args, "cacert");
	o.user_agent = arg_get(cc->args, "user-agent");
	if (o.user_agent != NULL && has_ctl(o.user_agent))
		return refuse(cc, "--user-agent", o.user_agent,
		    "want one line");
	o.compressed = arg_has(cc->args, "compressed");
	if ((r = cmd_int_opt(cc, "retries", 1, 100, &n)) != 0)
		return r;
	if (arg_has(cc->args, "retries"))
		o.retries = (int)n;
	o.proxy = arg_get(cc->args, "proxy");
	o.no_wait = arg_has(cc->args, "no-wait");
	o.show_secrets = cc->show_secrets;
	o.figures = 1;
	pw_filter_init(&o.pick.filter);
	if ((v = arg_get(cc->args, "country")) != NULL) {
		if (pw_country_check(v, ccode, &cc->ctx->err) != 0)
			return pw_err_prefix(&cc->ctx->err, "%s: --country",
			    cc->path);
		o.pick.filter.country = ccode;
	}
	o.pick.filter.region = arg_get(cc->args, "region");
	o.pick.strategy = arg_get(cc->args, "strategy");
	o.pick.session = arg_get(cc->args, "session");
	if ((r = retry_on_opt(cc, &retry_on, &o.nretry_on)) != 0)
		return r;
	o.retry_on = retry_on;
	if ((r = body_opts(cc, &body, &o.has_body)) != 0)
		goto done;
	if (o.head && o.has_body) {
		/* As curl: -I asks for HEAD, -d for POST; one or the other. */
		r = cmd_usagef(cc, "--head: a HEAD request sends no body "
		    "(--data, --data-binary)");
		goto done;
	}
	o.body = body.data;
	o.body_len = body.len;

	s.json = arg_has(cc->args, "json");
	s.include = arg_has(cc->args, "include") || o.head;
	s.fail = arg_has(cc->args, "fail");
	if (outfile != NULL && strcmp(outfile, "-") != 0) {
		if ((r = out_writable(outfile)) != 0) {
			r = pw_failf(&cc->ctx->err, PW_EFAIL, "%s: %s: %s",
			    cc->path, outfile, strerror(r));
			goto done;
		}
		s.path = outfile;
	} else {
		s.out = stdout;
		if (!isatty(fileno(stdout)))
			setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	}
	/*
	 * A reader that goes away (pw fetch URL | head) is a write error,
	 * told and recorded like any other, not a silent death.
	 */
	signal(SIGPIPE, SIG_IGN);
	o.on_header = sink_header;
	o.on_body = sink_body;
	o.on_flush = sink_flush;
	o.arg = &s;

	r = pw_fetch(cc->ctx, &o, &res);
	/*
	 * Nothing written: a fetch that succeeded makes the file all the
	 * same (empty, or the JSON below); one that failed leaves it be.
	 */
	if (s.path != NULL && s.out == NULL && s.open_errno == 0 && (s.json ?
	    r == 0 || res.nattempts > 0 : r == 0 && !(s.fail &&
	    res.status >= 400)))
		(void)sink_out(&s);
	if (s.open_errno != 0)
		r = pw_failf(&cc->ctx->err, PW_EFAIL, "%s: %s", outfile,
		    strerror(s.open_errno));
	if (s.too_big)
		r = pw_failf(&cc->ctx->err, PW_EFAIL, "%s: body over %zu MiB: "
		    "too big for --json (use -o)", cc->path,
		    JSON_BODY_MAX >> 20);
	/*
	 * The failed attempts: always when the fetch failed (they are the
	 * reason), with -v when another proxy saved it.
	 */
	if (!cc->quiet && !arg_has(cc->args, "silent") &&
	    (r != 0 || cc->verbose)) {
		for (size_t i = 0; i < res.nattempts; i++) {
			const struct pw_attempt *a = &res.attempts[i];
			if (a->error == NULL)
				continue;
			fprintf(stderr, "pw: %s: attempt %zu via %s: %s "
			    "failed: %s\n", cc->path, i + 1, a->proxy,
			    kinds[a->kind], a->error);
		}
	}
	/* Failed too, when proxies were tried: the attempts say why. */
	if (s.json && !s.too_big && s.out != NULL)
		out_fetch_json(s.out, &res, s.headers.data, s.headers.len,
		    s.body.data, s.body.len);
	if (s.out != NULL && s.out != stdout && fclose(s.out) != 0 &&
	    r == 0)
		r = pw_failf(&cc->ctx->err, PW_EFAIL, "%s: %s", outfile,
		    strerror(errno));
	exitcode = cmd_exit_status(r);
	if (r == 0 && arg_has(cc->args, "fail") && res.status >= 400) {
		exitcode = 22;
		char *shown = pw_redact_url(o.url);

		r = pw_failf(&cc->ctx->err, PW_EFAIL, "%s: HTTP %ld", shown,
		    res.status);
		free(shown);
	}
	/* As curl: the limit of -L --max-redirs is its own exit status. */
	if (r == PW_ETARGET && res.redirs_exceeded)
		exitcode = 47;
	if (wfmt != NULL) {
		struct wctx w = { &res, exitcode, NULL };

		if (r != 0)
			w.errormsg = error_message(cc, r, &res);
		write_out(cc, wfmt, &w);
	}
	fflush(stdout);
	/*
	 * The outcomes just queued for the service go now if it answers at
	 * once; if not, they wait for the next fetch, pw pool flush or pw
	 * serve. The output is all out already.
	 */
	if (res.delegated) {
		struct pw_flush_result	fr;
		struct pw_err		keep = cc->ctx->err;

		if (pw_service_flush(cc->ctx, FLUSH_BUDGET_MS, &fr) != 0)
			pw_log(PW_LOG_DEBUG, "%s", cc->ctx->err.msg);
		cc->ctx->err = keep;
	}
	pw_fetch_result_release(&res);
	if (r != 0)
		pw_err_prefix(&cc->ctx->err, "%s", cc->path);
	if (exitcode == 22 || exitcode == 47) {
		fprintf(stderr, "pw: %s\n", cc->ctx->err.msg);
		r = exitcode;
	}
done:
	free(retry_on);
	pw_buf_release(&body);
	pw_buf_release(&s.headers);
	pw_buf_release(&s.body);
	return r;
}


static const struct pw_opt fetch_optv[] = {
	{ "request", 'X', "METHOD", 0, "request method (default GET, or "
	  "POST with data)" },
	{ "header", 'H', "LINE", OPT_REPEAT, "extra header 'Name: value' "
	  "(repeatable)" },
	{ "data", 'd', "DATA", OPT_REPEAT, "POST this (@FILE: a file, "
	  "without newlines; repeatable, joined by &)" },
	{ "data-binary", 0, "DATA", OPT_REPEAT, "POST this as is (@FILE, "
	  "@- for stdin)" },
	{ "output", 'o', "FILE", 0, "write the body to FILE" },
	{ "include", 'i', NULL, 0, "show the response headers too" },
	{ "head", 'I', NULL, 0, "HEAD request; show the headers" },
	{ "silent", 's', NULL, 0, "no report of failed attempts" },
	{ "location", 'L', NULL, 0, "follow redirects" },
	{ "max-redirs", 0, "N", 0, "at most N redirects (default 50)" },
	{ "max-time", 'm', "SECONDS", 0, "time limit of each attempt "
	  "(default fetch.timeout)" },
	{ "connect-timeout", 0, "SECONDS", 0, "connect time limit (default "
	  "fetch.connect_timeout)" },
	{ "insecure", 'k', NULL, 0, "do not verify TLS certificates" },
	{ "cacert", 0, "FILE", 0, "CA certificates to verify with" },
	{ "user-agent", 'A', "NAME", 0, "User-Agent header" },
	{ "compressed", 0, NULL, 0, "ask for a compressed response and "
	  "decompress it" },
	{ "write-out", 'w', "FORMAT", 0, "print FORMAT after the transfer, "
	  "with %{http_code} %{proxy} %{attempts} ..." },
	{ "fail", 'f', NULL, 0, "exit 22 on HTTP 400 and above" },
	{ "strategy", 0, "NAME", 0, "how to choose the proxy" },
	{ "session", 0, "ID", 0, "sticky session: the same proxy for this "
	  "id" },
	{ "country", 0, "CC", 0, "only proxies in this country" },
	{ "region", 0, "REGION", 0, "only proxies in this region" },
	{ "retries", 0, "N", 0, "proxies to try (default fetch.retries)" },
	{ "retry-on", 0, "STATUSES", 0, "target statuses that count as a "
	  "proxy failure, like 429,503" },
	{ "proxy", 'x', "URL", 0, "use this proxy, not the pool" },
	{ "no-wait", 0, NULL, 0, "over fetch.rate_per_host: exit 75, do "
	  "not wait" },
	{ "json", 0, NULL, 0, "print an envelope: status, headers, body, "
	  "proxy, attempts" },
	{ NULL, 0, NULL, 0, NULL }
};

const struct pw_cmd cmd_fetch_entry = {
	"fetch", "fetch a URL through the pool, with failover",
	"[options] URL", fetch_optv, 1, 1, CMD_STORE_RW,
	fetch_exec, NULL
};
