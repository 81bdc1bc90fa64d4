/*
 * wire.h -- what the gateway reads off the wire: HTTP proxy request heads,
 * HTTP response heads, HTTP/1.1 message framing, SOCKS5 handshakes and the
 * controls in a gateway user name. Pure functions over bytes (no sockets,
 * no allocation), so that each can be fuzzed alone.
 *
 * Every parser that takes a partial input returns 0 when it needs more
 * bytes, the number of bytes it consumed when the item is complete, and a
 * negative value when the input is bad.
 */
#ifndef PW_WIRE_H
#define PW_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pw.h"

/* Longest request or response head the gateway reads. */
#define PW_WIRE_HEAD_MAX	16384
/* Longest host name, user name or password it takes. */
#define PW_WIRE_NAME_MAX	255

/* An HTTP request to a proxy: CONNECT host:port, or absolute-form. */
struct pw_wire_req {
	int		 connect;	/* CONNECT; else a plain request */
	int		 head;		/* HEAD: the response has no body */
	char		 host[PW_WIRE_NAME_MAX + 1];	/* no brackets */
	int		 port;
	/* Offsets into the head: the request target, and its path part. */
	size_t		 target_off, target_len, path_off;
	/*
	 * The Proxy-Authorization and Proxy-Connection lines, CRLF
	 * included; len 0: none. Both are for the gateway, not the origin.
	 */
	size_t		 auth_off, auth_len, pconn_off, pconn_len;
	int		 has_auth;	/* Basic credentials were given */
	char		 user[PW_WIRE_NAME_MAX + 1];
	char		 pass[PW_WIRE_NAME_MAX + 1];
	int64_t		 content_length;	/* -1: none */
	int		 chunked;
	int		 keep_alive;	/* the client wants to send more */
	size_t		 head_len;
};

/*
 * Parse a request head at p[0..n). Returns head_len, 0 (more), or the
 * negated HTTP status to answer: -400 (malformed), -431 (head too long),
 * -501 (a method or scheme the gateway does not carry).
 */
int	 pw_wire_request(const char *p, size_t n, struct pw_wire_req *r);
/*
 * Whether p[0..n) has a line that ends in a bare LF, not CRLF. The
 * gateway refuses such a head at once (-400 from pw_wire_request): it
 * passes heads on as they came, and an upstream that reads LF otherwise
 * would see other headers (RFC 9112 2.2 lets a recipient take LF alone;
 * it does not make every recipient do so).
 */
int	 pw_wire_bare_lf(const char *p, size_t n);

/* An HTTP response head, as far as framing needs it. */
struct pw_wire_resp {
	int		 status;
	int64_t		 content_length;	/* -1: none */
	int		 chunked;
	int		 close;		/* Connection: close, or HTTP/1.0 */
	size_t		 head_len;
};
int	 pw_wire_response(const char *p, size_t n, struct pw_wire_resp *r);

/*
 * Where an HTTP message body ends. Initialise with the framing of the
 * head (length < 0 and not chunked: until the connection closes), then
 * feed what follows the head in any split. pw_wire_body_feed returns how
 * many of the n bytes belong to the body (the rest is the next message)
 * and sets *done when the body ended; -1 for a malformed chunked body.
 */
struct pw_wire_body {
	int		 state;
	uint64_t	 left;
	int		 until_close;
	int		 digits;	/* of the chunk size line */
};
void	 pw_wire_body_init(struct pw_wire_body *b, int chunked,
	    int64_t length);
/* Whether the body has ended (at once, for a body of length 0). */
int	 pw_wire_body_done(const struct pw_wire_body *b);
ssize_t	 pw_wire_body_feed(struct pw_wire_body *b, const char *p, size_t n,
	    int *done);

/* SOCKS5 (RFC 1928, RFC 1929). */
enum { PW_SOCKS5_NOAUTH = 0x00, PW_SOCKS5_USERPASS = 0x02 };
/* Greeting: *methods gets a bit (1 << method) for each method offered. */
int	 pw_socks5_greeting(const unsigned char *p, size_t n,
	    unsigned int *methods);
/* Username/password sub-negotiation. */
int	 pw_socks5_auth(const unsigned char *p, size_t n,
	    char user[PW_WIRE_NAME_MAX + 1], char pass[PW_WIRE_NAME_MAX + 1]);
/*
 * Request. *cmd gets the command; host the address as text (IPv6
 * without brackets). Returns the length, 0 (more), or the negated SOCKS5
 * reply code to refuse it with: -7 (command), -8 (address type), -1.
 */
int	 pw_socks5_request(const unsigned char *p, size_t n, int *cmd,
	    char host[PW_WIRE_NAME_MAX + 1], int *port);

/*
 * Controls in a gateway user name: "USER[-session-ID][-country-CC]
 * [-strategy-NAME]", in any order. user is the part before the first
 * control. PW_EUSAGE with the reason for an unknown control, a repeated
 * one, a bad country code or an empty value.
 */
struct pw_wire_user {
	char	user[PW_WIRE_NAME_MAX + 1];
	char	session[PW_WIRE_NAME_MAX + 1];	/* "": none */
	char	country[3];			/* "": none */
	char	strategy[PW_WIRE_NAME_MAX + 1];	/* "": the setting */
};
int	 pw_wire_user(const char *name, struct pw_wire_user *u,
	    struct pw_err *err);

/* Base64 of p[0..n) into b (for a Proxy-Authorization header). */
void	 pw_wire_base64(struct pw_buf *b, const void *p, size_t n);

#endif /* PW_WIRE_H */
