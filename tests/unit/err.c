/*
 * err.c -- unit tests for errors, the growable buffer and the small
 * parsers every module shares (lib/err.c).
 */
#include <pthread.h>

#include "unit.h"

/* ----------------------------------------------------------- pw_buf */

static void
test_buf_init_is_empty_string(void **state)
{
	struct pw_buf	b;

	pw_buf_init(&b);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	assert_int_equal(b.len, 0);
	pw_buf_reset(&b);
	assert_string_equal(b.data, "");
	pw_buf_release(&b);
	/* Released, it is still a valid empty string. */
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	pw_buf_release(&b);
}

static void
test_buf_add(void **state)
{
	struct pw_buf	b;

	pw_buf_init(&b);
	pw_buf_add(&b, "ab\0cd", 5);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "ab\0cd", 6);
	pw_buf_reset(&b);
	pw_buf_adds(&b, "x");
	pw_buf_addc(&b, 'y');
	pw_buf_addf(&b, "%d-%s", 42, "z");
	assert_string_equal(b.data, "xy42-z");
	assert_int_equal(b.len, 6);
	pw_buf_add(&b, "", 0);
	assert_string_equal(b.data, "xy42-z");
	pw_buf_release(&b);

	/* From empty, each kind of add grows the buffer. */
	pw_buf_init(&b);
	pw_buf_addf(&b, "%s", "f");
	assert_string_equal(b.data, "f");
	pw_buf_release(&b);
	pw_buf_init(&b);
	pw_buf_addc(&b, 'c');
	assert_string_equal(b.data, "c");
	pw_buf_release(&b);
	pw_buf_init(&b);
	pw_buf_add(&b, "", 0);
	assert_string_equal(b.data, "");
	pw_buf_release(&b);
}

static void
test_buf_grows(void **state)
{
	struct pw_buf	b;
	char		chunk[1000];

	memset(chunk, 'q', sizeof chunk);
	pw_buf_init(&b);
	for (int i = 0; i < 100; i++)
		pw_buf_add(&b, chunk, sizeof chunk);
	pw_buf_addf(&b, "%1000d", 7);
	assert_int_equal(b.len, 101000);
	assert_int_equal(strlen(b.data), 101000);
	assert_int_equal(b.data[100998], ' ');
	assert_int_equal(b.data[100999], '7');
	pw_buf_release(&b);
}

static void
test_buf_detach(void **state)
{
	struct pw_buf	 b;
	char		*s, *t;

	pw_buf_init(&b);
	pw_buf_adds(&b, "hello");
	s = pw_buf_detach(&b);
	assert_string_equal(s, "hello");
	/* b is empty and usable again; s is the caller's. */
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	pw_buf_adds(&b, "again");
	t = pw_buf_detach(&b);
	assert_string_equal(t, "again");
	assert_string_equal(s, "hello");
	free(s);
	free(t);
	/* Detaching an empty buffer gives a string of one's own. */
	s = pw_buf_detach(&b);
	assert_string_equal(s, "");
	free(s);
	pw_buf_release(&b);
}

/* ----------------------------------------------------------- errors */

/* Every byte that needs it escaped; a run of plain ones as it is. */
static void
test_buf_json(void **state)
{
	struct pw_buf	b;
	char		in[] = "a\"b\\c\n\r\t\b\f\x01\x1f \x7f\xc3\xa9/";
	char		bad[] = "caf\xe9 \x80 \xc0\xaf \xed\xa0\x80 "
	    "\xe2\x82\xac \xe2\x82";

	(void)state;
	pw_buf_init(&b);
	pw_buf_json(&b, in, sizeof in - 1);
	assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f"
	    "\\u0001\\u001f \x7f\xc3\xa9/\"");
	pw_buf_reset(&b);
	/* A NUL within the length is a character like any other. */
	pw_buf_json(&b, "x\0y", 3);
	assert_string_equal(b.data, "\"x\\u0000y\"");
	pw_buf_reset(&b);
	pw_buf_json(&b, "", 0);
	assert_string_equal(b.data, "\"\"");
	pw_buf_reset(&b);
	/*
	 * A byte that is not part of valid UTF-8 becomes U+FFFD, one for
	 * each: Latin-1, a stray continuation, an overlong form, a
	 * surrogate, a sequence cut short at the end.
	 */
	pw_buf_json(&b, bad, sizeof bad - 1);
	assert_string_equal(b.data, "\"caf\\ufffd \\ufffd \\ufffd\\ufffd "
	    "\\ufffd\\ufffd\\ufffd \xe2\x82\xac \\ufffd\\ufffd\"");
	pw_buf_release(&b);
}

