/*
 * fuzz_config.c -- libFuzzer target for the settings' value parsers
 * (lib/config.c, lib/err.c): integers, numbers, durations, durations in
 * milliseconds, rates, booleans, enumerations, URL lists, origins,
 * networks, Redis URLs and gateway users.
 *
 * The first byte picks a key of pw_config_keys() (or, past the table, a
 * name made of the input); the rest, to a NUL, is the value. Checked:
 *   - a value that passes has a stored form that passes again and stores
 *     the same (checking is idempotent), and no control character;
 *   - a refusal is PW_EUSAGE with a one-line message that names the key;
 *   - the password of a secret key (a Redis URL's, service.key, a gateway
 *     user's) is in no message and not in what pw config shows;
 *   - the primitive parsers agree with what they return: an integer, a
 *     duration, a rate formats back to what parses to the same value.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/internal.h"

#define MARK	"Zq9xPASSWORDx"

static void
die(const char *what, const char *key, const char *v, const char *got)
{
	fprintf(stderr, "fuzz_config: %s\n  key:   '%s'\n  value: '%s'\n"
	    "  got:   '%s'\n", what, key, v, got ? got : "(null)");
	abort();
}

static int
one_line(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/*
 * Is MARK in v once, where the key keeps a secret: anywhere in a secret
 * value, the password of a URL's user information, or a gateway user's?
 */
static int
is_secret(const struct pw_config_key *k, const char *v)
{
	const char	*m = strstr(v, MARK), *s;

	if (m == NULL || strstr(m + 1, MARK) != NULL)
		return 0;
	if (strcmp(k->name, "serve.gateway_users") == 0)
		return m > v && m[-1] == ':' && (m[strlen(MARK)] == ',' ||
		    m[strlen(MARK)] == '\0');
	if (k->secret == 0)
		return 0;
	if (strcmp(k->type, "string") != 0 || strstr(v, "://") == NULL)
		return 1;
	/* A URL: scheme://user:MARK@host, MARK the whole password. */
	s = strstr(v, "://") + 3;
	return m > s && m[-1] == ':' && m[strlen(MARK)] == '@' &&
	    strcspn(s, "/@") == (size_t)(m + strlen(MARK) - s);
}

static void
check_key(const struct pw_config_key *k, const char *v)
{
	struct pw_err	 err = { 0, "" };
	char		*canon = NULL, *again = NULL, *shown;
	int		 secret = is_secret(k, v);

	if (pw_config_check(k->name, v, &canon, &err) != 0) {
		if (err.code != PW_EUSAGE)
			die("refused, but not as a usage error", k->name, v,
			    err.msg);
		if (err.msg[0] == '\0' || strncmp(err.msg, k->name,
		    strlen(k->name)) != 0)
			die("message does not name the key", k->name, v,
			    err.msg);
		if (!one_line(err.msg))
			die("message is not one printable line", k->name, v,
			    err.msg);
		if (secret && strstr(err.msg, MARK) != NULL)
			die("a secret in a message", k->name, v, err.msg);
		return;
	}
	if (canon == NULL)
		die("passed without a stored form", k->name, v, NULL);
	if (!one_line(canon))
		die("a control character in the stored form", k->name, v,
		    canon);
	if (pw_config_check(k->name, canon, &again, &err) != 0)
		die("the stored form does not pass", k->name, canon, err.msg);
	if (strcmp(canon, again) != 0)
		die("checking the stored form changes it", k->name, canon,
		    again);
	if (secret && strcmp(k->name, "serve.gateway_users") == 0 &&
	    strstr(canon, MARK) != NULL)
		die("a gateway password stored in clear", k->name, v, canon);
	shown = pw_config_shown(k->name, canon);
	if (secret && strstr(shown, MARK) != NULL)
		die("a secret shown", k->name, canon, shown);
	free(shown);
	free(again);
	free(canon);
}

static void
check_unknown(const char *name)
{
	struct pw_err	 err = { 0, "" };
	char		*canon = NULL;

	if (pw_config_check(name, "1", &canon, &err) == 0) {
		for (const struct pw_config_key *k = pw_config_keys();
		    k->name != NULL; k++)
			if (strcmp(k->name, name) == 0) {
				free(canon);
				return;
			}
		die("an unknown key passes", name, "1", canon);
	}
	if (err.code != PW_EUSAGE || err.msg[0] == '\0')
		die("an unknown key refused oddly", name, "1", err.msg);
}

static void
check_primitives(const char *v)
{
	int64_t	i, j, w;
	double	d;
	char	buf[64];

	if (pw_parse_int(v, INT64_MIN, INT64_MAX, &i) == 0) {
		snprintf(buf, sizeof buf, "%lld", (long long)i);
		if (pw_parse_int(buf, INT64_MIN, INT64_MAX, &j) != 0 || i != j)
			die("an integer does not read back", "int", v, buf);
	}
	if (pw_parse_int(v, 1, 100, &i) == 0 && (i < 1 || i > 100))
		die("an integer out of its range", "int", v, NULL);
	if (pw_parse_double(v, -1e9, 1e9, &d) == 0 && !(d >= -1e9 && d <= 1e9))
		die("a number out of its range", "real", v, NULL);
	if (pw_parse_duration(v, &i) == 0) {
		if (i < 0)
			die("a negative duration", "duration", v, NULL);
		snprintf(buf, sizeof buf, "%llds", (long long)i);
		if (pw_parse_duration(buf, &j) != 0 || i != j)
			die("a duration does not read back", "duration", v,
			    buf);
	}
	if (pw_parse_ms(v, &i) == 0) {
		if (i < 0)
			die("a negative duration", "ms", v, NULL);
		snprintf(buf, sizeof buf, "%lldms", (long long)i);
		if (pw_parse_ms(buf, &j) != 0 || i != j)
			die("milliseconds do not read back", "ms", v, buf);
	}
	if (pw_parse_rate(v, &i, &w) == 0) {
		if (i == 0 ? w != 0 : (i < 1 || i > 1000000000 || w < 1000 ||
		    w > 86400000 || w % 1000 != 0))
			die("a rate out of range", "rate", v, NULL);
		snprintf(buf, sizeof buf, "%lld/%llds", (long long)i,
		    (long long)(w / 1000));
		if (i != 0) {
			int64_t w2;
			if (pw_parse_rate(buf, &j, &w2) != 0 || j != i ||
			    w2 != w)
				die("a rate does not read back", "rate", v,
				    buf);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct pw_config_key	*k = pw_config_keys();
	size_t				 nkeys = 0;
	char				*v;

	if (size < 1 || size > 4096)
		return 0;
	while (k[nkeys].name != NULL)
		nkeys++;
	v = pw_xstrndup((const char *)data + 1, size - 1);
	if (data[0] < nkeys)
		check_key(&k[data[0]], v);
	else if (data[0] < 2 * nkeys)
		check_key(&k[data[0] - nkeys], v);
	else
		check_unknown(v);
	check_primitives(v);
	free(v);
	return 0;
}
