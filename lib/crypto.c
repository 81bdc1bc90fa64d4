/*
 * crypto.c -- the only module that speaks libsodium: the sealing key,
 * credential sealing (crypto_secretbox) and keyed identity tags.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"

struct pw_key {
	unsigned char	k[crypto_secretbox_KEYBYTES];
};

static int
crypto_init(struct pw_err *err)
{
	if (sodium_init() < 0)
		return pw_failf(err, PW_EFAIL, "libsodium: cannot initialise");
	return 0;
}

static int
key_from_hex(const char *hex, struct pw_key *k, const char *what,
    struct pw_err *err)
{
	size_t	n;

	if (sodium_hex2bin(k->k, sizeof k->k, hex, strlen(hex), NULL, &n,
	    NULL) != 0 || n != sizeof k->k)
		return pw_failf(err, PW_EUSAGE, "%s: not a key (want %zu hex "
		    "digits)", what, sizeof k->k * 2);
	return 0;
}

int
pw_crypto_key_check(const char *hex, struct pw_err *err)
{
	size_t	n = 2 * crypto_secretbox_KEYBYTES;

	if (hex == NULL || (strlen(hex) == n && strspn(hex,
	    "0123456789abcdefABCDEF") == n))
		return 0;
	return pw_failf(err, PW_EUSAGE, "PW_SECRET_KEY: not a key (want %zu "
	    "hex digits)", n);
}

/*
 * 0: the key is in k; 1: there is no such file; else an error. (Not
 * -errno: -ENOENT is PW_EUSAGE, the code for a file that holds no key.)
 */
static int
key_read(const char *file, struct pw_key *k, struct pw_err *err)
{
	char	buf[2 * crypto_secretbox_KEYBYTES + 2];
	ssize_t	n;
	int	fd, r;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 1;
		return pw_failf(err, PW_EFAIL, "%s: %s", file,
		    strerror(errno));
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		return pw_failf(err, PW_EFAIL, "%s: %s", file, strerror(errno));
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	r = key_from_hex(buf, k, file, err);
	sodium_memzero(buf, sizeof buf);
	return r;
}

/*
 * Make the key file. It is written under a temporary name and linked into
 * place, so that a concurrent pw never reads a half-written key: link()
 * either puts a whole file there or finds another process's whole file.
 */
static int
key_create(const char *file, struct pw_key *k, struct pw_err *err)
{
	char	 hex[2 * crypto_secretbox_KEYBYTES + 2];
	char	*dir = pw_dirname(file), *tmp;
	int	 fd, r, e;

	r = pw_mkdirs(dir, 0700, err);
	free(dir);
	if (r != 0)
		return r;
	crypto_secretbox_keygen(k->k);
	sodium_bin2hex(hex, sizeof hex, k->k, sizeof k->k);
	hex[2 * sizeof k->k] = '\n';
	tmp = pw_xasprintf("%s.%ld.tmp", file, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		sodium_memzero(hex, sizeof hex);
		r = pw_failf(err, PW_EFAIL, "%s: cannot create key file: %s",
		    file, strerror(errno));
		free(tmp);
		return r;
	}
	r = write(fd, hex, 2 * sizeof k->k + 1) ==
	    (ssize_t)(2 * sizeof k->k + 1) ? 0 : -1;
	if (fsync(fd) != 0)
		r = -1;
	close(fd);
	sodium_memzero(hex, sizeof hex);
	e = r == 0 && link(tmp, file) != 0 ? errno : 0;
	unlink(tmp);
	free(tmp);
	if (r != 0)
		return pw_failf(err, PW_EFAIL, "%s: cannot write key file",
		    file);
	if (e == EEXIST) {
		/* Another process made it first: use that one. */
		r = key_read(file, k, err);
		return r == 1 ? pw_failf(err, PW_EFAIL, "%s: key file "
		    "vanished while being made", file) : r;
	}
	if (e != 0)
		return pw_failf(err, PW_EFAIL, "%s: cannot create key file: %s",
		    file, strerror(e));
	return 0;
}

