/*
 * fuzz_response.c -- libFuzzer target for what pw reads of the answers
 * of others: a target's response headers and Location as POST
 * /api/v1/request hands them on (lib/api.c), a health judge's echo that
 * grades a proxy's anonymity (lib/health.c), and a remote pw serve's
 * answers to delegation (lib/service.c). The gateway's response heads
 * are fuzz_wire's.
 *
 * The first byte picks the parser; the rest is the answer. Checked:
 *   - the headers become a JSON object of valid UTF-8 whose names are
 *     lower-case, the same fed whole or after a redirect's block;
 *   - a redirect goes to an http(s) URL without CR or LF, on the same
 *     origin when Location is a path, and a masked URL shows no password;
 *   - the grade is one of three, NULL exactly when the answer is no
 *     echo, and knowing our address never makes a proxy look better;
 *   - a service's answer is whole at one length and stays whole with
 *     more bytes, its body inside the input, its status in range;
 *   - an offered proxy has an id and a URL that parse back the same, a
 *     refusal says why in one line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../lib/httpd.h"

#define MARK	"Zq9xPASSWORDx"

static void
die(const char *what, const char *in, const char *got)
{
	fprintf(stderr, "fuzz_response: %s\n--- input\n%s\n--- got\n%s\n",
	    what, in, got ? got : "(null)");
	abort();
}

static int
one_line(const char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\r')
			return 0;
	return 1;
}

static void
headers(const char *in, size_t n)
{
	char		*text, *again, *both;
	cJSON		*j, *it;
	struct pw_buf	 b;

	text = pw_api_headers_text(in, n);
	if (text == NULL)
		die("no headers object", in, NULL);
	if (!pw_utf8_text(text, strlen(text)))
		die("headers are not UTF-8", in, text);
	j = cJSON_ParseWithLength(text, strlen(text));
	if (j == NULL || (j->type & 0xff) != cJSON_Object)
		die("headers are not a JSON object", in, text);
	for (it = j->child; it != NULL; it = it->next) {
		for (const char *c = it->string; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				die("a header name not in lower case", in,
				    text);
		if ((it->type & 0xff) != cJSON_String)
			die("a header value not a string", in, text);
	}
	cJSON_Delete(j);
	/* A redirect's block before it changes nothing. */
	pw_buf_init(&b);
	pw_buf_adds(&b, "HTTP/1.1 302 Found\r\nLocation: /x\r\n"
	    "X-Hop: 1\r\n\r\n");
	pw_buf_add(&b, in, n);
	both = pw_api_headers_text(b.data, b.len);
	again = pw_api_headers_text(in, n);
	if (strcmp(again, text) != 0)
		die("headers differ from one call to the next", in, again);
	if (n >= 5 && memcmp(in, "HTTP/", 5) == 0 && strcmp(both, text) != 0)
		die("a redirect's block is in the headers", in, both);
	free(both);
	free(again);
	pw_buf_release(&b);
	free(text);
}

static void
redirect(const char *in, size_t n)
{
	const char	*nul = memchr(in, '\0', n);
	char		*base, *loc, *to, *m;

	if (nul == NULL)
		return;
	base = strncasecmp(in, "http://", 7) == 0 ||
	    strncasecmp(in, "https://", 8) == 0 ? pw_xstrdup(in) :
	    pw_xasprintf("http://%s", in);
	loc = pw_xstrndup(nul + 1, n - (nul + 1 - in));
	if (strpbrk(base, "\r\n") != NULL) {
		free(base);
		free(loc);
		return;
	}
	to = pw_api_url_join(base, loc);
	if (to != NULL) {
		if (strncasecmp(to, "http://", 7) != 0 &&
		    strncasecmp(to, "https://", 8) != 0)
			die("a redirect not to http(s)", loc, to);
		if (strpbrk(to, "\r\n") != NULL)
			die("CR or LF in a redirect", loc, to);
		if (loc[0] == '/' && loc[1] != '/') {
			size_t o = strstr(base, "://") + 3 - base;
			o += strcspn(base + o, "/?#");
			if (strncmp(to, base, o) != 0 || (to[o] != '/' &&
			    to[o] != '\0'))
				die("a path redirect left the origin", base,
				    to);
		}
		free(to);
	}
	/* The masked form of anything with a password shows none. */
	m = pw_redact_url(base);
	if (strstr(base, ":" MARK "@") != NULL &&
	    strstr(strstr(base, MARK) + 1, MARK) == NULL &&
	    strcspn(strstr(base, "://") + 3, "/?#\\") >
	    (size_t)(strstr(base, MARK) - strstr(base, "://") - 3) &&
	    strstr(m, MARK) != NULL)
		die("a password in a masked URL", base, m);
	free(m);
	free(base);
	free(loc);
}

