/*
 * download.c -- plain GETs of proxy lists, many at once (libcurl multi),
 * each into a bounded buffer. libcurl is loaded on the first call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

struct dl {
	struct pw_download	*res;
	struct pw_buf		 b;
	size_t			 max;
	int			 too_big;
	char			 errbuf[CURL_ERROR_SIZE];
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct dl	*d = arg;

	if (d->b.len + n > d->max) {
		d->too_big = 1;
		return 0;	/* stops the transfer */
	}
	pw_buf_add(&d->b, p, n * size);
	return n * size;
}

void
pw_download_release(struct pw_download *d)
{
	free(d->data);
	free(d->error);
	memset(d, 0, sizeof *d);
}

int
pw_download(const char *const *urls, size_t n, size_t max_bytes,
    int64_t timeout_ms, int64_t connect_timeout_ms, struct pw_download *res)
{
	CURLM		*m;
	CURL		**h;
	struct dl	*d;
	CURLMsg		*msg;
	struct pw_err	 err = { 0 };
	int		 running, left, r;

	memset(res, 0, n * sizeof *res);
	if (n == 0)
		return 0;
	if ((r = pw_net_init(&err)) != 0) {
		for (size_t i = 0; i < n; i++)
			res[i].error = pw_xstrdup(err.msg);
		return 0;
	}
	m = curl_multi_init();
	h = pw_xcalloc(n, sizeof *h);
	d = pw_xcalloc(n, sizeof *d);
	for (size_t i = 0; i < n; i++) {
		d[i].res = &res[i];
		d[i].max = max_bytes;
		pw_buf_init(&d[i].b);
		h[i] = curl_easy_init();
		curl_easy_setopt(h[i], CURLOPT_URL, urls[i]);
		curl_easy_setopt(h[i], CURLOPT_PRIVATE, &d[i]);
		curl_easy_setopt(h[i], CURLOPT_ERRORBUFFER, d[i].errbuf);
		curl_easy_setopt(h[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h[i], CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h[i], CURLOPT_REDIR_PROTOCOLS_STR,
		    "http,https");
		curl_easy_setopt(h[i], CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h[i], CURLOPT_MAXREDIRS, 5L);
		curl_easy_setopt(h[i], CURLOPT_ACCEPT_ENCODING, "");
		curl_easy_setopt(h[i], CURLOPT_USERAGENT, "pw/" PW_VERSION);
		curl_easy_setopt(h[i], CURLOPT_MAXFILESIZE_LARGE,
		    (curl_off_t)max_bytes);
		if (timeout_ms > 0)
			curl_easy_setopt(h[i], CURLOPT_TIMEOUT_MS,
			    (long)timeout_ms);
		if (connect_timeout_ms > 0)
			curl_easy_setopt(h[i], CURLOPT_CONNECTTIMEOUT_MS,
			    (long)connect_timeout_ms);
		curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &d[i]);
		curl_multi_add_handle(m, h[i]);
	}
	do {
		curl_multi_perform(m, &running);
		if (running > 0)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	} while (running > 0);
	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		struct dl *x;
		char *redacted;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
		    (char **)&x);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
		    &x->res->status);
		if (x->too_big || msg->data.result ==
		    CURLE_FILESIZE_EXCEEDED)
			x->res->error = pw_xasprintf("larger than %zu bytes "
			    "(cache.max_size)", max_bytes);
		else if (msg->data.result != CURLE_OK) {
			redacted = pw_redact_url(x->errbuf[0] ? x->errbuf :
			    curl_easy_strerror(msg->data.result));
			x->res->error = redacted;
		} else if (x->res->status != 200)
			x->res->error = pw_xasprintf("HTTP status %ld",
			    x->res->status);
		else {
			x->res->len = x->b.len;
			x->res->data = pw_buf_detach(&x->b);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (res[i].data == NULL && res[i].error == NULL)
			res[i].error = pw_xstrdup("transfer did not finish");
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
		pw_buf_release(&d[i].b);
	}
	curl_multi_cleanup(m);
	free(h);
	free(d);
	return 0;
}
