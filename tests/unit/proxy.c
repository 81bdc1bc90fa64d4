/*
 * proxy.c -- unit tests for the proxy URL parser, normaliser, formatter
 * and redactor (lib/proxy.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/internal.h"

/* A password that must never show in a message or a masked URL. */
#define SECRET	"hunter2"

/* A value an untouched out-parameter keeps. */
static char	sentinel_host[] = "untouched";

static void
addr_poison(struct pw_addr *a)
{
	a->scheme = PW_SOCKS4A;
	a->host = sentinel_host;
	a->port = 4242;
	a->user = sentinel_host;
	a->pass = sentinel_host;
}

/*
 * Parse in and check the normalised URL without credentials, and the
 * decoded user and password (NULL: absent).
 */
static void
check_ok(const char *in, const char *want, const char *user,
    const char *pass)
{
	struct pw_addr	 a;
	struct pw_err	 err = { 0 };
	char		*got;
	int		 r;

	r = pw_addr_parse(in, &a, &err);
	if (r != 0)
		fail_msg("'%s': want ok, got %d: %s", in, r, err.msg);
	got = pw_addr_format(&a, PW_CREDS_NONE);
	if (strcmp(got, want) != 0)
		fail_msg("'%s': want '%s', got '%s'", in, want, got);
	free(got);
	if (user == NULL)
		assert_null(a.user);
	else
		assert_string_equal(a.user, user);
	if (pass == NULL)
		assert_null(a.pass);
	else
		assert_string_equal(a.pass, pass);
	pw_addr_release(&a);
}

/* Parse in, which must fail with exactly msg; a stays untouched. */
static void
check_bad(const char *in, const char *msg)
{
	struct pw_addr	a;
	struct pw_err	err = { 0 };
	int		r;

	addr_poison(&a);
	r = pw_addr_parse(in, &a, &err);
	if (r != PW_EUSAGE)
		fail_msg("'%s': want PW_EUSAGE, got %d", in, r);
	assert_int_equal(err.code, PW_EUSAGE);
	if (strcmp(err.msg, msg) != 0)
		fail_msg("'%s': want message\n  %s\ngot\n  %s", in, msg,
		    err.msg);
	if (strstr(err.msg, SECRET) != NULL)
		fail_msg("'%s': message shows the password: %s", in, err.msg);
	assert_int_equal(a.scheme, PW_SOCKS4A);
	assert_ptr_equal(a.host, sentinel_host);
	assert_int_equal(a.port, 4242);
	assert_ptr_equal(a.user, sentinel_host);
	assert_ptr_equal(a.pass, sentinel_host);
}

static char *
fmt(const char *in, int creds)
{
	struct pw_addr	 a;
	struct pw_err	 err = { 0 };
	char		*s;

	if (pw_addr_parse(in, &a, &err) != 0)
		fail_msg("'%s': %s", in, err.msg);
	s = pw_addr_format(&a, creds);
	pw_addr_release(&a);
	return s;
}

static void
check_fmt(const char *in, int creds, const char *want)
{
	char	*got = fmt(in, creds);

	if (strcmp(got, want) != 0)
		fail_msg("'%s' (creds %d): want '%s', got '%s'", in, creds,
		    want, got);
	free(got);
}

/* ------------------------------------------------------------ schemes */

static void
test_every_scheme_default_port(void **state)
{
	check_ok("http://h", "http://h:80", NULL, NULL);
	check_ok("https://h", "https://h:443", NULL, NULL);
	check_ok("socks4://h", "socks4://h:1080", NULL, NULL);
	check_ok("socks4a://h", "socks4a://h:1080", NULL, NULL);
	check_ok("socks5://h", "socks5://h:1080", NULL, NULL);
	check_ok("socks5h://h", "socks5h://h:1080", NULL, NULL);
}

static void
test_every_scheme_explicit_port(void **state)
{
	check_ok("http://h:8080", "http://h:8080", NULL, NULL);
	check_ok("https://h:8443", "https://h:8443", NULL, NULL);
	check_ok("socks4://h:9050", "socks4://h:9050", NULL, NULL);
	check_ok("socks4a://h:9050", "socks4a://h:9050", NULL, NULL);
	check_ok("socks5://h:9050", "socks5://h:9050", NULL, NULL);
	check_ok("socks5h://h:9050", "socks5h://h:9050", NULL, NULL);
	/* An explicit default port is the same proxy as an implicit one. */
	check_ok("https://h:443", "https://h:443", NULL, NULL);
}