int
pw_crypto_key_load(const char *hex, const char *file, int create,
    struct pw_key **out, struct pw_err *err)
{
	struct pw_key	*k;
	int		 r;

	if ((r = crypto_init(err)) != 0)
		return r;
	k = sodium_malloc(sizeof *k);
	if (k == NULL)
		return pw_failf(err, PW_ENOMEM, "cannot allocate key");
	if (hex != NULL)
		r = key_from_hex(hex, k, "PW_SECRET_KEY", err);
	else {
		r = key_read(file, k, err);
		if (r == 1 && create)
			r = key_create(file, k, err);
		else if (r == 1)
			r = pw_failf(err, PW_ESTATE, "%s: key file missing: "
			    "cannot unseal credentials (set PW_SECRET_KEY or "
			    "restore the file)", file);
	}
	if (r != 0) {
		sodium_free(k);
		return r;
	}
	*out = k;
	return 0;
}

void
pw_crypto_key_free(struct pw_key *k)
{
	if (k != NULL)
		sodium_free(k);
}

/*
 * Nonces: 16 random bytes drawn once a process, then a count. Unique
 * under the key like random ones, without a getrandom(2) for each seal
 * (a warm of a list with passwords seals two a row). A child of fork(2)
 * draws its own bytes.
 */
static pthread_mutex_t	nonce_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t	nonce_once = PTHREAD_ONCE_INIT;
static unsigned char	nonce_base[crypto_secretbox_NONCEBYTES - 8];
static uint64_t		nonce_count;
static int		nonce_ready;

static void
nonce_child(void)
{
	pthread_mutex_init(&nonce_lock, NULL);
	nonce_ready = 0;
}

static void
nonce_setup(void)
{
	pthread_atfork(NULL, NULL, nonce_child);
}

static void
nonce_make(unsigned char n[crypto_secretbox_NONCEBYTES])
{
	uint64_t	c;

	pthread_once(&nonce_once, nonce_setup);
	pthread_mutex_lock(&nonce_lock);
	if (!nonce_ready) {
		randombytes_buf(nonce_base, sizeof nonce_base);
		nonce_count = 0;
		nonce_ready = 1;
	}
	c = nonce_count++;
	pthread_mutex_unlock(&nonce_lock);
	memcpy(n, nonce_base, sizeof nonce_base);
	memcpy(n + sizeof nonce_base, &c, sizeof c);
}

int
pw_crypto_seal(const struct pw_key *k, const void *p, size_t n,
    unsigned char **out, size_t *outlen, struct pw_err *err)
{
	size_t		 len = crypto_secretbox_NONCEBYTES +
	    crypto_secretbox_MACBYTES + n;
	unsigned char	*b = pw_xmalloc(len);

	(void)err;
	nonce_make(b);
	crypto_secretbox_easy(b + crypto_secretbox_NONCEBYTES, p, n, b, k->k);
	*out = b;
	*outlen = len;
	return 0;
}

int
pw_crypto_unseal(const struct pw_key *k, const unsigned char *p, size_t n,
    char **out, struct pw_err *err)
{
	size_t	 len;
	char	*s;

	if (n < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		return pw_failf(err, PW_ESTATE, "sealed credential is "
		    "truncated");
	len = n - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	s = pw_xmalloc(len + 1);
	if (crypto_secretbox_open_easy((unsigned char *)s,
	    p + crypto_secretbox_NONCEBYTES, n - crypto_secretbox_NONCEBYTES,
	    p, k->k) != 0) {
		free(s);
		return pw_failf(err, PW_ESTATE, "cannot unseal credential "
		    "(wrong key or damaged row)");
	}
	s[len] = '\0';
	*out = s;
	return 0;
}

void
pw_crypto_tag(const struct pw_key *k, const char *s, char hex[33])
{
	unsigned char	h[16];

	crypto_generichash(h, sizeof h, (const unsigned char *)s, strlen(s),
	    k->k, sizeof k->k);
	sodium_bin2hex(hex, 33, h, sizeof h);
}

void
pw_secret_free(char *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s, strlen(s));
	free(s);
}

