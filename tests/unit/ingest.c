/*
 * ingest.c -- unit tests for the proxy-list parsers and writers
 * (lib/ingest.c): every format, every kind of bad record, and the same
 * result however the input is split into chunks.
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

/* What a parse produced, one line per record or rejection. */
static void
note_rec(struct pw_buf *b, const struct pw_record *r)
{
	char	*url = pw_addr_format(&r->addr, PW_CREDS_SHOW);

	pw_buf_addf(b, "%ld %s|%s|%s|%s|", r->line, url, r->country,
	    r->region ? r->region : "", r->source ? r->source : "");
	if (r->weight >= 0)
		pw_buf_addf(b, "%g", r->weight);
	pw_buf_addf(b, "|%lld\n", (long long)r->expires_at);
	free(url);
}

static int
on_rec(void *arg, struct pw_record *r)
{
	note_rec(arg, r);
	pw_addr_release(&r->addr);
	return 0;
}

static void
on_reject(void *arg, long line, const char *why)
{
	pw_buf_addf(arg, "%ld! %s\n", line, why);
}

/* Parse in (n bytes) in chunks of `chunk` bytes (0: all at once). */
static char *
parse(int fmt, const char *in, size_t n, size_t chunk)
{
	struct pw_buf		 b;
	struct pw_ingest	*ing;

	pw_buf_init(&b);
	ing = pw_ingest_new(fmt, on_rec, on_reject, &b);
	if (chunk == 0)
		chunk = n;
	for (size_t i = 0; i < n; i += chunk)
		assert_int_equal(pw_ingest_feed(ing, in + i,
		    n - i < chunk ? n - i : chunk), 0);
	assert_int_equal(pw_ingest_end(ing), 0);
	pw_ingest_free(ing);
	return pw_buf_detach(&b);
}

/* The same result whole, byte by byte and in chunks of 7. */
static void
check_n(int fmt, const char *in, size_t n, const char *want)
{
	static const size_t	chunks[] = { 0, 1, 2, 7, 4096 };

	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		char *got = parse(fmt, in, n, chunks[i]);
		if (strcmp(got, want) != 0)
			fail_msg("chunk %zu:\n--- want\n%s--- got\n%s",
			    chunks[i], want, got);
		free(got);
	}
}

static void
check(int fmt, const char *in, const char *want)
{
	check_n(fmt, in, strlen(in), want);
}

static void
test_txt(void **state)
{
	(void)state;
	check(PW_FMT_TXT, "\xef\xbb\xbf# list\r\nhttp://10.0.0.1:8080\r\n"
	    "\n  socks5://u:p@h.example  \n10.0.0.2:3128",
	    "2 http://10.0.0.1:8080|||||0\n"
	    "4 socks5://u:p@h.example:1080|||||0\n"
	    "5 http://10.0.0.2:3128|||||0\n");
	check(PW_FMT_TXT, "ftp://h:1\nhttp://h:0\nhttp://:1\n",
	    "1! 'ftp://h:1': unsupported scheme 'ftp' (use http, https, "
	    "socks4, socks4a, socks5 or socks5h)\n"
	    "2! 'http://h:0': port out of range (1-65535)\n"
	    "3! 'http://:1': missing host\n");
	check(PW_FMT_TXT, "", "");
	check(PW_FMT_TXT, "#only a comment", "");
}

static void
test_nul_and_long(void **state)
{
	char	*big;
	size_t	 n = PW_INGEST_MAX_RECORD + 100;

	(void)state;
	check_n(PW_FMT_TXT, "http://a:1\0x\nhttp://b:2\n", 24,
	    "1! contains a NUL byte\n2 http://b:2|||||0\n");
	big = pw_xmalloc(n + 40);
	memset(big, 'a', n);
	memcpy(big + n, "\nhttp://c:3\n", 13);
	check(PW_FMT_TXT, big, "1! line too long (over 8192 bytes)\n"
	    "2 http://c:3|||||0\n");
	/* The same, the long line the last and without a newline. */
	big[n] = '\0';
	check(PW_FMT_TXT, big, "1! line too long (over 8192 bytes)\n");
	free(big);
}

/*
 * A quoted field over the limit, with newlines and quotes in it, is one
 * bad record wherever reads end; the rows after it are read.
 */