static void
test_scheme_field(void **state)
{
	static const struct {
		const char	*in;
		enum pw_scheme	 s;
	} t[] = {
		{ "http://h", PW_HTTP }, { "https://h", PW_HTTPS },
		{ "socks4://h", PW_SOCKS4 }, { "socks4a://h", PW_SOCKS4A },
		{ "socks5://h", PW_SOCKS5 }, { "socks5h://h", PW_SOCKS5H },
		{ "h:1", PW_HTTP },
	};
	struct pw_addr	a;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		assert_int_equal(pw_addr_parse(t[i].in, &a, NULL), 0);
		assert_int_equal(a.scheme, t[i].s);
		pw_addr_release(&a);
	}
}

static void
test_scheme_and_host_lower_cased(void **state)
{
	check_ok("HTTP://Proxy.Example.COM:8080",
	    "http://proxy.example.com:8080", NULL, NULL);
	check_ok("SoCkS5H://LOCALHOST", "socks5h://localhost:1080", NULL,
	    NULL);
	/* Credentials keep their case. */
	check_ok("http://User:PaSS@H", "http://h:80", "User", "PaSS");
}

static void
test_host_port_means_http(void **state)
{
	check_ok("1.2.3.4:3128", "http://1.2.3.4:3128", NULL, NULL);
	check_ok("proxy.example.com:8080", "http://proxy.example.com:8080",
	    NULL, NULL);
	check_ok("[::1]:3128", "http://[::1]:3128", NULL, NULL);
	check_ok("u:p@10.0.0.1:8000", "http://10.0.0.1:8000", "u", "p");
	/* A bare host is http on port 80. */
	check_ok("example.com", "http://example.com:80", NULL, NULL);
}

static void
test_trailing_slash(void **state)
{
	check_ok("http://h:8080/", "http://h:8080", NULL, NULL);
	check_ok("h:8080/", "http://h:8080", NULL, NULL);
	check_ok("socks5://[::1]/", "socks5://[::1]:1080", NULL, NULL);
}

static void
test_equivalent_spellings_normalise_alike(void **state)
{
	static const char *const same[] = {
		"http://example.com:80", "HTTP://EXAMPLE.COM", "example.com",
		"example.com:80", "http://example.com/", "Example.Com:080/",
		"http://example.com:00080",
	};

	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
		check_ok(same[i], "http://example.com:80", NULL, NULL);
}

static void
test_bad_scheme(void **state)
{
	check_bad("ftp://h:21", "'ftp://h:21': unsupported scheme 'ftp' (use "
	    "http, https, socks4, socks4a, socks5 or socks5h)");
	check_bad("socks://h", "'socks://h': unsupported scheme 'socks' (use "
	    "http, https, socks4, socks4a, socks5 or socks5h)");
	check_bad("socks6://h", "'socks6://h': unsupported scheme 'socks6' "
	    "(use http, https, socks4, socks4a, socks5 or socks5h)");
	check_bad("httpx://h", "'httpx://h': unsupported scheme 'httpx' (use "
	    "http, https, socks4, socks4a, socks5 or socks5h)");
	check_bad("averyveryverylongscheme://h", "'averyveryverylongscheme://"
	    "h': unsupported scheme (use http, https, socks4, socks4a, socks5 "
	    "or socks5h)");
	check_bad("://h:80", "'://h:80': missing scheme before ://");
	/* One slash short: "http" is taken for a host, "/h" for a path. */
	check_bad("http:/h", "'http:/h': a proxy URL has no path, query or "
	    "fragment");
}

/* --------------------------------------------------------------- hosts */

