/*
 * net.c -- libcurl set-up that every network module shares.
 */
#include <stdlib.h>
#include <string.h>

#include "net.h"

static const char *const curl_schemes[PW_SCHEME_COUNT] = {
	[PW_HTTP] = "http", [PW_HTTPS] = "https", [PW_SOCKS4] = "socks4",
	[PW_SOCKS4A] = "socks4a", [PW_SOCKS5] = "socks5",
	[PW_SOCKS5H] = "socks5h",
};

void
pw_curl_use_proxy(CURL *h, const struct pw_addr *a)
{
	char	*url;

	url = pw_xasprintf(strchr(a->host, ':') ? "%s://[%s]:%d" :
	    "%s://%s:%d", curl_schemes[a->scheme], a->host, a->port);
	curl_easy_setopt(h, CURLOPT_PROXY, url);
	curl_easy_setopt(h, CURLOPT_PROXYUSERNAME, a->user);
	curl_easy_setopt(h, CURLOPT_PROXYPASSWORD, a->pass);
	curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 0L);
	/* libcurl keeps its own copy of every string option. */
	free(url);
}
