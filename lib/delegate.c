/*
 * delegate.c -- the service side of delegation (see delegate.h): handing
 * a proxy to a client that asks for one, and taking the outcomes clients
 * report, which update the pool exactly as local outcomes do.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delegate.h"

#define CLIENT_ID_MAX	128
#define TARGET_MAX	2048
#define REGION_MAX	64
#define ERROR_MAX	1024
#define BATCH_MAX	1000

static unsigned int
refuse(struct pw_dlg_fail *f, unsigned int status, const char *code,
    const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static unsigned int
refuse(struct pw_dlg_fail *f, unsigned int status, const char *code,
    const char *field, const char *fmt, ...)
{
	va_list	ap;

	f->status = status;
	f->code = code;
	snprintf(f->field, sizeof f->field, "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof f->msg, fmt, ap);
	va_end(ap);
	return status;
}

static int
is_type(const cJSON *j, int type)
{
	return j != NULL && (j->type & 0xff) == type;
}

static const char *
type_name(const cJSON *j)
{
	switch (j->type & 0xff) {
	case cJSON_False:
	case cJSON_True:	return "a boolean";
	case cJSON_NULL:	return "null";
	case cJSON_Number:	return "a number";
	case cJSON_String:	return "a string";
	case cJSON_Array:	return "an array";
	case cJSON_Object:	return "an object";
	default:		return "invalid";
	}
}

static int
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/*
 * String member k of o: *out NULL when absent or null (an error when
 * required). 0, or the 422 status with f filled.
 */
static unsigned int
member_str(const cJSON *o, const char *k, const char *field, int required,
    size_t max, const char **out, struct pw_dlg_fail *f)
{
	const cJSON	*j = cJSON_GetObjectItemCaseSensitive(o, k);

	*out = NULL;
	if (j == NULL || is_type(j, cJSON_NULL)) {
		if (required)
			return refuse(f, 422, "VALIDATION_ERROR", field,
			    "%s: required", field);
		return 0;
	}
	if (!is_type(j, cJSON_String))
		return refuse(f, 422, "VALIDATION_ERROR", field,
		    "%s: want a string, not %s", field, type_name(j));
	if (strlen(j->valuestring) > max)
		return refuse(f, 422, "VALIDATION_ERROR", field,
		    "%s: longer than %zu characters", field, max);
	if (!printable(j->valuestring))
		return refuse(f, 422, "VALIDATION_ERROR", field,
		    "%s: contains a control character", field);
	*out = j->valuestring;
	return 0;
}

/*
 * Every member of the object o is one of keys (NULL-terminated): 0, or
 * the 422 status with f filled, naming the first that is not (inside
 * where, "" at the top) and the ones that may be.
 */
static unsigned int
only_members(const cJSON *o, const char *where, const char *const *keys,
    struct pw_dlg_fail *f)
{
	char	want[200] = "", field[sizeof f->field];
	size_t	i, n = 0;

	for (const cJSON *it = o->child; it != NULL; it = it->next) {
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(keys[i], it->string) == 0)
				break;
		if (keys[i] != NULL)
			continue;
		for (i = 0; keys[i] != NULL && n < sizeof want; i++)
			n += (size_t)snprintf(want + n, sizeof want - n,
			    "%s%s", i ? ", " : "", keys[i]);
		snprintf(field, sizeof field, "%s%s%.60s", where,
		    *where ? "." : "", it->string);
		return refuse(f, 422, "VALIDATION_ERROR", field,
		    "%s: unknown field (want %s)", field, want);
	}
	return 0;
}

static int
url_scheme_ok(const char *t)
{
	static const char *const s[] = { "http://", "https://", "ws://",
	    "wss://" };

	for (size_t i = 0; i < 4; i++)
		if (strncasecmp(t, s[i], strlen(s[i])) == 0 &&
		    t[strlen(s[i])] != '\0')
			return 1;
	return 0;
}

unsigned int
pw_delegate_request(struct pw_ctx *ctx, const cJSON *body, cJSON **data,
    struct pw_dlg_fail *f)
{
	struct pw_pick	 pk;
	struct pw_proxy	 p;
	const char	*cid, *target, *ct, *region;
	char		*url;
	cJSON		*d;
	int		 r;

