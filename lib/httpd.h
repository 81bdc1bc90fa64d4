/*
 * httpd.h -- the libraries of pw serve, loaded when the server starts.
 *
 * libmicrohttpd brings GnuTLS and a dozen libraries with it, and cJSON is
 * needed by nothing else yet: linking either would put them on the start-up
 * path of every pw command. pw_httpd_init() loads both with dlopen when
 * pw serve starts, as lib/net.c does for libcurl; until then the MHD_* and
 * cJSON_* names below are pointers into tables that are still empty.
 * Include this, never <microhttpd.h> or <cjson/cJSON.h> themselves; only
 * api.c (the server) does.
 */
#ifndef PW_HTTPD_H
#define PW_HTTPD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <cjson/cJSON.h>

#include "internal.h"

struct pw_mhd_api {
	struct MHD_Daemon *(*start_daemon)(unsigned int, uint16_t,
			    MHD_AcceptPolicyCallback, void *,
			    MHD_AccessHandlerCallback, void *, ...);
	void		 (*stop_daemon)(struct MHD_Daemon *);
	enum MHD_Result	 (*add_connection)(struct MHD_Daemon *, MHD_socket,
			    const struct sockaddr *, socklen_t);
	struct MHD_Response *(*create_response_from_buffer)(size_t, void *,
			    enum MHD_ResponseMemoryMode);
	enum MHD_Result	 (*add_response_header)(struct MHD_Response *,
			    const char *, const char *);
	enum MHD_Result	 (*queue_response)(struct MHD_Connection *,
			    unsigned int, struct MHD_Response *);
	void		 (*destroy_response)(struct MHD_Response *);
	const char	*(*lookup_connection_value)(struct MHD_Connection *,
			    enum MHD_ValueKind, const char *);
	const union MHD_ConnectionInfo *(*get_connection_info)(
			    struct MHD_Connection *,
			    enum MHD_ConnectionInfoType, ...);
};

struct pw_cjson_api {
	cJSON		*(*ParseWithLength)(const char *, size_t);
	cJSON		*(*ParseWithLengthOpts)(const char *, size_t,
			    const char **, cJSON_bool);
	void		 (*Delete)(cJSON *);
	char		*(*PrintUnformatted)(const cJSON *);
	void		 (*free)(void *);
	cJSON		*(*CreateObject)(void);
	cJSON		*(*CreateArray)(void);
	cJSON		*(*CreateString)(const char *);
	cJSON		*(*CreateNumber)(double);
	cJSON		*(*CreateBool)(cJSON_bool);
	cJSON		*(*CreateNull)(void);
	cJSON_bool	 (*AddItemToObject)(cJSON *, const char *, cJSON *);
	cJSON_bool	 (*AddItemToArray)(cJSON *, cJSON *);
	cJSON		*(*GetObjectItemCaseSensitive)(const cJSON *,
			    const char *);
	cJSON		*(*CreateRaw)(const char *);
};

extern struct pw_mhd_api pw_mhd;
extern struct pw_cjson_api pw_cjson;

#define MHD_start_daemon		pw_mhd.start_daemon
#define MHD_stop_daemon			pw_mhd.stop_daemon
#define MHD_add_connection		pw_mhd.add_connection
#define MHD_create_response_from_buffer	pw_mhd.create_response_from_buffer
#define MHD_add_response_header		pw_mhd.add_response_header
#define MHD_queue_response		pw_mhd.queue_response
#define MHD_destroy_response		pw_mhd.destroy_response
#define MHD_lookup_connection_value	pw_mhd.lookup_connection_value
#define MHD_get_connection_info		pw_mhd.get_connection_info

#define cJSON_ParseWithLength		pw_cjson.ParseWithLength
#define cJSON_ParseWithLengthOpts	pw_cjson.ParseWithLengthOpts
#define cJSON_Delete			pw_cjson.Delete
#define cJSON_PrintUnformatted		pw_cjson.PrintUnformatted
#define cJSON_free			pw_cjson.free
#define cJSON_CreateObject		pw_cjson.CreateObject
#define cJSON_CreateArray		pw_cjson.CreateArray
#define cJSON_CreateString		pw_cjson.CreateString
#define cJSON_CreateNumber		pw_cjson.CreateNumber
#define cJSON_CreateBool		pw_cjson.CreateBool
#define cJSON_CreateNull		pw_cjson.CreateNull
#define cJSON_AddItemToObject		pw_cjson.AddItemToObject
#define cJSON_AddItemToArray		pw_cjson.AddItemToArray
#define cJSON_GetObjectItemCaseSensitive pw_cjson.GetObjectItemCaseSensitive
#define cJSON_CreateRaw			pw_cjson.CreateRaw

/*
 * Load libmicrohttpd and cJSON (once; later calls return at once). Not
 * thread-safe: the server calls it before it starts its threads.
 */
int	 pw_httpd_init(struct pw_err *err);
/* Load cJSON alone (for pw health's echo judge); pw_httpd_init does too. */
int	 pw_cjson_init(struct pw_err *err);

#endif /* PW_HTTPD_H */
