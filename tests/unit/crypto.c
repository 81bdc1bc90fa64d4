/*
 * crypto.c -- unit tests for the sealing key, credential sealing and
 * keyed tags (lib/crypto.c).
 */
#include <sys/wait.h>

#include <ctype.h>
#include <unistd.h>

#include "unit.h"

#define KEY2_HEX \
	"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
#define NONCE_BYTES	24
#define MAC_BYTES	16

struct fix {
	char		*dir;
	struct pw_key	*key;
};

static int
setup(void **state)
{
	struct fix	*f = pw_xcalloc(1, sizeof *f);
	struct pw_err	 err = { 0 };

	f->dir = unit_tmp_new();
	if (pw_crypto_key_load(UNIT_KEY_HEX, NULL, 0, &f->key, &err) != 0)
		fail_msg("key: %s", err.msg);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	pw_crypto_key_free(f->key);
	unit_tmp_free(f->dir);
	free(f);
	return 0;
}

static struct pw_key *
key_hex(const char *hex)
{
	struct pw_key	*k = NULL;
	struct pw_err	 err = { 0 };

	if (pw_crypto_key_load(hex, NULL, 0, &k, &err) != 0)
		fail_msg("key '%s': %s", hex, err.msg);
	return k;
}

/* Seal s and unseal it again with k2; the result or NULL. */
static char *
round_trip(const struct pw_key *k1, const struct pw_key *k2, const char *s)
{
	unsigned char	*box;
	size_t		 n;
	char		*out = NULL;
	struct pw_err	 err = { 0 };

	assert_int_equal(pw_crypto_seal(k1, s, strlen(s), &box, &n, &err), 0);
	if (pw_crypto_unseal(k2, box, n, &out, &err) != 0)
		out = NULL;
	free(box);
	return out;
}

/* ----------------------------------------------------------------- key */

static void
test_key_from_hex(void **state)
{
	struct pw_key	*k = key_hex(UNIT_KEY_HEX), *u;
	char		*s, up[65];

	s = round_trip(k, k, "secret");
	assert_string_equal(s, "secret");
	pw_secret_free(s);

	/* Upper-case hex is the same key. */
	for (int i = 0; i < 64; i++)
		up[i] = (char)toupper((unsigned char)UNIT_KEY_HEX[i]);
	up[64] = '\0';
	u = key_hex(up);
	s = round_trip(k, u, "secret");
	assert_string_equal(s, "secret");
	pw_secret_free(s);
	pw_crypto_key_free(u);
	pw_crypto_key_free(k);
}

static void
check_bad_hex(const char *hex)
{
	struct pw_key	*k = (struct pw_key *)&k;
	struct pw_err	 err = { 0 };

	if (pw_crypto_key_load(hex, NULL, 0, &k, &err) != PW_EUSAGE)
		fail_msg("'%s': accepted as a key", hex);
	assert_string_equal(err.msg, "PW_SECRET_KEY: not a key (want 64 hex "
	    "digits)");
	assert_ptr_equal(k, (struct pw_key *)&k);
}

static void
test_key_bad_hex(void **state)
{
	check_bad_hex("");
	check_bad_hex("00");
	/* One digit short, one digit over, one byte over. */
	check_bad_hex("000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1");
	check_bad_hex(UNIT_KEY_HEX "2");
	check_bad_hex(UNIT_KEY_HEX "20");
	check_bad_hex("g00102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1");
	check_bad_hex("000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1g");
	check_bad_hex(UNIT_KEY_HEX "\n");
	check_bad_hex(" " UNIT_KEY_HEX);
	check_bad_hex("0x0102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f");
}