	if (member_str(body, "client_id", "client_id", 1, CLIENT_ID_MAX,
	    &cid, f) || member_str(body, "target", "target", 1, TARGET_MAX,
	    &target, f) || member_str(body, "connection_type",
	    "connection_type", 0, 8, &ct, f) || member_str(body, "region",
	    "region", 0, REGION_MAX, &region, f))
		return f->status;
	if (*cid == '\0')
		return refuse(f, 422, "VALIDATION_ERROR", "client_id",
		    "client_id: empty");
	if (*target != '\0' && !url_scheme_ok(target)) {
		char *shown = pw_redact_url(target);

		refuse(f, 422, "VALIDATION_ERROR", "target", "target: '%.80s': "
		    "want an http, https, ws or wss URL", shown);
		free(shown);
		return f->status;
	}
	if (ct != NULL && strcmp(ct, "http") && strcmp(ct, "https") &&
	    strcmp(ct, "ws") && strcmp(ct, "wss"))
		return refuse(f, 422, "VALIDATION_ERROR", "connection_type",
		    "connection_type: '%s': want http, https, ws or wss", ct);
	if (region != NULL && *region == '\0')
		return refuse(f, 422, "VALIDATION_ERROR", "region",
		    "region: empty");
	memset(&pk, 0, sizeof pk);
	pw_filter_init(&pk.filter);
	pk.filter.region = region;
	pk.secrets = 1;
	if ((r = pw_pool_next(ctx, &pk, &p)) != 0) {
		if (r == PW_ENOPROXY)
			return refuse(f, 503, "PROXY_POOL_EMPTY", NULL, "%s",
			    ctx->err.msg);
		if (r == PW_EBUSY)
			return refuse(f, 503, "STATE_BUSY", NULL, "%s",
			    ctx->err.msg);
		return refuse(f, 500, "INTERNAL_ERROR", NULL, "%s",
		    ctx->err.msg);
	}
	if (pw_store_begin(ctx->store, &ctx->err) == 0) {
		if (pw_store_stat_add(ctx->store, "delegate.requests", 1,
		    &ctx->err) != 0 || pw_store_commit(ctx->store,
		    &ctx->err) != 0)
			pw_store_rollback(ctx->store);
	}
	url = pw_addr_format(&p.addr, PW_CREDS_SHOW);
	d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "proxy_url", cJSON_CreateString(url));
	cJSON_AddItemToObject(d, "proxy_id", cJSON_CreateNumber((double)p.id));
	cJSON_AddItemToObject(d, "strategy", cJSON_CreateString(
	    pw_config_get(ctx, "strategy", NULL)));
	cJSON_AddItemToObject(d, "ttl_seconds", cJSON_CreateNumber((double)
	    pw_config_int(ctx, "serve.delegate_ttl")));
	cJSON_AddItemToObject(d, "fallback_policy",
	    cJSON_CreateString("local"));
	pw_secret_free(url);
	pw_proxy_release(&p);
	*data = d;
	return 200;
}

/* One report, checked; where names it in messages ("reports[2]"). */
struct report {
	int64_t	proxy_id;
	int	success;
	double	latency_ms;
};

/* The members of one report, and of a batch. */
static const char *const report_keys[] = { "proxy_id", "success",
    "latency_ms", "error", "timestamp", NULL };
static const char *const batch_keys[] = { "client_id", "reports", NULL };

static unsigned int
report_check(const cJSON *o, const char *where, struct report *rep,
    struct pw_dlg_fail *f)
{
	const cJSON	*j;
	const char	*err;
	char		 field[96];

#define FIELD(k) (snprintf(field, sizeof field, "%s%s%s", where, \
	*where ? "." : "", k), field)
	if (!is_type(o, cJSON_Object))
		return refuse(f, 422, "VALIDATION_ERROR", where,
		    "%s: want an object, not %s", where, type_name(o));
	if (only_members(o, where, report_keys, f) != 0)
		return f->status;
	j = cJSON_GetObjectItemCaseSensitive(o, "proxy_id");
	if (j == NULL || !is_type(j, cJSON_Number) || j->valuedouble < 1 ||
	    j->valuedouble > 9007199254740991.0 ||
	    j->valuedouble != (double)(int64_t)j->valuedouble)
		return refuse(f, 422, "VALIDATION_ERROR", FIELD("proxy_id"),
		    "%s: want a proxy id (an integer from 1)", field);
	rep->proxy_id = (int64_t)j->valuedouble;
	j = cJSON_GetObjectItemCaseSensitive(o, "success");
	if (!is_type(j, cJSON_True) && !is_type(j, cJSON_False))
		return refuse(f, 422, "VALIDATION_ERROR", FIELD("success"),
		    "%s: want true or false", field);
	rep->success = is_type(j, cJSON_True);
	rep->latency_ms = -1;
	j = cJSON_GetObjectItemCaseSensitive(o, "latency_ms");
	if (j != NULL && !is_type(j, cJSON_NULL)) {
		if (!is_type(j, cJSON_Number) || !(j->valuedouble >= 0 &&
		    j->valuedouble <= 3.6e6))
			return refuse(f, 422, "VALIDATION_ERROR",
			    FIELD("latency_ms"), "%s: want milliseconds from "
			    "0 to 3600000", field);
		rep->latency_ms = j->valuedouble;
	}
	j = cJSON_GetObjectItemCaseSensitive(o, "timestamp");
	if (j != NULL && !is_type(j, cJSON_NULL) && (!is_type(j,
	    cJSON_Number) || !(j->valuedouble >= 0 &&
	    j->valuedouble < 1e11)))
		return refuse(f, 422, "VALIDATION_ERROR", FIELD("timestamp"),
		    "%s: want Unix time in seconds", field);
	if (member_str(o, "error", FIELD("error"), 0, ERROR_MAX, &err, f))
		return f->status;
#undef FIELD
	return 0;
}