static void
test_ipv4(void **state)
{
	check_ok("127.0.0.1:1", "http://127.0.0.1:1", NULL, NULL);
	check_ok("0.0.0.0:1", "http://0.0.0.0:1", NULL, NULL);
	check_ok("255.255.255.255:1", "http://255.255.255.255:1", NULL,
	    NULL);
	check_bad("256.1.1.1:80", "'256.1.1.1:80': bad IPv4 address");
	check_bad("1.2.3:80", "'1.2.3:80': bad IPv4 address");
	check_bad("1.2.3.4.5:80", "'1.2.3.4.5:80': bad IPv4 address");
	check_bad("1..2.3:80", "'1..2.3:80': bad IPv4 address");
	check_bad("01.2.3.4:80", "'01.2.3.4:80': bad IPv4 address");
	check_bad("1.2.3.4.:80", "'1.2.3.4.:80': bad IPv4 address");
	check_bad("1234567890123456:80", "'1234567890123456:80': bad IPv4 "
	    "address");
	check_bad("http://8080", "'http://8080': bad IPv4 address");
}

static void
test_ipv6_canonical(void **state)
{
	struct pw_addr	a;

	check_ok("[::1]", "http://[::1]:80", NULL, NULL);
	check_ok("socks5://[::1]:1080", "socks5://[::1]:1080", NULL, NULL);
	check_ok("http://[2001:DB8:0:0:0:0:0:1]:8080",
	    "http://[2001:db8::1]:8080", NULL, NULL);
	check_ok("http://[2001:0db8:0000:0000:0001:0000:0000:0001]",
	    "http://[2001:db8::1:0:0:1]:80", NULL, NULL);
	check_ok("[::FFFF:192.0.2.1]:3128", "http://[::ffff:192.0.2.1]:3128",
	    NULL, NULL);
	check_ok("[fe80::]:1", "http://[fe80::]:1", NULL, NULL);
	check_ok("u:p@[::1]:9", "http://[::1]:9", "u", "p");

	/* The host is kept without brackets. */
	assert_int_equal(pw_addr_parse("[2001:db8::2]:1", &a, NULL), 0);
	assert_string_equal(a.host, "2001:db8::2");
	assert_int_equal(a.port, 1);
	pw_addr_release(&a);
}

static void
test_ipv6_bad(void **state)
{
	check_bad("[::1", "'[::1': unterminated '[' in IPv6 address");
	check_bad("http://[::1:80", "'http://[::1:80': unterminated '[' in "
	    "IPv6 address");
	check_bad("[]:80", "'[]:80': bad IPv6 address");
	check_bad("[::g]:80", "'[::g]:80': bad IPv6 address");
	check_bad("[1:2:3:4:5:6:7:8:9]", "'[1:2:3:4:5:6:7:8:9]': bad IPv6 "
	    "address");
	check_bad("[fe80::1%eth0]:80", "'[fe80::1%eth0]:80': bad IPv6 "
	    "address");
	check_bad("[1.2.3.4]:80", "'[1.2.3.4]:80': bad IPv6 address");
	check_bad("[::1]x", "'[::1]x': junk after IPv6 address");
	check_bad("[::1]80", "'[::1]80': junk after IPv6 address");
	check_bad("[::1]:", "'[::1]:': missing port after ':'");
	/* Without brackets the first colon starts the port. */
	check_bad("::1", "'::1': missing host");
	check_bad("2001:db8::1", "'2001:db8::1': bad IPv4 address");
	check_bad("[0000:0000:0000:0000:0000:0000:0000:0000:1]", "'[0000:0000"
	    ":0000:0000:0000:0000:0000:0000:1]': bad IPv6 address");
}

static void
test_host_names(void **state)
{
	char	label63[64], in[300], want[320];

	check_ok("localhost:1", "http://localhost:1", NULL, NULL);
	check_ok("a:1", "http://a:1", NULL, NULL);
	check_ok("my-proxy.example.com:1", "http://my-proxy.example.com:1",
	    NULL, NULL);
	check_ok("under_score.example:1", "http://under_score.example:1",
	    NULL, NULL);
	check_ok("xn--bcher-kva.example:1", "http://xn--bcher-kva.example:1",
	    NULL, NULL);
	check_ok("1.2.3.4.nip.io:1", "http://1.2.3.4.nip.io:1", NULL, NULL);
	check_ok("1e100.net:1", "http://1e100.net:1", NULL, NULL);

	/* A label of 63 characters is the longest. */
	memset(label63, 'a', 63);
	label63[63] = '\0';
	snprintf(in, sizeof in, "%s.com:1", label63);
	snprintf(want, sizeof want, "http://%s.com:1", label63);
	check_ok(in, want, NULL, NULL);
	/* A name of 253 characters is the longest: 3 x (63 + 1) + 61. */
	snprintf(in, sizeof in, "%s.%s.%s.%.61s:1", label63, label63, label63,
	    label63);
	assert_int_equal(strlen(in), 253 + 2);
	snprintf(want, sizeof want, "http://%s", in);
	check_ok(in, want, NULL, NULL);
}

