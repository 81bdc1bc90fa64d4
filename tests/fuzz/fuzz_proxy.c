/*
 * fuzz_proxy.c -- libFuzzer target for the proxy URL parser, normaliser,
 * formatter and redactor (lib/proxy.c).
 *
 * The input, up to its first NUL, is parsed as a URL. When it parses:
 *   - the address is normalised (lower-case host, port in range);
 *   - normalisation is idempotent: parse(format(parse(x), SHOW)) is the
 *     first parse, and formats the same;
 *   - the masked form is the bare form with "***@" or "***:***@" put
 *     after the scheme, so it holds no credential, and pw_redact_url of
 *     the shown form gives exactly the masked form.
 * When it does not, the message is one printable line.
 *
 * Then the input, split at NULs into A, P and B, is built into
 * A ":" MARK P "@" B, which puts a password at MARK wherever A leaves the
 * user info. Whether that parses or not, MARK never shows: not in a
 * message, not in a masked or bare URL, not in a redacted one.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/internal.h"

#define MARK	"Zq9xPASSWORDx"

static void
die(const char *what, const char *in, const char *a, const char *b)
{
	fprintf(stderr, "fuzz_proxy: %s\n  input: '%s'\n  got:   '%s'\n"
	    "  want:  '%s'\n", what, in, a ? a : "(null)", b ? b : "(null)");
	abort();
}

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
check_message(const char *in, const struct pw_err *err)
{
	if (err->code != PW_EUSAGE)
		die("error code is not PW_EUSAGE", in, err->msg, NULL);
	if (err->msg[0] != '\'')
		die("message does not quote the input", in, err->msg, NULL);
	for (const unsigned char *p = (const unsigned char *)err->msg; *p;
	    p++)
		if (*p < 0x20 || *p == 0x7f)
			die("control character in message", in, err->msg,
			    NULL);
}

/* The masked form the bare form and the credentials call for. */
static char *
expect_masked(const struct pw_addr *a, const char *bare)
{
	const char	*rest = strstr(bare, "://");

	if (a->user == NULL)
		return pw_xstrdup(bare);
	return pw_xasprintf("%.*s://%s@%s", (int)(rest - bare), bare,
	    a->pass != NULL ? "***:***" : "***", rest + 3);
}

static void
check_parsed(const char *in, const struct pw_addr *a)
{
	struct pw_addr	 b;
	struct pw_err	 err = { 0 };
	char		*bare, *masked, *shown, *again, *want, *red;

	if ((unsigned)a->scheme >= PW_SCHEME_COUNT)
		die("scheme out of range", in, NULL, NULL);
	if (a->port < 1 || a->port > 65535)
		die("port out of range", in, NULL, NULL);
	if (a->host == NULL || a->host[0] == '\0')
		die("empty host", in, NULL, NULL);
	for (const char *p = a->host; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			die("host not lower-case", in, a->host, NULL);
	if (a->user != NULL && a->user[0] == '\0')
		die("empty user", in, NULL, NULL);

	bare = pw_addr_format(a, PW_CREDS_NONE);
	masked = pw_addr_format(a, PW_CREDS_MASK);
	shown = pw_addr_format(a, PW_CREDS_SHOW);

	/* The masked form is the bare one plus a mask, nothing else. */
	want = expect_masked(a, bare);
	if (strcmp(masked, want) != 0)
		die("masked form", in, masked, want);
	free(want);
	if (a->user == NULL && strcmp(shown, bare) != 0)
		die("shown form without credentials", in, shown, bare);
	red = pw_redact_url(shown);
	if (strcmp(red, masked) != 0)
		die("redacted shown form is not the masked form", in, red,
		    masked);
	free(red);

	/* Idempotent: the shown form parses back to the same address. */
	if (pw_addr_parse(shown, &b, &err) != 0)
		die("shown form does not parse", in, shown, err.msg);
	if (b.scheme != a->scheme || b.port != a->port ||
	    !same_str(b.host, a->host) || !same_str(b.user, a->user) ||
	    !same_str(b.pass, a->pass))
		die("shown form parses differently", in, shown, NULL);
	again = pw_addr_format(&b, PW_CREDS_SHOW);
	if (strcmp(again, shown) != 0)
		die("format is not idempotent", in, again, shown);
	free(again);
	pw_addr_release(&b);

	/* The bare form is the same proxy without credentials. */
	if (pw_addr_parse(bare, &b, &err) != 0)
		die("bare form does not parse", in, bare, err.msg);
	if (b.scheme != a->scheme || b.port != a->port ||
	    !same_str(b.host, a->host) || b.user != NULL || b.pass != NULL)
		die("bare form parses differently", in, bare, NULL);
	pw_addr_release(&b);

	free(bare);
	free(masked);
	free(shown);
}

static void
fuzz_url(const char *in)
{
	struct pw_addr	a;
	struct pw_err	err = { 0 };

	if (pw_addr_parse(in, &a, &err) == 0) {
		check_parsed(in, &a);
		pw_addr_release(&a);
	} else
		check_message(in, &err);
}

static void
no_mark(const char *in, const char *what, const char *s)
{
	if (strstr(s, MARK) != NULL)
		die(what, in, s, NULL);
}

static void
fuzz_password(const char *A, const char *P, const char *B)
{
	struct pw_addr	 a;
	struct pw_err	 err = { 0 };
	char		*in, *s, *first;

	in = pw_xasprintf("%s:" MARK "%s@%s", A, P, B);
	/* Only one MARK, and only where it was put. */
	first = strstr(in, MARK);
	if (strstr(first + 1, MARK) != NULL) {
		free(in);
		return;
	}
	if (pw_addr_parse(in, &a, &err) == 0) {
		check_parsed(in, &a);
		s = pw_addr_format(&a, PW_CREDS_NONE);
		no_mark(in, "password in bare form", s);
		free(s);
		s = pw_addr_format(&a, PW_CREDS_MASK);
		no_mark(in, "password in masked form", s);
		free(s);
		s = pw_redact_url(in);
		no_mark(in, "password in redacted input", s);
		free(s);
		pw_addr_release(&a);
	} else {
		check_message(in, &err);
		no_mark(in, "password in message", err.msg);
	}
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		*buf;
	const char	*parts[3] = { "", "", "" };
	size_t		 n = 0;

	if (size > 4096)
		return 0;
	buf = pw_xmalloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';

	fuzz_url(buf);

	/* Split at the first two NULs into A, P and B. */
	parts[0] = buf;
	for (size_t i = 0; i < size && n < 2; i++) {
		if (buf[i] == '\0')
			parts[++n] = buf + i + 1;
	}
	fuzz_password(parts[0], parts[1], parts[2]);

	free(buf);
	return 0;
}