unsigned int
pw_delegate_feedback(struct pw_ctx *ctx, const cJSON *body, cJSON **data,
    struct pw_dlg_fail *f)
{
	const cJSON	*list = cJSON_GetObjectItemCaseSensitive(body,
			    "reports"), *it;
	struct report	*reps;
	char		 where[32];
	size_t		 n = 0, i = 0;
	int64_t		 accepted = 0, unknown = 0;
	int		 r;
	cJSON		*d;

	if (list != NULL && !is_type(list, cJSON_Array))
		return refuse(f, 422, "VALIDATION_ERROR", "reports",
		    "reports: want an array, not %s", type_name(list));
	if (list != NULL) {
		if (only_members(body, "", batch_keys, f) != 0)
			return f->status;
		for (it = list->child; it != NULL; it = it->next)
			n++;
		if (n == 0 || n > BATCH_MAX)
			return refuse(f, 422, "VALIDATION_ERROR", "reports",
			    "reports: want 1 to %d reports", BATCH_MAX);
	} else
		n = 1;
	reps = pw_xcalloc(n, sizeof *reps);
	/* Every report is checked before any is applied. */
	if (list == NULL) {
		if (report_check(body, "", &reps[0], f) != 0)
			goto refused;
	} else {
		for (it = list->child; it != NULL; it = it->next, i++) {
			snprintf(where, sizeof where, "reports[%zu]", i);
			if (report_check(it, where, &reps[i], f) != 0)
				goto refused;
		}
	}
	if ((r = pw_store_begin(ctx->store, &ctx->err)) != 0)
		goto failed;
	for (i = 0; i < n; i++) {
		r = pw_store_proxy_report(ctx->store, reps[i].proxy_id,
		    reps[i].success ? PW_REPORT_OK : PW_REPORT_FAIL,
		    reps[i].latency_ms, pw_config_double(ctx,
		    "strategy.alpha"), pw_config_int(ctx,
		    "pool.failure_threshold"), pw_config_int(ctx,
		    "pool.cooldown"), pw_now(), &ctx->err);
		/* A proxy removed since is no error of the client's. */
		if (r == PW_ENOTFOUND) {
			unknown++;
			continue;
		}
		if (r != 0)
			break;
		accepted++;
	}
	if (r == 0 || r == PW_ENOTFOUND)
		r = pw_store_stat_add(ctx->store, "delegate.feedback",
		    accepted, &ctx->err);
	if (r != 0) {
		pw_store_rollback(ctx->store);
		goto failed;
	}
	if ((r = pw_store_commit(ctx->store, &ctx->err)) != 0)
		goto failed;
	free(reps);
	d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "accepted", cJSON_CreateNumber(
	    (double)accepted));
	cJSON_AddItemToObject(d, "unknown", cJSON_CreateNumber(
	    (double)unknown));
	*data = d;
	return 200;
failed:
	free(reps);
	return refuse(f, r == PW_EBUSY ? 503 : 500, r == PW_EBUSY ?
	    "STATE_BUSY" : "INTERNAL_ERROR", NULL, "%s", ctx->err.msg);
refused:
	free(reps);
	return f->status;
}

void
pw_delegate_prometheus(struct pw_ctx *ctx, struct pw_buf *b)
{
	struct pw_cache_stats	s;
	static const struct {
		const char	*name, *type, *help;
		size_t		 off;
	} m[] = {
#define M(n, t, h, f) { n, t, h, offsetof(struct pw_cache_stats, f) }
		M("pw_delegate_requests_total", "counter",
		    "Proxies handed to delegating clients.", dlg_requests),
		M("pw_delegate_feedback_total", "counter",
		    "Outcomes delegating clients reported.", dlg_feedback),
		M("pw_service_calls_total", "counter",
		    "Calls this pw made to a remote service.", svc_calls),
		M("pw_service_errors_total", "counter",
		    "Calls to a remote service that failed.", svc_errors),
		M("pw_service_cache_hits_total", "counter",
		    "Selections answered from the service cache.",
		    svc_cache_hits),
		M("pw_service_fallbacks_total", "counter",
		    "Selections that fell back to the local pool.",
		    svc_fallbacks),
		M("pw_service_breaker_opened_total", "counter",
		    "Circuit breakers that opened.", svc_breaker_opened),
		M("pw_service_breaker_half_opened_total", "counter",
		    "Circuit breakers that went half-open.",
		    svc_breaker_half_opened),
		M("pw_service_breaker_closed_total", "counter",
		    "Circuit breakers that closed again.", svc_breaker_closed),
		M("pw_service_outbox_depth", "gauge",
		    "Outcomes waiting to be sent to the service.",
		    svc_outbox_depth),
		M("pw_service_outbox_sent_total", "counter",
		    "Outcomes sent to the service.", svc_outbox_sent),
		M("pw_service_outbox_dropped_total", "counter",
		    "Outcomes dropped from a full outbox.", svc_outbox_dropped),
#undef M
	};

	if (pw_cache_stats(ctx, &s) != 0)
		return;
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
		pw_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n",
		    m[i].name, m[i].help, m[i].name, m[i].type, m[i].name,
		    (long long)*(const int64_t *)((const char *)&s +
		    m[i].off));
	pw_cache_stats_release(&s);
}
