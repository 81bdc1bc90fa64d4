/*
 * unit.h -- what the cmocka unit tests share: a private temporary
 * directory per test, a sealed environment, and file helpers.
 *
 * Everything here is static inline, so a test file that uses only part
 * of it builds without unused-function warnings.
 */
#ifndef PW_UNIT_H
#define PW_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/internal.h"

/* A fixed sealing key for tests that need one. */
#define UNIT_KEY_HEX \
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

extern char **environ;

/* Clear every PW_* variable and the XDG directories before each test. */
static inline void
unit_env_clear(void)
{
	char	*name;
	int	 again = 1;

	while (again) {
		again = 0;
		for (char **e = environ; *e != NULL; e++) {
			if (strncmp(*e, "PW_", 3) != 0)
				continue;
			name = pw_xstrndup(*e, strcspn(*e, "="));
			unsetenv(name);
			free(name);
			again = 1;
			break;
		}
	}
	unsetenv("XDG_STATE_HOME");
	unsetenv("XDG_CONFIG_HOME");
}

/*
 * A fresh directory under $TMPDIR, with HOME pointing into it so that
 * nothing can reach the real home. The caller frees with unit_tmp_free.
 */
static inline char *
unit_tmp_new(void)
{
	const char	*base = getenv("TMPDIR");
	char		*dir, *home;

	dir = pw_xasprintf("%s/pw-unit.XXXXXX", base && *base ? base :
	    "/tmp");
	if (mkdtemp(dir) == NULL)
		fail_msg("mkdtemp: %s", dir);
	home = pw_xasprintf("%s/home", dir);
	if (mkdir(home, 0700) != 0)
		fail_msg("mkdir %s", home);
	setenv("HOME", home, 1);
	free(home);
	unit_env_clear();
	return dir;
}

static inline int
unit_rm_one(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	/* Give back whatever a test took away, so it can be removed. */
	if (flag == FTW_DP || flag == FTW_D)
		chmod(path, 0700);
	return remove(path);
}

static inline void
unit_tmp_free(char *dir)
{
	if (dir == NULL)
		return;
	chmod(dir, 0700);
	nftw(dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/* path joined under dir; caller frees. */
static inline char *
unit_path(const char *dir, const char *leaf)
{
	return pw_xasprintf("%s/%s", dir, leaf);
}

/* The whole file; *len gets its size. NULL when it cannot be read. */
static inline unsigned char *
unit_read(const char *path, size_t *len)
{
	struct pw_buf	b;
	char		chunk[4096];
	ssize_t		n;
	int		fd;

	if ((fd = open(path, O_RDONLY)) < 0)
		return NULL;
	pw_buf_init(&b);
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		pw_buf_add(&b, chunk, (size_t)n);
	close(fd);
	*len = b.len;
	return (unsigned char *)pw_buf_detach(&b);
}

static inline void
unit_write(const char *path, const void *p, size_t n)
{
	int	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* Permission bits of path, or -1 when it does not exist. */
static inline int
unit_mode(const char *path)
{
	struct stat	sb;

	if (stat(path, &sb) != 0)
		return -1;
	return (int)(sb.st_mode & 07777);
}

static inline int
unit_exists(const char *path)
{
	struct stat	sb;

	return lstat(path, &sb) == 0;
}

/* Does [p, p+n) contain the string s? */
static inline int
unit_contains(const unsigned char *p, size_t n, const char *s)
{
	return memmem(p, n, s, strlen(s)) != NULL;
}

#endif /* PW_UNIT_H */
