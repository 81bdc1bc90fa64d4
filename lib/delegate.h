/*
 * delegate.h -- the service side of delegation: what pw serve answers on
 * POST /api/v1/proxy/request and POST /api/v1/proxy/feedback, kept apart
 * from the router in api.c, which only passes the parsed body in and the
 * result out in its envelope.
 */
#ifndef PW_DELEGATE_H
#define PW_DELEGATE_H

#include "httpd.h"

/* Why a request was refused: its status, code, message, and field. */
struct pw_dlg_fail {
	unsigned int	 status;
	const char	*code;		/* "VALIDATION_ERROR", ... */
	char		 field[96];	/* the field a 422 names, or "" */
	char		 msg[512];
};

/*
 * Each takes the request's JSON object and returns 200 with *data (the
 * caller's), or the status of a refusal with f filled; a refused request
 * changes nothing.
 */
unsigned int	pw_delegate_request(struct pw_ctx *ctx, const cJSON *body,
		    cJSON **data, struct pw_dlg_fail *f);
unsigned int	pw_delegate_feedback(struct pw_ctx *ctx, const cJSON *body,
		    cJSON **data, struct pw_dlg_fail *f);
/* The delegation counters of ctx's state file, in Prometheus' format. */
void		pw_delegate_prometheus(struct pw_ctx *ctx, struct pw_buf *b);

#endif /* PW_DELEGATE_H */