static void
test_host_names_bad(void **state)
{
	char	label64[65], in[400], msg[500];

	check_bad("-lead.example:1", "'-lead.example:1': bad host name");
	check_bad("trail-:1", "'trail-:1': bad host name");
	check_bad("a..b:1", "'a..b:1': bad host name");
	check_bad(".a:1", "'.a:1': bad host name");
	check_bad("ex!ample:1", "'ex!ample:1': bad host name");
	check_bad("ex%41mple:1", "'ex%41mple:1': bad host name");
	check_bad("h\xc3\xa9llo:1", "'h\xc3\xa9llo:1': bad host name");
	check_bad("a,b:1", "'a,b:1': bad host name");

	memset(label64, 'a', 64);
	label64[64] = '\0';
	snprintf(in, sizeof in, "%s.com:1", label64);
	snprintf(msg, sizeof msg, "'%s': bad host name", in);
	check_bad(in, msg);
	/* 254 characters is one too many. */
	snprintf(in, sizeof in, "%.63s.%.63s.%.63s.%.62s:1", label64, label64,
	    label64, label64);
	assert_int_equal(strlen(in), 254 + 2);
	snprintf(msg, sizeof msg, "'%.96s...': bad host name", in);
	check_bad(in, msg);
}

static void
test_missing_host(void **state)
{
	check_bad("http://", "'http://': missing host");
	check_bad("http:///", "'http:///': missing host");
	check_bad("http://:80", "'http://:80': missing host");
	check_bad(":80", "':80': missing host");
	check_bad("http://u:" SECRET "@", "'http://***:***@': missing host");
	check_bad("http://u:" SECRET "@:80", "'http://***:***@:80': missing "
	    "host");
}

/* --------------------------------------------------------------- ports */

static void
test_ports(void **state)
{
	check_ok("h:1", "http://h:1", NULL, NULL);
	check_ok("h:65535", "http://h:65535", NULL, NULL);
	check_ok("h:0080", "http://h:80", NULL, NULL);
	check_bad("h:0", "'h:0': port out of range (1-65535)");
	check_bad("h:00000", "'h:00000': port out of range (1-65535)");
	check_bad("h:65536", "'h:65536': port out of range (1-65535)");
	check_bad("h:99999999999999999999999", "'h:99999999999999999999999': "
	    "port out of range (1-65535)");
	check_bad("h:-1", "'h:-1': port is not a number");
	check_bad("h:+80", "'h:+80': port is not a number");
	check_bad("h:8o", "'h:8o': port is not a number");
	check_bad("h:0x50", "'h:0x50': port is not a number");
	check_bad("h:1:2", "'h:1:2': port is not a number");
	check_bad("h:", "'h:': missing port after ':'");
	check_bad("http://h:/", "'http://h:/': missing port after ':'");
}

/* --------------------------------------------------------- credentials */

static void
test_credentials(void **state)
{
	check_ok("http://user:pass@h:1", "http://h:1", "user", "pass");
	check_ok("socks5://user@h", "socks5://h:1080", "user", NULL);
	check_ok("http://user:@h:1", "http://h:1", "user", "");
	/* The last '@' ends the user info; the first ':' splits it. */
	check_ok("http://u:p@ss@h:1", "http://h:1", "u", "p@ss");
	check_ok("http://u:a:b@h:1", "http://h:1", "u", "a:b");
	check_ok("http://u:p[1]@h:1", "http://h:1", "u", "p[1]");
}

