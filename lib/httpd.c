/*
 * httpd.c -- libmicrohttpd and cJSON, loaded when pw serve starts.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

#include "httpd.h"

/* The sonames pw was built against. */
#define LIBMHD		"libmicrohttpd.so.12"
#define LIBCJSON	"libcjson.so.1"

struct pw_mhd_api pw_mhd;
struct pw_cjson_api pw_cjson;

struct sym {
	const char	*name;
	size_t		 off;
};

static const struct sym mhd_api[] = {
#define F(n, field) { n, offsetof(struct pw_mhd_api, field) }
	F("MHD_start_daemon", start_daemon),
	F("MHD_stop_daemon", stop_daemon),
	F("MHD_add_connection", add_connection),
	F("MHD_create_response_from_buffer", create_response_from_buffer),
	F("MHD_add_response_header", add_response_header),
	F("MHD_queue_response", queue_response),
	F("MHD_destroy_response", destroy_response),
	F("MHD_lookup_connection_value", lookup_connection_value),
	F("MHD_get_connection_info", get_connection_info),
#undef F
};

static const struct sym cjson_api[] = {
#define F(n, field) { n, offsetof(struct pw_cjson_api, field) }
	F("cJSON_ParseWithLength", ParseWithLength),
	F("cJSON_ParseWithLengthOpts", ParseWithLengthOpts),
	F("cJSON_Delete", Delete),
	F("cJSON_PrintUnformatted", PrintUnformatted),
	F("cJSON_free", free),
	F("cJSON_CreateObject", CreateObject),
	F("cJSON_CreateArray", CreateArray),
	F("cJSON_CreateString", CreateString),
	F("cJSON_CreateNumber", CreateNumber),
	F("cJSON_CreateBool", CreateBool),
	F("cJSON_CreateNull", CreateNull),
	F("cJSON_AddItemToObject", AddItemToObject),
	F("cJSON_AddItemToArray", AddItemToArray),
	F("cJSON_GetObjectItemCaseSensitive", GetObjectItemCaseSensitive),
	F("cJSON_CreateRaw", CreateRaw),
#undef F
};

/* Fill table from lib; never closed: the server uses it until exit. */
static int
load(const char *lib, const struct sym *syms, size_t n, void *table,
    const char *need, struct pw_err *err)
{
	void	*h, *sym;

	if ((h = dlopen(lib, RTLD_LAZY | RTLD_LOCAL)) == NULL)
		return pw_failf(err, PW_EFAIL, "cannot load %s: %s", lib,
		    dlerror());
	for (size_t i = 0; i < n; i++) {
		if ((sym = dlsym(h, syms[i].name)) == NULL)
			return pw_failf(err, PW_EFAIL, "%s: no %s (%s is "
			    "needed)", lib, syms[i].name, need);
		memcpy((char *)table + syms[i].off, &sym, sizeof sym);
	}
	return 0;
}

int
pw_cjson_init(struct pw_err *err)
{
	static int	done;
	int		r;

	if (done)
		return 0;
	if ((r = load(LIBCJSON, cjson_api, sizeof cjson_api /
	    sizeof cjson_api[0], &pw_cjson, "cJSON 1.7.13 or later", err)) != 0)
		return r;
	done = 1;
	return 0;
}

int
pw_httpd_init(struct pw_err *err)
{
	static int	done;
	int		r;

	if (done)
		return 0;
	if ((r = load(LIBMHD, mhd_api, sizeof mhd_api / sizeof mhd_api[0],
	    &pw_mhd, "libmicrohttpd 0.9.71 or later", err)) != 0 ||
	    (r = pw_cjson_init(err)) != 0)
		return r;
	done = 1;
	return 0;
}