static void
test_csv_long(void **state)
{
	struct pw_buf	b;
	char		*want;

	(void)state;
	pw_buf_init(&b);
	pw_buf_adds(&b, "url,region\nhttp://a:1,\"");
	for (int i = 0; i < 100; i++)
		pw_buf_adds(&b, "a \"\"quoted\"\" word, then a line that goes "
		    "on and on and on until it is a hundred bytes\n");
	pw_buf_adds(&b, "\"\nhttp://b:2,east\n\"http://c:3\",\"\"\n");
	want = pw_xasprintf("2! line too long (over %d bytes)\n"
	    "103 http://b:2||east|||0\n104 http://c:3|||||0\n",
	    PW_INGEST_MAX_RECORD);
	check_n(PW_FMT_CSV, b.data, b.len, want);
	free(want);
	pw_buf_release(&b);
}

static void
test_csv(void **state)
{
	(void)state;
	check(PW_FMT_CSV,
	    "Note, URL ,country,region,source,weight,expires_at\r\n"
	    "\"a,\n\"\"b\"\"\",http://10.0.0.1:1,de,Berlin,s,2.5,"
	    "1700000000\r\n"
	    "x,socks5://10.0.0.2:1080,,,,,2023-11-14T22:13:20Z\n",
	    "2 http://10.0.0.1:1|DE|Berlin|s|2.5|1700000000\n"
	    "4 socks5://10.0.0.2:1080|||||1700000000\n");
	/* A label is printed one a line, in JSON and Prometheus. */
	check(PW_FMT_CSV, "url,region,source\nh:1,\"Ber\nlin\",s\n"
	    "h:2,a\tb,s\nh:3,e,\xff\nh:4,\xc2\x85,s\nh:5,\x7f,s\n"
	    "h:6,\xc3\xa9,\xf0\x9f\x98\x80\n",
	    "2! region: contains a control character\n"
	    "4! region: contains a control character\n"
	    "5! source: not valid UTF-8\n"
	    "6! region: contains a control character\n"
	    "7! region: contains a control character\n"
	    "8 http://h:6||\xc3\xa9|\xf0\x9f\x98\x80||0\n");
	check(PW_FMT_CSV, "ip,port,protocol,user,pass\n"
	    "10.0.0.1,1080,socks5,al,\"p,w\"\n::1,80,,,\n",
	    "2 socks5://al:p%2Cw@10.0.0.1:1080|||||0\n"
	    "3 http://[::1]:80|||||0\n");
	check(PW_FMT_CSV, "url,weight\nhttp://a:1\"x\",1\n\"http://a:1\"x,1\n"
	    "http://a:1,1,2\nhttp://a:1,-1\n,\nhttp://a:1,\n\"open,1\n",
	    "2! bad CSV quoting: quote inside an unquoted field\n"
	    "3! bad CSV quoting: junk after a closing quote\n"
	    "4! 3 fields, the header has 2\n"
	    "5! weight '-1': want a number from 0 to 1e9\n"
	    "6! missing url or host\n"
	    "7 http://a:1|||||0\n"
	    "8! bad CSV quoting: unterminated quoted field\n");
	/* A stray quote is data, bad in its field: the next rows are read. */
	check(PW_FMT_CSV, "url,region\nhttp://a:1,a\"b\nhttp://b:2,east\n"
	    "\"http://c:3\"x\"y,\"w\"\"\"\nhttp://d:4,\"\"\"q,\"\"\"\n"
	    "http://e:5,\"\"\n",
	    "2! bad CSV quoting: quote inside an unquoted field\n"
	    "3 http://b:2||east|||0\n"
	    "4! bad CSV quoting: junk after a closing quote\n"
	    "5 http://d:4||\"q,\"|||0\n"
	    "6 http://e:5|||||0\n");
	check(PW_FMT_CSV, "addr,port\n1,2\n", "1! csv header names no url or "
	    "host column; rest of the input ignored\n");
	check(PW_FMT_CSV, "url,password\nhttp://a:1,pw\n",
	    "2! password without a user name\n");
	/* CR before LF is nothing, in quotes too; a CR alone is data. */
	check(PW_FMT_CSV, "url,username,password\r\n"
	    "http://h:1,u,\"p\r\nw\"\r\nhttp://h:2,u,\"p\r\r\nw\rx\"\r\n",
	    "2 http://u:p%0Aw@h:1|||||0\n4 http://u:p%0D%0Aw%0Dx@h:2|||||0\n");
	/* Columns go into a URL only as what they are, nothing more. */
	check(PW_FMT_CSV, "host,port,scheme,username,password\n"
	    "10.0.0.1,80@10.0.0.9,,,\nu@10.0.0.2,8080,,,\n[::1],81,,,\n"
	    "::2,82,,,\n[::1]:80,1,,,\n10.0.0.1:99,1,,,\nh/x,1,,,\nh,-1,,,\n"
	    "h,0,,,\n::1%eth0,1,,,\nh,1,http://x@y#,,\n"
	    "h,1,socks5,a@b:c,p@ss:/w\nh x,1,,,\nH.Example,0080,,,\n",
	    "2! port is not a number\n"
	    "3! bad host: want a host name or an IP address\n"
	    "4 http://[::1]:81|||||0\n5 http://[::2]:82|||||0\n"
	    "6! bad host: want a host name or an IP address\n"
	    "7! bad host: want a host name or an IP address\n"
	    "8! bad host: want a host name or an IP address\n"
	    "9! port is not a number\n"
	    "10! 'http://h:0': port out of range (1-65535)\n"
	    "11! bad host: want a host name or an IP address\n"
	    "12! unsupported scheme (use http, https, socks4, socks4a, "
	    "socks5 or socks5h)\n"
	    "13 socks5://a%40b%3Ac:p%40ss%3A%2Fw@h:1|||||0\n"
	    "14! 'http://h x:1': contains a space\n"
	    "15 http://h.example:80|||||0\n");
}