static void
test_credentials_percent_decoded(void **state)
{
	check_ok("http://us%40er:p%3Ass%2Fw%25rd@h:1", "http://h:1", "us@er",
	    "p:ss/w%rd");
	check_ok("http://%75%73%65%72:%2f%3f%23@h:1", "http://h:1", "user",
	    "/?#");
	check_ok("http://u:%20%7E@h:1", "http://h:1", "u", " ~");
	check_ok("http://u:%C3%A9@h:1", "http://h:1", "u", "\xc3\xa9");
	check_ok("http://u:%0A@h:1", "http://h:1", "u", "\n");
}

static void
test_credentials_bad(void **state)
{
	check_bad("http://@h:1", "'http://***@h:1': empty user name");
	check_bad("http://:" SECRET "@h:1", "'http://***:***@h:1': empty user "
	    "name");
	check_bad("http://u%@h:1", "'http://***@h:1': bad percent-encoding in "
	    "user name");
	check_bad("http://u%4@h:1", "'http://***@h:1': bad percent-encoding "
	    "in user name");
	check_bad("http://u%zz@h:1", "'http://***@h:1': bad percent-encoding "
	    "in user name");
	check_bad("http://u%00@h:1", "'http://***@h:1': bad percent-encoding "
	    "in user name");
	check_bad("http://u:" SECRET "%@h:1", "'http://***:***@h:1': bad "
	    "percent-encoding in password");
	check_bad("http://u:" SECRET "%0@h:1", "'http://***:***@h:1': bad "
	    "percent-encoding in password");
	check_bad("http://u:" SECRET "%G0@h:1", "'http://***:***@h:1': bad "
	    "percent-encoding in password");
	check_bad("http://u:" SECRET "%00@h:1", "'http://***:***@h:1': bad "
	    "percent-encoding in password");
}

/* ------------------------------------------------- whitespace, junk */

static void
test_empty(void **state)
{
	check_bad("", "'': empty proxy URL");
	check_bad(NULL, "'': empty proxy URL");
}

static void
test_spaces(void **state)
{
	check_bad(" h:80", "' h:80': contains a space");
	check_bad("h:80 ", "'h:80 ': contains a space");
	check_bad("h :80", "'h :80': contains a space");
	check_bad("h: 80", "'h: 80': contains a space");
	check_bad("http://u:hunter 2@h:1", "'http://***:***@h:1': contains a "
	    "space");
}

static void
test_control_characters(void **state)
{
	check_bad("h:80\n", "'h:80\\x0a': contains a control character");
	check_bad("\th:80", "'\\x09h:80': contains a control character");
	check_bad("h\r:80", "'h\\x0d:80': contains a control character");
	check_bad("h:80\x7f", "'h:80\\x7f': contains a control character");
	check_bad("h\x1b[31m:80", "'h\\x1b[31m:80': contains a control "
	    "character");
	check_bad("http://u:" SECRET "\x01@h:1", "'http://***:***@h:1': "
	    "contains a control character");
}

static void
test_path_query_fragment(void **state)
{
	check_bad("http://h:80/x", "'http://h:80/x': a proxy URL has no path, "
	    "query or fragment");
	check_bad("http://h:80//", "'http://h:80//': a proxy URL has no path, "
	    "query or fragment");
	check_bad("http://h:80?", "'http://h:80?': a proxy URL has no path, "
	    "query or fragment");
	check_bad("http://h:80?a=b", "'http://h:80?a=b': a proxy URL has no "
	    "path, query or fragment");
	check_bad("http://h:80#top", "'http://h:80#top': a proxy URL has no "
	    "path, query or fragment");
	check_bad("/", "'/': missing host");
}

static void
test_message_is_cut(void **state)
{
	char	in[300], msg[400];

	/* "a.a.a....a:0": a valid host name of 199 characters. */
	for (int i = 0; i < 200; i++)
		in[i] = i % 2 ? '.' : 'a';
	memcpy(in + 199, ":0", 3);
	snprintf(msg, sizeof msg, "'%.96s...': port out of range (1-65535)",
	    in);
	check_bad(in, msg);
}

/*
 * Whatever is wrong with a URL, a password in it never reaches the
 * message, even where the URL is too broken to say where it ends.
 */