/* transparent < anonymous < elite; -1 for NULL. */
static int
rank(const char *g, const char *in)
{
	if (g == NULL)
		return -1;
	if (strcmp(g, "transparent") == 0)
		return 0;
	if (strcmp(g, "anonymous") == 0)
		return 1;
	if (strcmp(g, "elite") == 0)
		return 2;
	die("a grade out of the three", in, g);
	return -1;
}

static void
grade(const char *in, size_t n)
{
	const char	*blind = pw_health_grade(in, n, NULL);
	const char	*seen = pw_health_grade(in, n, "127.0.0.2");
	cJSON		*j = cJSON_ParseWithLength(in, n), *h;
	int		 echo;

	h = cJSON_GetObjectItemCaseSensitive(j, "headers");
	echo = h != NULL && (h->type & 0xff) == cJSON_Object;
	cJSON_Delete(j);
	if ((blind != NULL) != echo || (seen != NULL) != echo)
		die("graded what is not an echo, or the other way", in, blind);
	if (rank(seen, in) > rank(blind, in))
		die("knowing our address made the proxy look better", in,
		    seen);
}

static void
answer(const char *in, size_t n)
{
	long	st = 0, st2 = 0;
	size_t	off = 0, len = 0, off2, len2;
	int	k, whole = -1;

	/* As post_plain reads: more and more bytes, then the close. */
	for (size_t i = 0; i <= n; i++) {
		k = pw_service_answer_parse(in, i, 0, &st, &off, &len);
		if (k == 1) {
			if (off + len > i || st < 100 || st > 999)
				die("an answer past the input", in, NULL);
			whole = (int)i;
			break;
		}
		if (k < 0)
			break;
	}
	k = pw_service_answer_parse(in, n, 1, &st2, &off2, &len2);
	if (k == 0)
		die("no verdict at the close", in, NULL);
	if (k == 1 && (off2 + len2 > n || st2 < 100 || st2 > 999))
		die("an answer past the input", in, NULL);
	if (whole >= 0 && (k != 1 || st2 != st || off2 != off ||
	    len2 != len))
		die("a whole answer changed with more bytes", in, NULL);
}

static void
offer(const char *in, size_t n)
{
	struct pw_proxy	 p;
	struct pw_addr	 a;
	struct pw_err	 err;
	char		*url = NULL, strategy[8] = "", why[200] = "";
	char		*s1, *s2;
	int64_t		 ttl = -1;

	if (pw_service_offer_parse(in, n, &p, &url, &ttl, strategy,
	    sizeof strategy, why, sizeof why) != 0) {
		if (why[0] == '\0' || !one_line(why))
			die("a refused offer without one line why", in, why);
	} else {
		if (p.id < 1 || ttl < 0 || ttl > 86400 * 365 ||
		    strlen(strategy) >= sizeof strategy)
			die("an offer out of range", in, url);
		if (pw_addr_parse(url, &a, &err) != 0)
			die("an offered URL that does not parse", in, url);
		s1 = pw_addr_format(&a, PW_CREDS_SHOW);
		s2 = pw_addr_format(&p.addr, PW_CREDS_SHOW);
		if (strcmp(s1, s2) != 0)
			die("an offer parses differently", s1, s2);
		free(s1);
		free(s2);
		pw_addr_release(&a);
		pw_proxy_release(&p);
		pw_secret_free(url);
	}
	pw_service_reply_why(503, in, n, why, sizeof why);
	if (strncmp(why, "HTTP 503", 8) != 0 || strlen(why) >= sizeof why)
		die("a reply's why", in, why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 loaded;
	struct pw_err	 err;
	char		*in;

	if (!loaded) {
		if (pw_cjson_init(&err) != 0) {
			fprintf(stderr, "fuzz_response: %s\n", err.msg);
			exit(1);
		}
		loaded = 1;
	}
	if (size < 1 || size > 16 * 1024)
		return 0;
	/* NUL-terminated for the messages; the parsers get the length. */
	in = pw_xmalloc(size);
	memcpy(in, data + 1, size - 1);
	in[size - 1] = '\0';
	switch (data[0] % 5) {
	case 0:
		headers(in, size - 1);
		break;
	case 1:
		redirect(in, size - 1);
		break;
	case 2:
		grade(in, size - 1);
		break;
	case 3:
		answer(in, size - 1);
		break;
	case 4:
		offer(in, size - 1);
		break;
	}
	free(in);
	return 0;
}
