/*
 * ssrf.c -- unit tests for lib/ssrf.c: the class of every kind of
 * address, IPv4 inside IPv6, what allow_private lets through, and the
 * host of a URL (as libcurl reads it) judged after resolution. Only
 * literal addresses and names from /etc/hosts: nothing is looked up on
 * a network, nothing is contacted.
 */
#include <arpa/inet.h>

#include "unit.h"

/* The class of a literal IPv4 or IPv6 address. */
static int
cls(const char *s)
{
	unsigned char	b[16];

	if (inet_pton(AF_INET, s, b) == 1)
		return pw_addr_class4(b);
	if (inet_pton(AF_INET6, s, b) == 1)
		return pw_addr_class6(b);
	fail_msg("%s: not an address", s);
	return -1;
}

static void
test_ipv4_classes(void **state)
{
	static const struct {
		const char	*a;
		int		 c;
	} t[] = {
		{ "127.0.0.1", PW_ADDR_LOOPBACK },
		{ "127.255.255.254", PW_ADDR_LOOPBACK },
		{ "10.0.0.1", PW_ADDR_PRIVATE },
		{ "10.255.255.255", PW_ADDR_PRIVATE },
		{ "172.16.0.0", PW_ADDR_PRIVATE },
		{ "172.31.255.255", PW_ADDR_PRIVATE },
		{ "172.15.255.255", PW_ADDR_PUBLIC },
		{ "172.32.0.0", PW_ADDR_PUBLIC },
		{ "192.168.0.1", PW_ADDR_PRIVATE },
		{ "192.169.0.1", PW_ADDR_PUBLIC },
		{ "100.64.0.0", PW_ADDR_SHARED },
		{ "100.127.255.255", PW_ADDR_SHARED },
		{ "100.63.255.255", PW_ADDR_PUBLIC },
		{ "100.128.0.0", PW_ADDR_PUBLIC },
		{ "169.254.169.254", PW_ADDR_LINK_LOCAL },
		{ "169.253.0.1", PW_ADDR_PUBLIC },
		{ "0.0.0.0", PW_ADDR_UNSPECIFIED },
		{ "0.1.2.3", PW_ADDR_UNSPECIFIED },
		{ "224.0.0.1", PW_ADDR_MULTICAST },
		{ "239.255.255.250", PW_ADDR_MULTICAST },
		{ "240.0.0.1", PW_ADDR_RESERVED },
		{ "255.255.255.255", PW_ADDR_RESERVED },
		{ "192.0.0.8", PW_ADDR_RESERVED },
		{ "198.18.0.1", PW_ADDR_RESERVED },
		{ "192.0.2.1", PW_ADDR_RESERVED },
		{ "192.0.3.1", PW_ADDR_PUBLIC },
		{ "198.51.100.255", PW_ADDR_RESERVED },
		{ "198.51.101.1", PW_ADDR_PUBLIC },
		{ "203.0.113.0", PW_ADDR_RESERVED },
		{ "203.0.112.1", PW_ADDR_PUBLIC },
		{ "198.20.0.1", PW_ADDR_PUBLIC },
		{ "1.1.1.1", PW_ADDR_PUBLIC },
		{ "8.8.8.8", PW_ADDR_PUBLIC },
		{ "93.184.216.34", PW_ADDR_PUBLIC },
		{ "223.255.255.255", PW_ADDR_PUBLIC },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (cls(t[i].a) != t[i].c)
			fail_msg("%s: %s, want %s", t[i].a,
			    pw_addr_class_name(cls(t[i].a)),
			    pw_addr_class_name(t[i].c));
}

static void
test_ipv6_classes(void **state)
{
	static const struct {
		const char	*a;
		int		 c;
	} t[] = {
		{ "::1", PW_ADDR_LOOPBACK },
		{ "::", PW_ADDR_UNSPECIFIED },
		{ "fc00::1", PW_ADDR_PRIVATE },
		{ "fdff:ffff::1", PW_ADDR_PRIVATE },
		{ "fec0::1", PW_ADDR_PRIVATE },
		{ "fe80::1", PW_ADDR_LINK_LOCAL },
		{ "febf::1", PW_ADDR_LINK_LOCAL },
		{ "ff02::1", PW_ADDR_MULTICAST },
		{ "2001:db8::1", PW_ADDR_RESERVED },
		{ "100::1", PW_ADDR_RESERVED },
		{ "2606:4700::1111", PW_ADDR_PUBLIC },
		{ "2001:4860:4860::8888", PW_ADDR_PUBLIC },
		/* IPv4 inside: judged as the IPv4 address */
		{ "::ffff:127.0.0.1", PW_ADDR_LOOPBACK },
		{ "::ffff:7f00:1", PW_ADDR_LOOPBACK },
		{ "::ffff:10.1.2.3", PW_ADDR_PRIVATE },
		{ "::ffff:169.254.169.254", PW_ADDR_LINK_LOCAL },
		{ "::ffff:0.0.0.0", PW_ADDR_UNSPECIFIED },
		{ "::ffff:8.8.8.8", PW_ADDR_PUBLIC },
		{ "::127.0.0.1", PW_ADDR_LOOPBACK },
		{ "::192.168.1.1", PW_ADDR_PRIVATE },
		{ "64:ff9b::10.0.0.1", PW_ADDR_PRIVATE },
		{ "64:ff9b::8.8.8.8", PW_ADDR_PUBLIC },
		{ "2002:7f00:1::", PW_ADDR_LOOPBACK },
		{ "2002:c0a8:101::1", PW_ADDR_PRIVATE },
		{ "2002:808:808::1", PW_ADDR_PUBLIC },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (cls(t[i].a) != t[i].c)
			fail_msg("%s: %s, want %s", t[i].a,
			    pw_addr_class_name(cls(t[i].a)),
			    pw_addr_class_name(t[i].c));
}

static void
test_allow_private(void **state)
{
	for (int c = 0; c < PW_ADDR_CLASS_COUNT; c++) {
		int local = c == PW_ADDR_LOOPBACK || c == PW_ADDR_PRIVATE ||
		    c == PW_ADDR_SHARED || c == PW_ADDR_LINK_LOCAL;

		assert_int_equal(pw_addr_forbidden(c, 0), c != PW_ADDR_PUBLIC);
		/* Lifted for the local kinds only. */
		assert_int_equal(pw_addr_forbidden(c, 1), !local &&
		    c != PW_ADDR_PUBLIC);
	}
	assert_string_equal(pw_addr_class_name(PW_ADDR_SHARED),
	    "shared (carrier-grade NAT)");
	assert_string_equal(pw_addr_class_name(99), "unknown");
}

/* pw_ssrf_check of url: its result, and the message. */
static int
check(const char *url, int allow, char *msg, size_t n)
{
	struct pw_err	err;
	int		r;

	pw_err_clear(&err);
	r = pw_ssrf_check(url, allow, &err);
	snprintf(msg, n, "%s", err.msg);
	return r;
}

static void
test_url_hosts(void **state)
{
	static const char *const refused[] = {
		"http://127.0.0.1/", "http://127.0.0.1:8080/x?y#z",
		"https://user:pw@127.0.0.1/",
		"http://[::1]/", "http://[::1]:443/",
		"http://[::ffff:10.0.0.1]/",
		"http://localhost/", "HTTP://LOCALHOST:1/",
		"http://2130706433/", "http://0x7f.1/", "http://127.1/",
		"http://017700000001/", "http://10.0.0.1?x",
		"http://10.0.0.1#y",
		"http://0.0.0.0/", "http://224.0.0.1/",
		"http://%31%32%37.0.0.1/",
		/* The host libcurl connects to: a backslash ends no host. */
		"http://192.0.2.1\\@127.0.0.1:80/echo",
		"http://8.8.8.8\\@[::1]/", "http://127.0.0.1:80\\@192.0.2.1/",
		"http://192.0.2.1#@127.0.0.1/", "http://[::1]@192.0.2.1/",
		"http://127.0.0.1/@8.8.8.8", "http://127.0.0.1;@192.0.2.1/",
		"http://198.51.100.1/", "http://203.0.113.9/",
		/* libcurl's IDN rules would make "localhost" of it */
		"http://\xe2\x93\x9bocalhost/",
	};
	static const char *const allowed[] = {
		"http://8.8.8.8/", "https://1.1.1.1:8443/x",
		"http://u:p@93.184.216.34/", "http://[2606:4700::1111]/",
		"http://127.0.0.1@8.8.8.8/",
		"http://169.254.169.254\\@8.8.8.8/",
		"http://[::1]\\@8.8.8.8/",
	};
	char	msg[sizeof ((struct pw_err *)0)->msg];

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		if (check(refused[i], 0, msg, sizeof msg) != 1)
			fail_msg("%s: not refused", refused[i]);
	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
		if (check(allowed[i], 0, msg, sizeof msg) != 0)
			fail_msg("%s: refused: %s", allowed[i], msg);
	assert_int_equal(check("http://127.0.0.1/", 0, msg, sizeof msg), 1);
	assert_string_equal(msg, "127.0.0.1 is a loopback address");
	assert_int_equal(check("http://localhost:9/", 0, msg, sizeof msg), 1);
	assert_string_equal(msg,
	    "localhost resolves to 127.0.0.1, a loopback address");
	assert_int_equal(check("http://0.0.0.0/", 0, msg, sizeof msg), 1);
	assert_string_equal(msg, "0.0.0.0 is an unspecified address");
	/* allow_private: local kinds pass, the others never */
	assert_int_equal(check("http://127.0.0.1/", 1, msg, sizeof msg), 0);
	assert_int_equal(check("http://[::1]/", 1, msg, sizeof msg), 0);
	assert_int_equal(check("http://10.0.0.1/", 1, msg, sizeof msg), 0);
	assert_int_equal(check("http://0.0.0.0/", 1, msg, sizeof msg), 1);
	assert_int_equal(check("http://[ff02::1]/", 1, msg, sizeof msg), 1);
	assert_int_equal(check("http://255.255.255.255/", 1, msg,
	    sizeof msg), 1);
	/* the host libcurl reads, in its own spelling */
	assert_int_equal(check("http://192.0.2.1\\@127.1:80/", 0, msg,
	    sizeof msg), 1);
	assert_string_equal(msg, "127.0.0.1 is a loopback address");
	assert_int_equal(check("http://127.0.0.1:80\\@192.0.2.1/", 1, msg,
	    sizeof msg), 1);
	assert_string_equal(msg, "192.0.2.1 is a reserved address");
	assert_int_equal(check("http://\xe2\x93\x9bocalhost/", 1, msg,
	    sizeof msg), 1);
	assert_string_equal(msg, "a host name that is not ASCII (give its "
	    "xn-- form)");
	/* no host, URLs libcurl would not take, a host that does not resolve */
	assert_int_equal(check("http://:80/", 0, msg, sizeof msg), PW_EUSAGE);
	assert_string_equal(msg, "'http://:80/': no host in the URL");
	assert_int_equal(check("http://[::1/", 0, msg, sizeof msg), PW_EUSAGE);
	assert_int_equal(check("http://u@x@127.0.0.1/", 0, msg, sizeof msg),
	    PW_EUSAGE);
	assert_int_equal(check("http://a\t@127.0.0.1/", 0, msg, sizeof msg),
	    PW_EUSAGE);
	assert_int_equal(check("http://127.0.0.1:99999/", 0, msg, sizeof msg),
	    PW_EUSAGE);
	assert_int_equal(check("http://no-such-host.invalid/", 0, msg,
	    sizeof msg), PW_ETARGET);
	assert_non_null(strstr(msg, "no-such-host.invalid: cannot resolve"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_classes),
		cmocka_unit_test(test_ipv6_classes),
		cmocka_unit_test(test_allow_private),
		cmocka_unit_test(test_url_hosts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
