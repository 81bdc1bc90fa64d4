/*
 * net.h -- what the lib modules that use libcurl share (fetch, and the
 * health checks and downloads to come). Only pw-net links these.
 */
#ifndef PW_NET_H
#define PW_NET_H

#include <curl/curl.h>

#include "internal.h"

/* Point h at the proxy a, credentials apart from the URL. */
void	 pw_curl_use_proxy(CURL *h, const struct pw_addr *a);

#endif /* PW_NET_H */