static void
test_message_never_shows_password(void **state)
{
	static const char *const bad[] = {
		"ftp://u:" SECRET "@h:1",
		"http://u:" SECRET "@h:0",
		"http://u:" SECRET "@h:65536",
		"http://u:" SECRET "@h:x",
		"http://u:" SECRET "@h:",
		"http://u:" SECRET "@-h:1",
		"http://u:" SECRET "@256.0.0.1:1",
		"http://u:" SECRET "@[::1",
		"http://u:" SECRET "@[::x]",
		"http://u:" SECRET "@[::1]x",
		"http://u:" SECRET "@h:1/path",
		"http://u:" SECRET "@h:1?q",
		"http://u:" SECRET " @h:1",
		"http://u:" SECRET "\t@h:1",
		"u:" SECRET "@h:0",
		"U:" SECRET "@H:1:2",
		/* Unencoded delimiters inside the password. */
		"http://u:" SECRET "/x@h:1",
		"http://u:" SECRET "?x@h:1",
		"http://u:" SECRET "#x@h:1",
		"http://u:x/" SECRET "@h:1",
		"u:" SECRET "/@h:1",
		/* A "://" after the password is not a scheme. */
		"u:" SECRET "@h/://",
		"u:" SECRET "@h/x://y",
		"u:" SECRET "@h:1?://",
	};
	struct pw_addr	a;
	struct pw_err	err;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&err, 0, sizeof err);
		if (pw_addr_parse(bad[i], &a, &err) != PW_EUSAGE)
			fail_msg("'%s': parsed", bad[i]);
		if (strstr(err.msg, SECRET) != NULL)
			fail_msg("message shows the password: %s", err.msg);
		if (strstr(err.msg, "***") == NULL)
			fail_msg("message has no mask: %s", err.msg);
	}
}

static void
test_password_with_delimiter_message(void **state)
{
	/* The password runs to the last '@': all of it is masked. */
	check_bad("http://u:" SECRET "/x@h:1", "'http://***:***@h:1': a proxy "
	    "URL has no path, query or fragment");
	check_bad("u:" SECRET "@h/://", "'***:***@h/://': a proxy URL has no "
	    "path, query or fragment");
}

static void
test_null_err_allowed(void **state)
{
	struct pw_addr	a;

	assert_int_equal(pw_addr_parse("h:0", &a, NULL), PW_EUSAGE);
	assert_int_equal(pw_addr_parse("", &a, NULL), PW_EUSAGE);
}

/* ---------------------------------------------------------- formatting */

static void
test_format_creds(void **state)
{
	const char	*in = "socks5://alice:s3cret@proxy.example:1080";

	check_fmt(in, PW_CREDS_NONE, "socks5://proxy.example:1080");
	check_fmt(in, PW_CREDS_MASK, "socks5://***:***@proxy.example:1080");
	check_fmt(in, PW_CREDS_SHOW,
	    "socks5://alice:s3cret@proxy.example:1080");

	check_fmt("http://alice@h:1", PW_CREDS_NONE, "http://h:1");
	check_fmt("http://alice@h:1", PW_CREDS_MASK, "http://***@h:1");
	check_fmt("http://alice@h:1", PW_CREDS_SHOW, "http://alice@h:1");
	check_fmt("http://alice:@h:1", PW_CREDS_MASK, "http://***:***@h:1");
	check_fmt("http://alice:@h:1", PW_CREDS_SHOW, "http://alice:@h:1");

	/* No credentials: every mode is the same. */
	check_fmt("h:1", PW_CREDS_NONE, "http://h:1");
	check_fmt("h:1", PW_CREDS_MASK, "http://h:1");
	check_fmt("h:1", PW_CREDS_SHOW, "http://h:1");
}

static void
test_format_show_percent_encodes(void **state)
{
	check_fmt("http://us%40er:p%3Ass%2Fw%25rd@h:1", PW_CREDS_SHOW,
	    "http://us%40er:p%3Ass%2Fw%25rd@h:1");
	check_fmt("http://u:p@ss@h:1", PW_CREDS_SHOW, "http://u:p%40ss@h:1");
	check_fmt("http://u:a:b@h:1", PW_CREDS_SHOW, "http://u:a%3Ab@h:1");
	check_fmt("http://u:%2f%3f%23%20@h:1", PW_CREDS_SHOW,
	    "http://u:%2F%3F%23%20@h:1");
	check_fmt("http://u:%C3%A9@h:1", PW_CREDS_SHOW, "http://u:%C3%A9@h:1");
	/* Unreserved characters stay as they are. */
	check_fmt("http://A-z_0.9~:%41-z_0.9~@h:1", PW_CREDS_SHOW,
	    "http://A-z_0.9~:A-z_0.9~@h:1");
}

