/*
 * net.h -- what the lib modules that make requests share.
 *
 * pw does not link libcurl: loading it and its thirty libraries would be
 * most of the start-up time of every command, and most commands only
 * touch the state file. pw_net_init() loads it with dlopen the first
 * time a request is to be made; until then the curl_* names below are
 * pointers into a table that is still empty. Include this, never
 * <curl/curl.h> itself.
 */
#ifndef PW_NET_H
#define PW_NET_H

/* The type-checking macros would call the functions by their names. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "internal.h"

struct pw_curl_api {
	CURL		*(*easy_init)(void);
	void		 (*easy_cleanup)(CURL *);
	void		 (*easy_reset)(CURL *);
	CURLcode	 (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode	 (*easy_getinfo)(CURL *, CURLINFO, ...);
	CURLcode	 (*easy_perform)(CURL *);
	CURLcode	 (*easy_send)(CURL *, const void *, size_t, size_t *);
	CURLcode	 (*easy_recv)(CURL *, void *, size_t, size_t *);
	const char	*(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void		 (*slist_free_all)(struct curl_slist *);
	CURLM		*(*multi_init)(void);
	CURLMcode	 (*multi_cleanup)(CURLM *);
	CURLMcode	 (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode	 (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode	 (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode	 (*multi_perform)(CURLM *, int *);
	CURLMcode	 (*multi_socket_action)(CURLM *, curl_socket_t, int,
			    int *);
	CURLMcode	 (*multi_poll)(CURLM *, struct curl_waitfd *,
			    unsigned int, int, int *);
	CURLMsg		*(*multi_info_read)(CURLM *, int *);
	CURLMcode	 (*multi_assign)(CURLM *, curl_socket_t, void *);
	void		 (*free)(void *);
	CURLU		*(*url)(void);
	void		 (*url_cleanup)(CURLU *);
	CURLUcode	 (*url_set)(CURLU *, CURLUPart, const char *,
			    unsigned int);
	CURLUcode	 (*url_get)(const CURLU *, CURLUPart, char **,
			    unsigned int);
	const char	*(*url_strerror)(CURLUcode);
};

extern struct pw_curl_api pw_curl;

/* curl.h defines these three as macros even without type checks. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt

#define curl_easy_init		pw_curl.easy_init
#define curl_easy_cleanup	pw_curl.easy_cleanup
#define curl_easy_reset		pw_curl.easy_reset
#define curl_easy_setopt	pw_curl.easy_setopt
#define curl_easy_getinfo	pw_curl.easy_getinfo
#define curl_easy_perform	pw_curl.easy_perform
#define curl_easy_send		pw_curl.easy_send
#define curl_easy_recv		pw_curl.easy_recv
#define curl_easy_strerror	pw_curl.easy_strerror
#define curl_slist_append	pw_curl.slist_append
#define curl_slist_free_all	pw_curl.slist_free_all
#define curl_multi_init		pw_curl.multi_init
#define curl_multi_cleanup	pw_curl.multi_cleanup
#define curl_multi_setopt	pw_curl.multi_setopt
#define curl_multi_add_handle	pw_curl.multi_add_handle
#define curl_multi_remove_handle pw_curl.multi_remove_handle
#define curl_multi_perform	pw_curl.multi_perform
#define curl_multi_socket_action pw_curl.multi_socket_action
#define curl_multi_poll		pw_curl.multi_poll
#define curl_multi_info_read	pw_curl.multi_info_read
#define curl_multi_assign	pw_curl.multi_assign
#define curl_free		pw_curl.free
#define curl_url		pw_curl.url
#define curl_url_cleanup	pw_curl.url_cleanup
#define curl_url_set		pw_curl.url_set
#define curl_url_get		pw_curl.url_get
#define curl_url_strerror	pw_curl.url_strerror

/*
 * Load libcurl (once; later calls return at once) and initialise it.
 * Every module calls this before its first curl_* call.
 */
int	 pw_net_init(struct pw_err *err);
/*
 * The same, except that OpenSSL's configuration and messages are left
 * out until pw_net_tls(), which the caller calls before any transfer
 * that may use TLS: an https URL, one that may redirect, a proxy reached
 * over TLS. For a one-request command (pw fetch) that knows it makes no
 * TLS connection: the two are most of libcurl's initialisation, wasted
 * on a plain-HTTP fetch. One that knows it will calls pw_net_init: the
 * messages it then loads are OpenSSL's whole set.
 */
int	 pw_net_init_lazy(struct pw_err *err);
void	 pw_net_tls(void);

/* Point h at the proxy a, credentials apart from the URL. */
void	 pw_curl_use_proxy(CURL *h, const struct pw_addr *a);
/*
 * What went wrong, for a transfer that ended with rc after a status line
 * of status (0: none): curl_easy_strerror(rc), except where libcurl's
 * words mislead. Static storage.
 */
const char *pw_curl_strerror(CURLcode rc, long status);

#endif /* PW_NET_H */