static void
test_json(void **state)
{
	(void)state;
	check(PW_FMT_JSON, " [ \"http://a:1\" ,\n{\"url\":\"http://b:2\","
	    "\"country\":\"fr\",\"weight\":1e2,\"x\":{\"y\":[true,false,"
	    "null,-1.5e-3,\"\\\"\"]},\"region\":null},\n"
	    "{\"host\":\"c\",\"port\":3,\"source\":\"\\u00e9\\ud83d\\ude00\","
	    "\"expires_at\":1700000000}]\n",
	    "1 http://a:1|||||0\n2 http://b:2|FR|||100|0\n"
	    "3 http://c:3|||\xc3\xa9\xf0\x9f\x98\x80||1700000000\n");
	check(PW_FMT_JSON, "[{\"url\":1},[],{\"port\":{}},{\"url\":\"http://"
	    "a:1\",\"source\":true},{\"expires_at\":[]}]",
	    "1! \"url\": wrong type (want a string)\n"
	    "1! want an object or a URL string\n"
	    "1! \"port\": wrong type (want a number or a string)\n"
	    "1! \"source\": wrong type (want a string)\n"
	    "1! \"expires_at\": wrong type (want a number or a date "
	    "string)\n");
	/* Up to the end of 9999: what is read is written back alike. */
	check(PW_FMT_JSON, "[{\"url\":\"http://a:1\",\"expires_at\":"
	    "253402300799},{\"url\":\"http://a:2\",\"expires_at\":"
	    "18934560056000}]",
	    "1 http://a:1|||||253402300799\n"
	    "1! expires_at '18934560056000': want epoch seconds or "
	    "YYYY-MM-DDTHH:MM:SSZ\n");
	/* Dates are checked, not normalised. */
	{
		static const char *const bad_times[] = {
			"2030-02-31T00:00:00Z", "2030- 2- 1T00:00:00Z",
			"2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z",
			"2030-04-31T00:00:00Z", "2030-13-01T00:00:00Z",
			"2030-00-10T00:00:00Z", "2030-01-00T00:00:00Z",
			"2030-01-01T24:00:00Z", "2030-01-01T00:60:00Z",
			"2030-01-01T00:00:60Z", "2030-1-01T00:00:00Z",
			"+2030-01-01T00:00:0Z", "1969-12-31T23:59:59Z",
			"2030-01-01t00:00:00Z", "2030-01-01T00:00:00",
			"2030-01-01T00:00:00Z ", "+1700000000", " 1700000000",
			"1970-01-01T00:00:00Z", "0", "",
		};
		struct pw_buf	in, want;
		char		*got;

		pw_buf_init(&in);
		pw_buf_init(&want);
		for (size_t i = 0; i < sizeof bad_times /
		    sizeof bad_times[0]; i++) {
			pw_buf_addf(&in, "{\"url\":\"h:1\",\"expires_at\":"
			    "\"%s\"}\n", bad_times[i]);
			if (bad_times[i][0] != '\0')
				pw_buf_addf(&want, "%zu! expires_at '%s': "
				    "want epoch seconds or "
				    "YYYY-MM-DDTHH:MM:SSZ\n", i + 1,
				    bad_times[i]);
			else
				pw_buf_addf(&want, "%zu http://h:1|||||0\n",
				    i + 1);
		}
		got = parse(PW_FMT_JSONL, in.data, in.len, 0);
		assert_string_equal(got, want.data);
		free(got);
		pw_buf_release(&in);
		pw_buf_release(&want);
	}
	check(PW_FMT_JSONL, "{\"url\":\"h:1\",\"expires_at\":"
	    "\"2024-02-29T23:59:59Z\"}\n{\"url\":\"h:2\",\"expires_at\":"
	    "\"2000-02-29T00:00:00Z\"}\n{\"url\":\"h:3\",\"expires_at\":"
	    "\"9999-12-31T23:59:59Z\"}\n{\"url\":\"h:4\",\"expires_at\":"
	    "\"1970-01-01T00:00:01Z\"}\n",
	    "1 http://h:1|||||1709251199\n2 http://h:2|||||951782400\n"
	    "3 http://h:3|||||253402300799\n4 http://h:4|||||1\n");
	check(PW_FMT_JSON, "[\"http://a:1\",\n\"b\" \"c\"]",
	    "1 http://a:1|||||0\n2 http://b:80|||||0\n"
	    "2! JSON syntax error: want ',' or ']'; rest "
	    "of the input ignored\n");
	check(PW_FMT_JSON, "[{\"url\":\"h:1\",\"region\":\"a\\u0007\"},"
	    "{\"url\":\"h:2\",\"source\":\"\\u0085\"},"
	    "{\"url\":\"h:3\",\"source\":\"\xed\xa0\x80\"},"
	    "{\"url\":\"h:4\",\"source\":\"\\u00a0\"}]",
	    "1! region: contains a control character\n"
	    "1! source: contains a control character\n"
	    "1! source: not valid UTF-8\n1 http://h:4|||\xc2\xa0||0\n");
	check(PW_FMT_JSON, "[\"a\\u0000\"]", "1! JSON syntax error: NUL "
	    "(\\u0000) in a string; rest of the input ignored\n");
	check(PW_FMT_JSON, "[\"\\ud800x\"]", "1! JSON syntax error: lone "
	    "surrogate in \\u escape; rest of the input ignored\n");
	check(PW_FMT_JSON, "[\"a\tb\"]", "1! JSON syntax error: control "
	    "character in a string; rest of the input ignored\n");
	check(PW_FMT_JSON, "[1,]", "1! want an object or a URL string\n"
	    "1! JSON syntax error: trailing comma; rest of the input "
	    "ignored\n");
	check(PW_FMT_JSON, "[\"http://a:1\"", "1 http://a:1|||||0\n"
	    "1! JSON syntax error: unterminated array; rest of the input "
	    "ignored\n");
	check(PW_FMT_JSON, "{}", "1! JSON syntax error: want a JSON array "
	    "(for one object a line, use jsonl); rest of the input "
	    "ignored\n");
	check(PW_FMT_JSON, "", "1! JSON syntax error: empty input, want a "
	    "JSON array; rest of the input ignored\n");
	check(PW_FMT_JSON, "[] []", "1! JSON syntax error: junk after the "
	    "array; rest of the input ignored\n");
	check(PW_FMT_JSON, "[tru]", "1! JSON syntax error: bad literal; "
	    "rest of the input ignored\n");
	check(PW_FMT_JSON, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]"
	    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	    "1! JSON syntax error: nested too deep; rest of the input "
	    "ignored\n");
}