static void
test_format_ipv6(void **state)
{
	check_fmt("socks5h://u:p@[2001:db8::1]:1", PW_CREDS_NONE,
	    "socks5h://[2001:db8::1]:1");
	check_fmt("socks5h://u:p@[2001:db8::1]:1", PW_CREDS_MASK,
	    "socks5h://***:***@[2001:db8::1]:1");
	check_fmt("socks5h://u:p@[2001:db8::1]:1", PW_CREDS_SHOW,
	    "socks5h://u:p@[2001:db8::1]:1");
}

static void
test_format_built_addr(void **state)
{
	struct pw_addr	 a = { PW_SOCKS4, "10.1.2.3", 9, NULL, NULL };
	char		*s;

	s = pw_addr_format(&a, PW_CREDS_SHOW);
	assert_string_equal(s, "socks4://10.1.2.3:9");
	free(s);
	a.host = "::1";
	a.user = "x y";
	s = pw_addr_format(&a, PW_CREDS_SHOW);
	assert_string_equal(s, "socks4://x%20y@[::1]:9");
	free(s);
}

/* Normalisation is idempotent: parse(format(parse(x))) == parse(x). */
static void
test_normalisation_idempotent(void **state)
{
	static const char *const in[] = {
		"HTTP://User:Pa%24%24@Example.COM:0080/",
		"socks5h://%E2%82%AC:%F0%9F%94%91@[2001:0DB8::0001]",
		"u:p@ss:w@h:1", "u:@h", "u@h", "h", "[::FFFF:1.2.3.4]",
		"https://a_b.c-d.e:443", "http://u:%25%2540@h:1",
		"socks4a://x.:1",
	};
	struct pw_addr	a, b;
	char		*s1, *s2;

	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		assert_int_equal(pw_addr_parse(in[i], &a, NULL), 0);
		s1 = pw_addr_format(&a, PW_CREDS_SHOW);
		if (pw_addr_parse(s1, &b, NULL) != 0)
			fail_msg("'%s' -> '%s' does not parse", in[i], s1);
		s2 = pw_addr_format(&b, PW_CREDS_SHOW);
		assert_string_equal(s1, s2);
		assert_int_equal(a.scheme, b.scheme);
		assert_string_equal(a.host, b.host);
		assert_int_equal(a.port, b.port);
		if (a.user == NULL)
			assert_null(b.user);
		else
			assert_string_equal(a.user, b.user);
		if (a.pass == NULL)
			assert_null(b.pass);
		else
			assert_string_equal(a.pass, b.pass);
		free(s1);
		free(s2);
		pw_addr_release(&a);
		pw_addr_release(&b);
	}
}

static void
test_masked_format_never_shows_password(void **state)
{
	static const char *const in[] = {
		"http://u:" SECRET "@h:1", "http://" SECRET ":" SECRET "@h:1",
		"http://u:" SECRET "@[::1]:1", "http://u:%68unter2@h:1",
	};
	char	*s;

	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		s = fmt(in[i], PW_CREDS_MASK);
		assert_null(strstr(s, SECRET));
		free(s);
		s = fmt(in[i], PW_CREDS_NONE);
		assert_null(strstr(s, SECRET));
		free(s);
		s = fmt(in[i], PW_CREDS_SHOW);
		assert_non_null(strstr(s, SECRET));
		free(s);
	}
}

/* ----------------------------------------------------------- redaction */

static void
check_redact(const char *in, const char *want)
{
	char	*got = pw_redact_url(in);

	if (strcmp(got, want) != 0)
		fail_msg("redact '%s': want '%s', got '%s'", in, want, got);
	free(got);
}