static void
test_key_file_created_0600(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*k1 = NULL, *k2 = NULL;
	struct pw_err	 err = { 0 };
	char		*dir = unit_path(f->dir, "cfg/pw");
	char		*file = unit_path(dir, "key");
	unsigned char	*text;
	size_t		 n;
	char		*s;

	assert_int_equal(pw_crypto_key_load(NULL, file, 1, &k1, &err), 0);
	assert_int_equal(unit_mode(file), 0600);
	assert_int_equal(unit_mode(dir), 0700);
	/* 64 hex digits and a newline. */
	text = unit_read(file, &n);
	assert_non_null(text);
	assert_int_equal(n, 65);
	assert_int_equal(text[64], '\n');
	for (int i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", text[i]));
	free(text);

	/* Loading it again gives the same key. */
	assert_int_equal(pw_crypto_key_load(NULL, file, 0, &k2, &err), 0);
	s = round_trip(k1, k2, "p@ss");
	assert_string_equal(s, "p@ss");
	pw_secret_free(s);
	pw_crypto_key_free(k2);

	/* And create does not replace it. */
	assert_int_equal(pw_crypto_key_load(NULL, file, 1, &k2, &err), 0);
	s = round_trip(k1, k2, "p@ss");
	assert_string_equal(s, "p@ss");
	pw_secret_free(s);
	pw_crypto_key_free(k2);
	pw_crypto_key_free(k1);
	free(file);
	free(dir);
}

static void
test_key_file_read(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*k = NULL;
	struct pw_err	 err = { 0 };
	char		*file = unit_path(f->dir, "key");
	char		*s;

	/* With a newline, a CR LF, or nothing after the digits. */
	static const char *const forms[] = {
		UNIT_KEY_HEX "\n", UNIT_KEY_HEX "\r\n", UNIT_KEY_HEX,
	};
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		unit_write(file, forms[i], strlen(forms[i]));
		assert_int_equal(pw_crypto_key_load(NULL, file, 0, &k, &err),
		    0);
		s = round_trip(f->key, k, "x");
		assert_string_equal(s, "x");
		pw_secret_free(s);
		pw_crypto_key_free(k);
	}
	free(file);
}

static void
test_key_hex_wins_over_file(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*k = NULL;
	struct pw_err	 err = { 0 };
	char		*file = unit_path(f->dir, "key");
	char		*s;

	unit_write(file, KEY2_HEX "\n", 65);
	assert_int_equal(pw_crypto_key_load(UNIT_KEY_HEX, file, 1, &k, &err),
	    0);
	s = round_trip(f->key, k, "x");
	assert_string_equal(s, "x");
	pw_secret_free(s);
	pw_crypto_key_free(k);
	free(file);
}

static void
test_key_file_missing(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*k = (struct pw_key *)&k;
	struct pw_err	 err = { 0 };
	char		*file = unit_path(f->dir, "nokey/key");
	char		*want;

	assert_int_equal(pw_crypto_key_load(NULL, file, 0, &k, &err),
	    PW_ESTATE);
	want = pw_xasprintf("%s: key file missing: cannot unseal credentials "
	    "(set PW_SECRET_KEY or restore the file)", file);
	assert_string_equal(err.msg, want);
	assert_ptr_equal(k, (struct pw_key *)&k);
	/* Neither the file nor its directory was made. */
	assert_false(unit_exists(file));
	free(want);
	want = unit_path(f->dir, "nokey");
	assert_false(unit_exists(want));
	free(want);
	free(file);
}

/* A key file that holds no key is an error, and is never replaced. */
static void
test_key_file_bad(void **state)
{
	static const char *const bad[] = {
		"", "\n", "not a key\n", UNIT_KEY_HEX "00\n",
		"000102030405060708090a0b0c0d0e0f\n",
	};
	struct fix	*f = *state;
	struct pw_key	*k = (struct pw_key *)&k;
	struct pw_err	 err;
	char		*file = unit_path(f->dir, "key"), *want;
	unsigned char	*text;
	size_t		 n;

	want = pw_xasprintf("%s: not a key (want 64 hex digits)", file);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		unit_write(file, bad[i], strlen(bad[i]));
		for (int create = 0; create <= 1; create++) {
			memset(&err, 0, sizeof err);
			if (pw_crypto_key_load(NULL, file, create, &k, &err) !=
			    PW_EUSAGE)
				fail_msg("'%s' (create %d): %d %s", bad[i],
				    create, err.code, err.msg);
			assert_string_equal(err.msg, want);
			assert_ptr_equal(k, (struct pw_key *)&k);
			text = unit_read(file, &n);
			assert_int_equal(n, strlen(bad[i]));
			assert_memory_equal(text, bad[i], n);
			free(text);
		}
	}
	free(want);
	free(file);
}