/*
 * An element over the limit is skipped to its end, wherever reads fall
 * (the whole list at once, or an element across two reads), and the
 * array goes on; strings and brackets in it are minded.
 */
static void
test_json_long(void **state)
{
	struct pw_buf	b;

	(void)state;
	pw_buf_init(&b);
	pw_buf_adds(&b, "[\"http://a:1\",\n{\"url\":\"http://b:2\",\"x\":\"");
	for (int i = 0; i < 1000; i++)
		pw_buf_adds(&b, "],}{[\\\"\\\\ ");
	pw_buf_adds(&b, "\",\"y\":[{\"z\":\"]}\\\"\\\\\"},[1,2]]},\n"
	    "\"http://c:3\"]");
	check_n(PW_FMT_JSON, b.data, b.len, "1 http://a:1|||||0\n"
	    "2! element too long\n3 http://c:3|||||0\n");
	/* Brackets that do not match end the array, as anywhere. */
	pw_buf_reset(&b);
	pw_buf_adds(&b, "[{\"a\":\"");
	for (int i = 0; i < 9000; i++)
		pw_buf_addc(&b, 'x');
	pw_buf_adds(&b, "\",\"b\":[}],\"http://c:3\"]");
	check_n(PW_FMT_JSON, b.data, b.len, "1! element too long\n"
	    "1! JSON syntax error: want ',' or a close; rest of the input "
	    "ignored\n");
	/* An over-long element that the input ends in. */
	pw_buf_reset(&b);
	pw_buf_adds(&b, "[\"http://a:1\",\n\"");
	for (int i = 0; i < 9000; i++)
		pw_buf_addc(&b, 'x');
	check_n(PW_FMT_JSON, b.data, b.len, "1 http://a:1|||||0\n"
	    "2! element too long\n2! JSON syntax error: unterminated array; "
	    "rest of the input ignored\n");
	pw_buf_release(&b);
}