static void
test_redact_url(void **state)
{
	check_redact("http://u:p@h:1", "http://***:***@h:1");
	check_redact("http://u@h:1", "http://***@h:1");
	check_redact("http://u:@h:1", "http://***:***@h:1");
	check_redact("https://u:p@example.com/a/b?c=d#e",
	    "https://***:***@example.com/a/b?c=d#e");
	check_redact("u:p@h:1", "***:***@h:1");
	check_redact("http://u:p@ss@h:1/", "http://***:***@h:1/");
	/* Nothing to mask. */
	check_redact("http://h:1", "http://h:1");
	check_redact("https://example.com/path@x",
	    "https://example.com/path@x");
	check_redact("https://example.com/?to=a@b",
	    "https://example.com/?to=a@b");
	check_redact("mailto:a", "mailto:a");
	check_redact("", "");
	/* A "://" after the user info does not hide it. */
	check_redact("u:p@h/x://y", "***:***@h/x://y");
}

/* ---------------------------------------------------------- scheme API */

static void
test_scheme_api(void **state)
{
	static const char *const names[PW_SCHEME_COUNT] = {
		"http", "https", "socks4", "socks4a", "socks5", "socks5h",
	};
	static const int ports[PW_SCHEME_COUNT] = {
		80, 443, 1080, 1080, 1080, 1080,
	};
	enum pw_scheme	s;

	for (int i = 0; i < PW_SCHEME_COUNT; i++) {
		assert_string_equal(pw_scheme_name(i), names[i]);
		assert_int_equal(pw_scheme_default_port(i), ports[i]);
		s = PW_SCHEME_COUNT;
		assert_int_equal(pw_scheme_parse(names[i], &s), 0);
		assert_int_equal(s, i);
	}
	assert_string_equal(pw_scheme_name(PW_SCHEME_COUNT), "?");
	assert_string_equal(pw_scheme_name((enum pw_scheme)-1), "?");
	assert_int_equal(pw_scheme_parse("SOCKS5H", &s), 0);
	assert_int_equal(s, PW_SOCKS5H);
	s = PW_HTTPS;
	assert_int_equal(pw_scheme_parse("ftp", &s), PW_EUSAGE);
	assert_int_equal(pw_scheme_parse("", &s), PW_EUSAGE);
	assert_int_equal(pw_scheme_parse("socks", &s), PW_EUSAGE);
	assert_int_equal(s, PW_HTTPS);
}

static void
test_release(void **state)
{
	struct pw_addr	a;

	assert_int_equal(pw_addr_parse("http://u:p@h:1", &a, NULL), 0);
	pw_addr_release(&a);
	assert_null(a.host);
	assert_null(a.user);
	assert_null(a.pass);
	pw_addr_release(&a);
	pw_addr_release(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_scheme_default_port),
		cmocka_unit_test(test_every_scheme_explicit_port),
		cmocka_unit_test(test_scheme_field),
		cmocka_unit_test(test_scheme_and_host_lower_cased),
		cmocka_unit_test(test_host_port_means_http),
		cmocka_unit_test(test_trailing_slash),
		cmocka_unit_test(test_equivalent_spellings_normalise_alike),
		cmocka_unit_test(test_bad_scheme),
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6_canonical),
		cmocka_unit_test(test_ipv6_bad),
		cmocka_unit_test(test_host_names),
		cmocka_unit_test(test_host_names_bad),
		cmocka_unit_test(test_missing_host),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_credentials),
		cmocka_unit_test(test_credentials_percent_decoded),
		cmocka_unit_test(test_credentials_bad),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_spaces),
		cmocka_unit_test(test_control_characters),
		cmocka_unit_test(test_path_query_fragment),
		cmocka_unit_test(test_message_is_cut),
		cmocka_unit_test(test_message_never_shows_password),
		cmocka_unit_test(test_password_with_delimiter_message),
		cmocka_unit_test(test_null_err_allowed),
		cmocka_unit_test(test_format_creds),
		cmocka_unit_test(test_format_show_percent_encodes),
		cmocka_unit_test(test_format_ipv6),
		cmocka_unit_test(test_format_built_addr),
		cmocka_unit_test(test_normalisation_idempotent),
		cmocka_unit_test(test_masked_format_never_shows_password),
		cmocka_unit_test(test_redact_url),
		cmocka_unit_test(test_scheme_api),
		cmocka_unit_test(test_release),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