int
pw_crypto_apikey_new(char key[PW_APIKEY_LEN + 1], struct pw_err *err)
{
	unsigned char	b[(PW_APIKEY_LEN - 3) / 2];
	int		r;

	if ((r = crypto_init(err)) != 0)
		return r;
	randombytes_buf(b, sizeof b);
	memcpy(key, "pw_", 3);
	sodium_bin2hex(key + 3, PW_APIKEY_LEN - 3 + 1, b, sizeof b);
	sodium_memzero(b, sizeof b);
	return 0;
}

/*
 * A plain (unkeyed) BLAKE2b-256 of the key. A key is 192 random bits, not
 * a password a person chose: nobody can guess one from its hash or try a
 * dictionary, so a slow password hash (Argon2) would only cost every
 * request milliseconds for nothing. Unkeyed, it does not depend on the
 * sealing key either: pw serve checks keys without $PW_SECRET_KEY, and
 * keys outlive a new sealing key.
 */
int
pw_crypto_apikey_hash(const char *key, size_t len,
    unsigned char hash[PW_APIKEY_HASH_BYTES], struct pw_err *err)
{
	int	r;

	if ((r = crypto_init(err)) != 0)
		return r;
	crypto_generichash(hash, PW_APIKEY_HASH_BYTES,
	    (const unsigned char *)key, len, NULL, 0);
	return 0;
}

int
pw_crypto_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

void
pw_crypto_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

/*
 * Gateway passwords: BLAKE2b-256 keyed with a random 16-byte salt. Not a
 * slow hash: the gateway checks a password on every connection, and
 * crypto_pwhash at tens of milliseconds each would stall its one thread.
 */
#define PASS_SALT	16
#define PASS_HASH	32
#define PASS_TAG	"$b2$"

static void
pass_hash(const unsigned char *salt, const char *pass,
    unsigned char h[PASS_HASH])
{
	crypto_generichash(h, PASS_HASH, (const unsigned char *)pass,
	    strlen(pass), salt, PASS_SALT);
}

int
pw_crypto_pass_hash(const char *pass, char **out, struct pw_err *err)
{
	unsigned char	salt[PASS_SALT], h[PASS_HASH];
	char		sx[2 * PASS_SALT + 1], hx[2 * PASS_HASH + 1];
	int		r;

	if ((r = crypto_init(err)) != 0)
		return r;
	randombytes_buf(salt, sizeof salt);
	pass_hash(salt, pass, h);
	sodium_bin2hex(sx, sizeof sx, salt, sizeof salt);
	sodium_bin2hex(hx, sizeof hx, h, sizeof h);
	*out = pw_xasprintf(PASS_TAG "%s$%s", sx, hx);
	return 0;
}

int
pw_crypto_pass_is_hash(const char *s)
{
	size_t	n = strlen(PASS_TAG);

	return strncmp(s, PASS_TAG, n) == 0 &&
	    strlen(s) == n + 2 * PASS_SALT + 1 + 2 * PASS_HASH &&
	    strspn(s + n, "0123456789abcdef") == 2 * PASS_SALT &&
	    s[n + 2 * PASS_SALT] == '$' &&
	    strspn(s + n + 2 * PASS_SALT + 1, "0123456789abcdef") ==
	    2 * PASS_HASH;
}

int
pw_crypto_pass_verify(const char *hash, const char *pass)
{
	unsigned char	salt[PASS_SALT], want[PASS_HASH], h[PASS_HASH];
	const char	*s = hash + strlen(PASS_TAG);
	int		ok;

	if (!pw_crypto_pass_is_hash(hash) || sodium_init() < 0 ||
	    sodium_hex2bin(salt, sizeof salt, s, 2 * PASS_SALT, NULL, NULL,
	    NULL) != 0 ||
	    sodium_hex2bin(want, sizeof want, s + 2 * PASS_SALT + 1,
	    2 * PASS_HASH, NULL, NULL, NULL) != 0)
		return 0;
	pass_hash(salt, pass, h);
	/* Digests of the whole password, compared over their full length. */
	ok = sodium_memcmp(h, want, sizeof h) == 0;
	sodium_memzero(h, sizeof h);
	return ok;
}