static void
test_jsonl(void **state)
{
	(void)state;
	check(PW_FMT_JSONL, "{\"url\":\"http://a:1\"}\r\n\n\"b:2\"\n7\n"
	    "{\"url\":\"c\"\n{} x\n{\"port\":80}\n{\"url\":\"d:4\"}",
	    "1 http://a:1|||||0\n3 http://b:2|||||0\n"
	    "4! want an object or a URL string\n"
	    "5! JSON syntax error: unterminated object at the end of the "
	    "line\n"
	    "6! JSON syntax error: junk after the value\n"
	    "7! missing url or host\n8 http://d:4|||||0\n");
	check(PW_FMT_JSONL, "{\"host\":\"10.0.0.1\",\"port\":\"81@10.0.0.8\"}\n"
	    "{\"host\":\"h\",\"port\":81.5}\n{\"host\":\"u:p@h\",\"port\":1}\n"
	    "{\"host\":\"h\",\"port\":81}\n",
	    "1! port is not a number\n2! port is not a number\n"
	    "3! bad host: want a host name or an IP address\n"
	    "4 http://h:81|||||0\n");
}

static void
test_formats(void **state)
{
	int	f;

	(void)state;
	assert_int_equal(pw_format_from_name("a/b.CSV"), PW_FMT_CSV);
	assert_int_equal(pw_format_from_name("x.ndjson"), PW_FMT_JSONL);
	assert_int_equal(pw_format_from_name("x.list"), PW_FMT_TXT);
	assert_int_equal(pw_format_from_name("x.d/y"), PW_FMT_AUTO);
	assert_int_equal(pw_format_from_name("http://h/a.json?x=1"),
	    PW_FMT_AUTO);
	assert_int_equal(pw_format_sniff(" \n[1]", 5), PW_FMT_JSON);
	assert_int_equal(pw_format_sniff("\xef\xbb\xbf{\"a\":1}", 10),
	    PW_FMT_JSONL);
	assert_int_equal(pw_format_sniff("Host,Port\n", 10), PW_FMT_CSV);
	assert_int_equal(pw_format_sniff("a,b\n", 4), PW_FMT_TXT);
	assert_int_equal(pw_format_sniff("h:1\n", 4), PW_FMT_TXT);
	/* Comments first: the line after them tells. Names match whole. */
	assert_int_equal(pw_format_sniff("# proxy list, updated hourly\n"
	    "h:1\n", 33), PW_FMT_TXT);
	assert_int_equal(pw_format_sniff("# Free proxies - host:port, one per "
	    "line\n", 41), PW_FMT_TXT);
	assert_int_equal(pw_format_sniff("# a, b\r\n\n# c\n [\"h:1\"]", 21),
	    PW_FMT_JSON);
	assert_int_equal(pw_format_sniff("# a\n\"url\", \"Country\"\n", 21),
	    PW_FMT_CSV);
	assert_int_equal(pw_format_sniff("#,ip,port,last checked\n", 23),
	    PW_FMT_CSV);
	assert_int_equal(pw_format_sniff("hostname,portal\n", 16), PW_FMT_TXT);
	assert_int_equal(pw_format_sniff("h:1, host\n", 10), PW_FMT_TXT);
	assert_int_equal(pw_format_sniff("# only comments\n", 16), PW_FMT_TXT);
	assert_int_equal(pw_format_parse("JSONL", &f), 0);
	assert_int_equal(f, PW_FMT_JSONL);
	assert_int_equal(pw_format_parse("yaml", &f), PW_EUSAGE);
	/* auto: sniffed at the first bytes. */
	check(PW_FMT_AUTO, "[\"a:1\"]", "1 http://a:1|||||0\n");
	check(PW_FMT_AUTO, "url,country\nb:2,de\n",
	    "2 http://b:2|DE||||0\n");
	check(PW_FMT_AUTO, "# proxy list, updated hourly\n10.0.0.1:8080\n"
	    "10.0.0.2:3128\n", "2 http://10.0.0.1:8080|||||0\n"
	    "3 http://10.0.0.2:3128|||||0\n");
	/* csv passes over the comments auto did. */
	check(PW_FMT_AUTO, "# from x, daily\n\n# host, port\nhost,port\n"
	    "h,1\n", "5 http://h:1|||||0\n");
	check(PW_FMT_CSV, "#,ip,port\n1,h,1\n", "2 http://h:1|||||0\n");
}