/* UTF-8 as RFC 3629 has it, which a strict decoder wants; never a NUL. */
static void
test_utf8_text(void **state)
{
	static const struct {
		const char	*s;
		int		 ok;
	} t[] = {
		{ "", 1 },
		{ "plain ASCII, longer than eight bytes", 1 },
		{ "caf\xc3\xa9", 1 },
		{ "\xe2\x82\xac and \xf0\x9f\x98\x80", 1 },
		{ "\xed\x9f\xbf", 1 },		/* U+D7FF */
		{ "\xee\x80\x80", 1 },		/* U+E000 */
		{ "\xf4\x8f\xbf\xbf", 1 },	/* U+10FFFF */
		{ "caf\xe9", 0 },			/* Latin-1 */
		{ "\xc0\xaf", 0 },			/* overlong '/' */
		{ "\xc1\xbf", 0 },
		{ "\xe0\x80\xaf", 0 },		/* overlong */
		{ "\xe0\x9f\xbf", 0 },
		{ "\xed\xa0\x80", 0 },		/* a surrogate */
		{ "\xed\xbf\xbf", 0 },
		{ "\xf0\x8f\xbf\xbf", 0 },	/* overlong */
		{ "\xf4\x90\x80\x80", 0 },	/* past U+10FFFF */
		{ "\xf5\x80\x80\x80", 0 },
		{ "\xe2\x82", 0 },			/* cut short */
		{ "abcdefgh\xe2\x82", 0 },
		{ "\x80", 0 },			/* a lone continuation */
		{ "abcdefg\xff", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (pw_utf8_text(t[i].s, strlen(t[i].s)) != t[i].ok)
			fail_msg("%zu: want %d", i, t[i].ok);
	}
	/* A NUL, in the first eight bytes or after. */
	assert_int_equal(pw_utf8_text("ab\0d", 4), 0);
	assert_int_equal(pw_utf8_text("abcdefghijk\0mnopqrstu", 20), 0);
}

/* A label is one printable line in any output: no C0, DEL or C1. */
static void
test_label_why(void **state)
{
	(void)state;
	assert_null(pw_label_why("eu-west caf\xc3\xa9 \xc2\xa0"
	    "\xf0\x9f\x98\x80"));
	assert_null(pw_label_why(""));
	assert_string_equal(pw_label_why("a\nb"), "contains a control "
	    "character");
	assert_string_equal(pw_label_why("\t"), "contains a control "
	    "character");
	assert_string_equal(pw_label_why("a\x7f"), "contains a control "
	    "character");
	assert_string_equal(pw_label_why("\xc2\x9b"), "contains a control "
	    "character");
	assert_string_equal(pw_label_why("\xff"), "not valid UTF-8");
	assert_string_equal(pw_label_why("\xc0\xaf"), "not valid UTF-8");
	assert_string_equal(pw_label_why("\xc2"), "not valid UTF-8");
}

static void
test_failf_and_prefix(void **state)
{
	struct pw_err	err = { 0 };
	char		big[4 * sizeof err.msg];

	assert_int_equal(pw_failf(&err, PW_ENOTFOUND, "%s: no such proxy",
	    "7"), PW_ENOTFOUND);
	assert_int_equal(err.code, PW_ENOTFOUND);
	assert_string_equal(err.msg, "7: no such proxy");
	assert_int_equal(pw_err_prefix(&err, "pool %s", "rm"), PW_ENOTFOUND);
	assert_string_equal(err.msg, "pool rm: 7: no such proxy");
	assert_int_equal(pw_failf(NULL, PW_EUSAGE, "x"), PW_EUSAGE);
	assert_int_equal(pw_err_prefix(NULL, "x"), PW_EFAIL);
	pw_err_clear(&err);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.msg, "");

	/* A long message is cut, never overrun. */
	memset(big, 'm', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	pw_failf(&err, PW_EFAIL, "%s", big);
	assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
	pw_err_prefix(&err, "%s", big);
	assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
	assert_int_equal(err.code, PW_EFAIL);
}

/* ---------------------------------------------------------- parsers */

static void
test_parse_int(void **state)
{
	int64_t	v = -7;

	assert_int_equal(pw_parse_int("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(pw_parse_int("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(pw_parse_int("9223372036854775807", 0, INT64_MAX,
	    &v), 0);
	assert_true(v == INT64_MAX);
	v = -7;
	static const char *const bad[] = {
		"", " 1", "1 ", "1x", "x", "101", "-1", "1.0",
		"9223372036854775808",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (pw_parse_int(bad[i], 0, 100, &v) != PW_EUSAGE)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(pw_parse_int(NULL, 0, 100, &v), PW_EUSAGE);
	assert_int_equal(v, -7);
}

static void
test_parse_double(void **state)
{
	double	d = -7;

	assert_int_equal(pw_parse_double("0.5", 0, 1, &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(pw_parse_double("1e0", 0, 1, &d), 0);
	assert_true(d == 1);
	d = -7;
	static const char *const bad[] = {
		"", " 1", "1 ", "x", "1.5", "-0.1", "nan", "inf", "1e999",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (pw_parse_double(bad[i], 0, 1, &d) != PW_EUSAGE)
			fail_msg("'%s' accepted", bad[i]);
	assert_true(d == -7);
}

static void
test_parse_duration(void **state)
{
	static const struct {
		const char	*s;
		int64_t		 v;
	} ok[] = {
		{ "0", 0 }, { "90", 90 }, { "90s", 90 }, { "15m", 900 },
		{ "2h", 7200 }, { "7d", 604800 },
	};
	static const char *const bad[] = {
		"", "-1", "s", "1x", "1ms", "1 s", " 1", "+1", "1.5h", "15M",
		"99999999999999999999", "9223372036854775807d",
	};
	int64_t	v;

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		v = -1;
		assert_int_equal(pw_parse_duration(ok[i].s, &v), 0);
		assert_int_equal(v, ok[i].v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = -7;
		if (pw_parse_duration(bad[i], &v) != PW_EUSAGE)
			fail_msg("'%s' accepted", bad[i]);
		assert_int_equal(v, -7);
	}
	assert_int_equal(pw_parse_duration(NULL, &v), PW_EUSAGE);
}

/* ------------------------------------------------------------ paths */

static void
check_dirname(const char *path, const char *want)
{
	char	*d = pw_dirname(path);

	assert_string_equal(d, want);
	free(d);
}

static void
test_dirname(void **state)
{
	check_dirname("/a/b/c", "/a/b");
	check_dirname("a/b", "a");
	check_dirname("file", ".");
	check_dirname("/file", "/");
	check_dirname("", ".");
}

static void
test_mkdirs(void **state)
{
	char		*dir = unit_tmp_new(), *deep, *file, *want;
	struct pw_err	 err = { 0 };

	umask(022);
	deep = unit_path(dir, "x/y/z");
	assert_int_equal(pw_mkdirs(deep, 0700, &err), 0);
	assert_int_equal(unit_mode(deep), 0700);
	/* Again: nothing to do. */
	assert_int_equal(pw_mkdirs(deep, 0700, &err), 0);
	/* A file in the way. */
	file = unit_path(dir, "f");
	unit_write(file, "", 0);
	assert_int_equal(pw_mkdirs(file, 0700, &err), PW_EFAIL);
	want = pw_xasprintf("%s: not a directory", file);
	assert_string_equal(err.msg, want);
	free(want);
	free(deep);
	deep = unit_path(dir, "f/sub");
	assert_int_equal(pw_mkdirs(deep, 0700, &err), PW_EFAIL);
	want = pw_xasprintf("%s: cannot create directory: Not a directory",
	    deep);
	assert_string_equal(err.msg, want);
	free(want);
	free(deep);
	free(file);
	unit_tmp_free(dir);
}

/* ---------------------------------------------------------- logging */

struct logged {
	int	level;
	char	msg[128];
	int	n;
};

static void
log_cb(void *arg, int level, const char *msg)
{
	struct logged	*l = arg;

	l->level = level;
	snprintf(l->msg, sizeof l->msg, "%s", msg);
	l->n++;
}

static void
test_log(void **state)
{
	struct logged	l = { 0 };

	pw_log(PW_LOG_ERROR, "dropped");
	pw_log_set(log_cb, &l, PW_LOG_WARN);
	pw_log(PW_LOG_WARN, "proxy %d: %s", 3, "slow");
	assert_int_equal(l.n, 1);
	assert_int_equal(l.level, PW_LOG_WARN);
	assert_string_equal(l.msg, "proxy 3: slow");
	pw_log(PW_LOG_DEBUG, "too detailed");
	assert_int_equal(l.n, 1);
	/* One line, whatever it quotes: control bytes and bad UTF-8 \xHH. */
	pw_log(PW_LOG_WARN, "GET %s", "/x\npw: FAKE\r\x1b[31m\x7f");
	assert_string_equal(l.msg, "GET /x\\x0apw: FAKE\\x0d\\x1b[31m\\x7f");
	pw_log(PW_LOG_WARN, "%s", "caf\xc3\xa9 \xc2\x9b" "1m \xff\xc3 "
	    "\xe2\x82");
	assert_string_equal(l.msg, "caf\xc3\xa9 \\xc2\\x9b1m \\xff\\xc3 "
	    "\\xe2\\x82");
	pw_log_set(NULL, NULL, PW_LOG_WARN);
	pw_log(PW_LOG_ERROR, "dropped");
	assert_int_equal(l.n, 3);
}

static void *
log_other_thread(void *arg)
{
	pw_log(PW_LOG_WARN, "from %s", "elsewhere");
	return arg;
}

static void
test_log_context(void **state)
{
	struct logged	l = { 0 };
	pthread_t	t;

	pw_log_set(log_cb, &l, PW_LOG_WARN);
	pw_log_context("serve: rid-1");
	pw_log(PW_LOG_WARN, "proxy %d: %s", 3, "slow");
	assert_string_equal(l.msg, "serve: rid-1: proxy 3: slow");
	/* the context is this thread's only */
	assert_int_equal(pthread_create(&t, NULL, log_other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_string_equal(l.msg, "from elsewhere");
	pw_log_context(NULL);
	pw_log(PW_LOG_WARN, "plain");
	assert_string_equal(l.msg, "plain");
	pw_log_set(NULL, NULL, PW_LOG_WARN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_init_is_empty_string),
		cmocka_unit_test(test_buf_add),
		cmocka_unit_test(test_buf_grows),
		cmocka_unit_test(test_buf_detach),
		cmocka_unit_test(test_buf_json),
		cmocka_unit_test(test_utf8_text),
		cmocka_unit_test(test_label_why),
		cmocka_unit_test(test_failf_and_prefix),
		cmocka_unit_test(test_parse_int),
		cmocka_unit_test(test_parse_double),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_dirname),
		cmocka_unit_test(test_mkdirs),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_log_context),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
