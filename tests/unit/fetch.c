/*
 * fetch.c -- unit tests for the header block readers of lib/fetch.c:
 * pw_header_first (pw fetch -w %header{NAME}) beside pw_header_get.
 * Nothing is contacted.
 */
#include "unit.h"

/* Two responses, as libcurl hands them to -L: a redirect, then the last. */
static const char block[] =
    "HTTP/1.1 302 Found\r\n"
    "Location: /next\r\n"
    "X-A: from the redirect\r\n"
    "\r\n"
    "HTTP/1.1 200 OK\r\n"
    "X-A: one\r\n"
    "Content-Type: text/plain\r\n"
    "x-a:   two \t\r\n"
    "X-Empty:\r\n"
    "X-Pad: \t padded \t \r\n"
    "\r\n";

static void
check(const char *name, const char *want)
{
	char	*got = pw_header_first(block, sizeof block - 1, name);

	if (want == NULL) {
		if (got != NULL)
			fail_msg("%s: want none, got '%s'", name, got);
		return;
	}
	if (got == NULL)
		fail_msg("%s: want '%s', got none", name, want);
	assert_string_equal(got, want);
	free(got);
}

static void
test_header_first(void **state)
{
	(void)state;
	/* The first of its name, in the last response only; any case. */
	check("X-A", "one");
	check("x-a", "one");
	check("CONTENT-TYPE", "text/plain");
	check("location", NULL);
	check("x-empty", "");
	/* White space around the value goes, inside it stays. */
	check("x-pad", "padded");
	check("x-", NULL);
	check("", NULL);
	/* No block, or no response in it. */
	assert_null(pw_header_first("", 0, "x-a"));
}

static void
test_header_get_joins(void **state)
{
	char	*v;

	(void)state;
	/* pw_header_get joins a repeated name's values (pw serve). */
	v = pw_header_get(block, sizeof block - 1, "x-a");
	assert_non_null(v);
	assert_string_equal(v, "one, two");
	free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_first),
		cmocka_unit_test(test_header_get_joins),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