static int
stop_rec(void *arg, struct pw_record *r)
{
	(*(int *)arg)++;
	pw_addr_release(&r->addr);
	return 42;
}

static void
test_stop(void **state)
{
	struct pw_ingest	*in;
	int			 n = 0;

	(void)state;
	in = pw_ingest_new(PW_FMT_TXT, stop_rec, NULL, &n);
	assert_int_equal(pw_ingest_feed(in, "a:1\nb:2\n", 8), 42);
	assert_int_equal(pw_ingest_feed(in, "c:3\n", 4), 0);
	assert_int_equal(pw_ingest_end(in), 0);
	assert_int_equal(n, 1);
	pw_ingest_free(in);
}

/* What pw_ingest_write produces reads back as the same records. */
static void
test_write_roundtrip(void **state)
{
	static const int	 fmts[] = { PW_FMT_JSONL, PW_FMT_JSON,
				    PW_FMT_CSV };
	struct pw_proxy		 p[3];
	struct pw_export	 x;
	const char		*urls[3] = { "socks5://u:p%2C%22@h:1080",
				    "http://[::1]:80", "https://a:443" };
	char			*got;

	(void)state;
	memset(p, 0, sizeof p);
	p[0].country = "DE";
	p[0].region = "a, \"b\" c";
	p[0].source = " lead";
	p[0].weight = 0.1;
	p[0].expires_at = 1700000000;
	p[1].weight = -1;
	p[1].source = "\\\"\xc3\xa9";
	p[2].weight = 3;
	for (size_t k = 0; k < 3; k++) {
		struct pw_buf b;
		pw_buf_init(&b);
		pw_ingest_write_begin(fmts[k], &b);
		for (int i = 0; i < 3; i++) {
			x.p = &p[i];
			x.url = urls[i];
			pw_ingest_write(fmts[k], &x, i, &b);
		}
		pw_ingest_write_end(fmts[k], 3, &b);
		got = parse(fmts[k], b.data, b.len, 0);
		/* Lines differ by format; compare without them. */
		for (char *s = got; *s; s++)
			if (*s >= '0' && *s <= '9' && (s == got ||
			    s[-1] == '\n'))
				*s = '#';
		if (fmts[k] == PW_FMT_JSON)
			assert_non_null(strstr(got, "# socks5://u:p%2C%22@h:"
			    "1080|DE|a, \"b\" c| lead|0.1|1700000000\n"));
		assert_non_null(strstr(got, "|DE|a, \"b\" c| lead|0.1|"
		    "1700000000\n"));
		assert_non_null(strstr(got, "http://[::1]:80|||\\\"\xc3\xa9||"
		    "0\n"));
		assert_non_null(strstr(got, "https://a:443||||3|0\n"));
		assert_null(strchr(got, '!'));
		free(got);
		pw_buf_release(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_nul_and_long),
		cmocka_unit_test(test_csv),
		cmocka_unit_test(test_csv_long),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_long),
		cmocka_unit_test(test_jsonl),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_write_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