static void
test_key_file_is_a_directory(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*k = (struct pw_key *)&k;
	struct pw_err	 err = { 0 };
	char		*file = unit_path(f->dir, "key"), *want;

	assert_int_equal(mkdir(file, 0700), 0);
	assert_int_equal(pw_crypto_key_load(NULL, file, 1, &k, &err),
	    PW_EFAIL);
	want = pw_xasprintf("%s: Is a directory", file);
	assert_string_equal(err.msg, want);
	assert_ptr_equal(k, (struct pw_key *)&k);
	free(want);
	free(file);
}

static void
test_key_path_through_a_file(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*k = (struct pw_key *)&k;
	struct pw_err	 err = { 0 };
	char		*plain = unit_path(f->dir, "plain");
	char		*file = unit_path(f->dir, "plain/pw/key"), *want;

	unit_write(plain, "x", 1);
	assert_int_equal(pw_crypto_key_load(NULL, file, 1, &k, &err),
	    PW_EFAIL);
	want = pw_xasprintf("%s: Not a directory", file);
	assert_string_equal(err.msg, want);
	assert_ptr_equal(k, (struct pw_key *)&k);
	free(want);
	free(file);
	free(plain);
}

static void
test_key_file_cannot_be_created(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*k = (struct pw_key *)&k;
	struct pw_err	 err = { 0 };
	char		*link = unit_path(f->dir, "dangling");
	char		*file = unit_path(link, "key"), *want, *gone;

	/* The directory is a link to nowhere: mkdir -p is content, open not. */
	gone = unit_path(f->dir, "gone");
	assert_int_equal(symlink(gone, link), 0);
	assert_int_equal(pw_crypto_key_load(NULL, file, 1, &k, &err),
	    PW_EFAIL);
	want = pw_xasprintf("%s: cannot create key file: No such file or "
	    "directory", file);
	assert_string_equal(err.msg, want);
	assert_ptr_equal(k, (struct pw_key *)&k);
	assert_false(unit_exists(gone));
	free(want);
	free(gone);
	free(file);
	free(link);
}

/* ------------------------------------------------------------ sealing */

static void
test_seal_round_trip(void **state)
{
	struct fix	*f = *state;
	static const char *const in[] = {
		"", "p", "pässwörd", "with spaces and : @ / %",
		"a much longer password, well beyond one block of anything "
		"the cipher might care about, to be sure of it",
	};
	char		*s;

	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		s = round_trip(f->key, f->key, in[i]);
		assert_non_null(s);
		assert_string_equal(s, in[i]);
		pw_secret_free(s);
	}
}

static void
test_seal_layout(void **state)
{
	struct fix	*f = *state;
	unsigned char	*a, *b;
	size_t		 na, nb;
	struct pw_err	 err = { 0 };

	assert_int_equal(pw_crypto_seal(f->key, "hunter2", 7, &a, &na, &err),
	    0);
	assert_int_equal(pw_crypto_seal(f->key, "hunter2", 7, &b, &nb, &err),
	    0);
	/* nonce || MAC || ciphertext */
	assert_int_equal(na, NONCE_BYTES + MAC_BYTES + 7);
	assert_int_equal(nb, na);
	/* A fresh nonce each time: the same secret never seals alike. */
	assert_memory_not_equal(a, b, NONCE_BYTES);
	assert_memory_not_equal(a + NONCE_BYTES, b + NONCE_BYTES,
	    na - NONCE_BYTES);
	assert_false(unit_contains(a, na, "hunter2"));
	free(a);
	free(b);
}

/*
 * Nonces are a per-process random part and a count: a child of fork(2)
 * must not count on from its parent's, or both would seal with the same
 * nonces. Three seals each side; no nonce seen twice.
 */
