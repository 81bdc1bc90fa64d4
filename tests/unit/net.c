/*
 * net.c -- unit tests for lib/net.c: libcurl loaded lazily leaves
 * OpenSSL's messages out, and pw_net_tls puts them back before TLS is
 * used. Nothing is contacted. One test: libcurl is set up once a
 * process.
 */
#include <dlfcn.h>

#include "unit.h"
#include "../../lib/net.h"

/* ERR_PACK of OpenSSL 3: the library in the top bits, then the reason. */
#define ERR_CODE(lib, reason)	(((unsigned long)(lib) << 23) | (reason))
#define LIB_X509		11
#define X509_R_CERT_ALREADY_IN_HASH_TABLE	101

static void
test_lazy_strings(void **state)
{
	const char	*(*reason)(unsigned long);
	const char	*(*lib)(unsigned long);
	struct pw_err	 err = { 0 };
	void		*c;

	assert_int_equal(pw_net_init_lazy(&err), 0);
	/* Debian's libcurl4 uses OpenSSL 3: pw's set-up is for it. */
	c = dlopen("libcrypto.so.3", RTLD_LAZY | RTLD_NOLOAD);
	assert_non_null(c);
	*(void **)&reason = dlsym(c, "ERR_reason_error_string");
	*(void **)&lib = dlsym(c, "ERR_lib_error_string");
	assert_non_null(reason);
	assert_non_null(lib);
	/* Left out: libcurl's initialisation did not load them. */
	assert_null(reason(ERR_CODE(LIB_X509,
	    X509_R_CERT_ALREADY_IN_HASH_TABLE)));
	assert_null(lib(ERR_CODE(LIB_X509, 0)));

	pw_net_tls();
	assert_string_equal(reason(ERR_CODE(LIB_X509,
	    X509_R_CERT_ALREADY_IN_HASH_TABLE)), "cert already in hash table");
	assert_string_equal(lib(ERR_CODE(LIB_X509, 0)),
	    "x509 certificate routines");
	/* Once: a second call changes nothing. */
	pw_net_tls();
	assert_int_equal(pw_net_init(&err), 0);
	dlclose(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lazy_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
