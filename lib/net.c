/*
 * net.c -- libcurl, loaded when the first request is made, and the set-up
 * every module that makes requests shares.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

/* The soname pw was built against (curl's ABI has been 4 since 2006). */
#define LIBCURL	"libcurl.so.4"

struct pw_curl_api pw_curl;

static const struct {
	const char	*name;
	size_t		 off;
} api[] = {
#define F(n, field) { n, offsetof(struct pw_curl_api, field) }
	F("curl_easy_init", easy_init),
	F("curl_easy_cleanup", easy_cleanup),
	F("curl_easy_reset", easy_reset),
	F("curl_easy_setopt", easy_setopt),
	F("curl_easy_getinfo", easy_getinfo),
	F("curl_easy_perform", easy_perform),
	F("curl_easy_send", easy_send),
	F("curl_easy_recv", easy_recv),
	F("curl_easy_strerror", easy_strerror),
	F("curl_slist_append", slist_append),
	F("curl_slist_free_all", slist_free_all),
	F("curl_multi_init", multi_init),
	F("curl_multi_cleanup", multi_cleanup),
	F("curl_multi_setopt", multi_setopt),
	F("curl_multi_add_handle", multi_add_handle),
	F("curl_multi_remove_handle", multi_remove_handle),
	F("curl_multi_perform", multi_perform),
	F("curl_multi_socket_action", multi_socket_action),
	F("curl_multi_poll", multi_poll),
	F("curl_multi_info_read", multi_info_read),
	F("curl_multi_assign", multi_assign),
	F("curl_free", free),
	F("curl_url", url),
	F("curl_url_cleanup", url_cleanup),
	F("curl_url_set", url_set),
	F("curl_url_get", url_get),
	F("curl_url_strerror", url_strerror),
#undef F
};

/*
 * When libcurl's TLS library is OpenSSL 3, pw initialises it first, to
 * spare a short process three costs:
 *
 * - Its configuration (openssl.cnf or $OPENSSL_CONF: the system's TLS
 *   policy, providers, engines), which libcurl's initialisation reads
 *   whether TLS is used or not: 1 million instructions, nearly half of
 *   that initialisation. pw_net_tls reads it the way OpenSSL would have
 *   (the default file and section, a missing file or a bad line not
 *   fatal), before the first TLS handshake, which is all it configures.
 * - Its error messages (thousands of strings put in a hash table when a
 *   thread first touches OpenSSL's error queue, during libcurl's
 *   initialisation): 0.4 ms, a third of what is left of it, and only
 *   ever read to say why a TLS connection failed. pw_net_init loads
 *   them as OpenSSL would; pw_net_init_lazy leaves them out, and
 *   pw_net_tls loads those of every library OpenSSL lets load one by
 *   one: all a handshake's and certificate's errors (ERR, SSL, X509,
 *   PEM, ASN1, EVP, ...), though not the few of the providers'.
 * - Freeing all it holds at exit (half a million instructions): the
 *   kernel takes the memory back at once.
 *
 * The values are OpenSSL's ABI (<openssl/crypto.h>, <openssl/conf.h>);
 * pw does not build against OpenSSL.
 */
#define OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS	0x01ULL
#define OPENSSL_INIT_NO_LOAD_CONFIG		0x80ULL
#define OPENSSL_INIT_NO_ATEXIT			0x80000ULL
#define OPENSSL_CONF_FLAGS			(0x20 | 0x10 | 0x02)

static void	*libcrypto;	/* when libcurl uses OpenSSL */
static int	(*conf_load)(const char *, const char *, unsigned long);
static int	 no_strings;	/* OpenSSL's messages are to be loaded */

static void
openssl_init(int lazy)
{
	int	(*init_crypto)(unsigned long long, const void *);
	unsigned long long opts = OPENSSL_INIT_NO_LOAD_CONFIG |
		    OPENSSL_INIT_NO_ATEXIT;

	/* Loaded with libcurl, if libcurl uses it; never closed. */
	if ((libcrypto = dlopen("libcrypto.so.3", RTLD_LAZY |
	    RTLD_NOLOAD)) == NULL)
		return;
	if (lazy)
		opts |= OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS;
	*(void **)&init_crypto = dlsym(libcrypto, "OPENSSL_init_crypto");
	*(void **)&conf_load = dlsym(libcrypto, "CONF_modules_load_file");
	if (init_crypto == NULL || conf_load == NULL ||
	    init_crypto(opts, NULL) != 1)
		conf_load = NULL;
	else
		no_strings = lazy;
}