static void
test_seal_nonce_fork(void **state)
{
	struct fix	*f = *state;
	unsigned char	 n[6][NONCE_BYTES], *b;
	size_t		 nb;
	struct pw_err	 err = { 0 };
	int		 fd[2], status;
	pid_t		 pid;

	assert_int_equal(pw_crypto_seal(f->key, "x", 1, &b, &nb, &err), 0);
	free(b);
	assert_int_equal(pipe(fd), 0);
	if ((pid = fork()) == 0) {
		for (int i = 0; i < 3; i++) {
			if (pw_crypto_seal(f->key, "x", 1, &b, &nb,
			    &err) != 0 ||
			    write(fd[1], b, NONCE_BYTES) != NONCE_BYTES)
				_exit(1);
			free(b);
		}
		_exit(0);
	}
	assert_true(pid > 0);
	close(fd[1]);
	for (int i = 3; i < 6; i++) {
		assert_int_equal(pw_crypto_seal(f->key, "x", 1, &b, &nb, &err),
		    0);
		memcpy(n[i], b, NONCE_BYTES);
		free(b);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(read(fd[0], n[i], NONCE_BYTES), NONCE_BYTES);
	close(fd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < 6; i++)
		for (int j = i + 1; j < 6; j++)
			assert_memory_not_equal(n[i], n[j], NONCE_BYTES);
}

static void
test_unseal_detects_tampering(void **state)
{
	struct fix	*f = *state;
	unsigned char	*box;
	size_t		 n;
	char		*out = (char *)&out;
	struct pw_err	 err;

	assert_int_equal(pw_crypto_seal(f->key, "secret", 6, &box, &n, &err),
	    0);
	/* Flip one bit of each byte in turn: nonce, MAC and ciphertext. */
	for (size_t i = 0; i < n; i++) {
		box[i] ^= 0x01;
		memset(&err, 0, sizeof err);
		assert_int_equal(pw_crypto_unseal(f->key, box, n, &out, &err),
		    PW_ESTATE);
		assert_string_equal(err.msg, "cannot unseal credential (wrong "
		    "key or damaged row)");
		assert_ptr_equal(out, (char *)&out);
		box[i] ^= 0x01;
	}
	/* Restored, it opens again. */
	assert_int_equal(pw_crypto_unseal(f->key, box, n, &out, &err), 0);
	assert_string_equal(out, "secret");
	pw_secret_free(out);
	/* One byte short is damage too. */
	out = (char *)&out;
	assert_int_equal(pw_crypto_unseal(f->key, box, n - 1, &out, &err),
	    PW_ESTATE);
	assert_ptr_equal(out, (char *)&out);
	free(box);
}

static void
test_unseal_truncated(void **state)
{
	struct fix	*f = *state;
	unsigned char	 box[NONCE_BYTES + MAC_BYTES] = { 0 };
	char		*out = (char *)&out;
	struct pw_err	 err = { 0 };

	assert_int_equal(pw_crypto_unseal(f->key, box, sizeof box - 1, &out,
	    &err), PW_ESTATE);
	assert_string_equal(err.msg, "sealed credential is truncated");
	assert_int_equal(pw_crypto_unseal(f->key, box, 0, &out, &err),
	    PW_ESTATE);
	assert_string_equal(err.msg, "sealed credential is truncated");
	/* Exactly nonce and MAC is an empty box, and this one is forged. */
	assert_int_equal(pw_crypto_unseal(f->key, box, sizeof box, &out,
	    &err), PW_ESTATE);
	assert_string_equal(err.msg, "cannot unseal credential (wrong key or "
	    "damaged row)");
	assert_ptr_equal(out, (char *)&out);
}

static void
test_unseal_wrong_key(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*k2 = key_hex(KEY2_HEX);

	assert_null(round_trip(f->key, k2, "secret"));
	assert_null(round_trip(k2, f->key, "secret"));
	pw_crypto_key_free(k2);
}

/* ---------------------------------------------------------------- tags */

static void
test_tag_known_answer(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*k2 = key_hex(KEY2_HEX);
	char		 hex[33];

	/* BLAKE2b-128 keyed with the key, as hashlib.blake2b computes it. */
	pw_crypto_tag(f->key, "alice", hex);
	assert_string_equal(hex, "c6ea27646ae852a72f3e59cb7753f22b");
	pw_crypto_tag(f->key, "", hex);
	assert_string_equal(hex, "3daf97bce7888fd59773c66bf647459c");
	pw_crypto_tag(k2, "alice", hex);
	assert_string_equal(hex, "9a2a4a5bc705d7cf2d23267e20231595");
	pw_crypto_key_free(k2);
}

static void
test_tag_deterministic_and_keyed(void **state)
{
	struct fix	*f = *state;
	struct pw_key	*same = key_hex(UNIT_KEY_HEX);
	struct pw_key	*other = key_hex(KEY2_HEX);
	char		 a[33], b[33], c[33], d[33];

	pw_crypto_tag(f->key, "user", a);
	pw_crypto_tag(same, "user", b);
	pw_crypto_tag(other, "user", c);
	pw_crypto_tag(f->key, "User", d);
	assert_int_equal(strlen(a), 32);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_not_equal(a, d);
	assert_null(strstr(a, "user"));
	pw_crypto_key_free(same);
	pw_crypto_key_free(other);
}

static void
test_secret_free(void **state)
{
	pw_secret_free(NULL);
	pw_secret_free(pw_xstrdup("x"));
	pw_crypto_key_free(NULL);
}

/* ---------------------------------------------------- the ctx helper */

static void
test_ctx_key_from_env(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	 ctx = { 0 };
	char		*s, *xdg = unit_path(f->dir, "xdg"), *file;

	setenv("PW_SECRET_KEY", KEY2_HEX, 1);
	setenv("XDG_CONFIG_HOME", xdg, 1);
	assert_int_equal(pw_ctx_key(&ctx, 1), 0);
	assert_non_null(ctx.key);
	s = round_trip(ctx.key, ctx.key, "x");
	assert_string_equal(s, "x");
	pw_secret_free(s);
	/* The environment's key, and no key file was made. */
	assert_null(round_trip(f->key, ctx.key, "x"));
	file = unit_path(xdg, "pw/key");
	assert_false(unit_exists(file));
	free(file);

	/* Loaded once: a later change of the environment does not count. */
	setenv("PW_SECRET_KEY", "junk", 1);
	assert_int_equal(pw_ctx_key(&ctx, 0), 0);
	pw_close(&ctx);
	free(xdg);
}

static void
test_ctx_key_bad_env(void **state)
{
	struct pw_ctx	ctx = { 0 };

	setenv("PW_SECRET_KEY", "abc", 1);
	assert_int_equal(pw_ctx_key(&ctx, 1), PW_EUSAGE);
	assert_string_equal(ctx.err.msg, "PW_SECRET_KEY: not a key (want 64 "
	    "hex digits)");
	assert_null(ctx.key);
	/* Empty is unset: the key file is used. */
	setenv("PW_SECRET_KEY", "", 1);
	assert_int_equal(pw_ctx_key(&ctx, 1), 0);
	assert_non_null(ctx.key);
	pw_close(&ctx);
}

static void
test_ctx_key_file_under_xdg(void **state)
{
	struct fix	*f = *state;
	struct pw_ctx	 ctx = { 0 };
	char		*xdg = unit_path(f->dir, "xdg"), *file, *home;

	setenv("XDG_CONFIG_HOME", xdg, 1);
	file = unit_path(xdg, "pw/key");
	assert_int_equal(pw_ctx_key(&ctx, 0), PW_ESTATE);
	assert_false(unit_exists(file));
	assert_int_equal(pw_ctx_key(&ctx, 1), 0);
	assert_int_equal(unit_mode(file), 0600);
	pw_close(&ctx);
	free(file);

	/* Without XDG_CONFIG_HOME: ~/.config/pw/key. */
	unsetenv("XDG_CONFIG_HOME");
	home = getenv("HOME");
	file = pw_xasprintf("%s/.config/pw/key", home);
	assert_int_equal(pw_ctx_key(&ctx, 1), 0);
	assert_int_equal(unit_mode(file), 0600);
	pw_close(&ctx);
	free(file);
	free(xdg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_key_from_hex),
		T(test_key_bad_hex),
		T(test_key_file_created_0600),
		T(test_key_file_read),
		T(test_key_hex_wins_over_file),
		T(test_key_file_missing),
		T(test_key_file_bad),
		T(test_key_file_is_a_directory),
		T(test_key_path_through_a_file),
		T(test_key_file_cannot_be_created),
		T(test_seal_round_trip),
		T(test_seal_layout),
		T(test_seal_nonce_fork),
		T(test_unseal_detects_tampering),
		T(test_unseal_truncated),
		T(test_unseal_wrong_key),
		T(test_tag_known_answer),
		T(test_tag_deterministic_and_keyed),
		T(test_secret_free),
		T(test_ctx_key_from_env),
		T(test_ctx_key_bad_env),
		T(test_ctx_key_file_under_xdg),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