/*
 * OpenSSL's messages, left out by openssl_init: ERR's own first (the
 * libraries' names, the system's errors), then each library's.
 */
static void
openssl_strings(void)
{
	static const char *const libs[] = { "ERR", "ASN1", "ASYNC", "BIO",
	    "BN", "BUF", "CMS", "COMP", "CONF", "CRYPTO", "CT", "DH", "DSA",
	    "EC", "ENGINE", "EVP", "KDF", "OBJ", "OCSP", "OSSL_STORE", "PEM",
	    "PKCS12", "PKCS7", "RAND", "RSA", "TS", "UI", "X509V3", "X509" };
	char	 name[32];
	int	(*load)(void);

	no_strings = 0;
	for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
		snprintf(name, sizeof name, "ERR_load_%s_strings", libs[i]);
		if ((*(void **)&load = dlsym(libcrypto, name)) != NULL)
			(void)load();
	}
	/* libssl loads its own when it makes its first context. */
}

void
pw_net_tls(void)
{
	if (conf_load != NULL)
		(void)conf_load(NULL, NULL, OPENSSL_CONF_FLAGS);
	conf_load = NULL;
	if (no_strings)
		openssl_strings();
}

static int
net_init(int lazy, struct pw_err *err)
{
	static int	 done;
	CURLcode	(*global_init)(long);
	void		*h, *sym;

	if (done)
		return 0;
	/* Never closed: libcurl keeps global state until exit. */
	if ((h = dlopen(LIBCURL, RTLD_LAZY | RTLD_LOCAL)) == NULL)
		return pw_failf(err, PW_EFAIL, "cannot load %s: %s", LIBCURL,
		    dlerror());
	for (size_t i = 0; i < sizeof api / sizeof api[0]; i++) {
		if ((sym = dlsym(h, api[i].name)) == NULL)
			return pw_failf(err, PW_EFAIL, "%s: no %s (libcurl "
			    "7.80 or later is needed)", LIBCURL, api[i].name);
		memcpy((char *)&pw_curl + api[i].off, &sym, sizeof sym);
	}
	openssl_init(lazy);
	*(void **)&global_init = dlsym(h, "curl_global_init");
	if (global_init == NULL || global_init(CURL_GLOBAL_DEFAULT) != 0)
		return pw_failf(err, PW_EFAIL, "%s: cannot initialise",
		    LIBCURL);
	done = 1;
	return 0;
}

int
pw_net_init(struct pw_err *err)
{
	int	r;

	if ((r = net_init(0, err)) == 0)
		pw_net_tls();
	return r;
}

int
pw_net_init_lazy(struct pw_err *err)
{
	return net_init(1, err);
}

static const char *const curl_schemes[PW_SCHEME_COUNT] = {
	[PW_HTTP] = "http", [PW_HTTPS] = "https", [PW_SOCKS4] = "socks4",
	[PW_SOCKS4A] = "socks4a", [PW_SOCKS5] = "socks5",
	[PW_SOCKS5H] = "socks5h",
};

const char *
pw_curl_strerror(CURLcode rc, long status)
{
	/*
	 * After a status line, libcurl before 8.6 says "Out of memory" of a
	 * header line over its limit (CURL_MAX_HTTP_HEADER).
	 */
	if (rc == CURLE_OUT_OF_MEMORY && status > 0)
		return "a response header line over libcurl's limit (100 KiB)";
	return curl_easy_strerror(rc);
}

void
pw_curl_use_proxy(CURL *h, const struct pw_addr *a)
{
	char	*url;

	if (a->scheme == PW_HTTPS)
		pw_net_tls();
	url = pw_xasprintf(strchr(a->host, ':') ? "%s://[%s]:%d" :
	    "%s://%s:%d", curl_schemes[a->scheme], a->host, a->port);
	curl_easy_setopt(h, CURLOPT_PROXY, url);
	/*
	 * Through a, whatever the host: libcurl would otherwise let
	 * $no_proxy or $NO_PROXY send the request around it, straight from
	 * this machine, as if a had carried it.
	 */
	curl_easy_setopt(h, CURLOPT_NOPROXY, "");
	curl_easy_setopt(h, CURLOPT_PROXYUSERNAME, a->user);
	curl_easy_setopt(h, CURLOPT_PROXYPASSWORD, a->pass);
	curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 0L);
	/* libcurl keeps its own copy of every string option. */
	free(url);
}
