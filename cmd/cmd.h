/*
 * cmd.h -- what the subcommand files share: the command entry, the option
 * table, parsed arguments and output rendering.
 *
 * A command is data (struct pw_cmd): its options, argument bounds, usage
 * and what it needs from the store. The dispatcher in pw.c parses argv
 * against that data, prints usage, opens the store and only then calls
 * exec with a ready context. Help, the man-page check and the completions
 * all read the same table.
 */
#ifndef PW_CMD_H
#define PW_CMD_H

#include <stdio.h>

#include "../lib/pw.h"

/* Option flags. */
#define OPT_REPEAT	0x1	/* may be given more than once */
#define OPT_HIDDEN	0x2	/* not in help or completions */

struct pw_opt {
	const char	*lname;		/* long name, without "--" */
	int		 sname;		/* short letter, or 0 */
	const char	*arg;		/* argument name, or NULL for a flag */
	int		 flags;
	const char	*help;
};

/* Command flags. */
#define CMD_STORE_RO	0x01	/* open the state file to read */
#define CMD_STORE_RW	0x02	/* open the state file to write */
#define CMD_OUTPUT	0x04	/* accepts --json --jsonl --csv --plain */
#define CMD_HIDDEN	0x10	/* not in help or completions */

struct pw_cmdctx;
struct pw_args;

struct pw_cmd {
	const char		 *name;
	const char		 *summary;
	const char		 *usage;	/* after "pw NAME " */
	const struct pw_opt	 *opts;		/* ends with lname NULL */
	int			  min_args;
	int			  max_args;	/* -1: no limit */
	int			  flags;
	int			(*exec)(struct pw_cmdctx *);
	/*
	 * Verbs, NULL-terminated. With exec too, the command also runs
	 * itself when no verb follows (pw serve, pw serve keys ...).
	 */
	const struct pw_cmd *const *sub;
};

/* Parsed command line of one command. */
struct pw_args {
	const struct pw_opt	**opts;		/* every accepted option */
	int			  nopts;
	const char		**last;		/* last value by option */
	int			 *count;	/* times given by option */
	char			***all;		/* every value by option */
	int			**pos;		/* and where it was given */
	int			  argc;		/* positional arguments */
	char			**argv;
};

enum out_fmt { OUT_PLAIN, OUT_TABLE, OUT_JSON, OUT_JSONL, OUT_CSV };

struct pw_cmdctx {
	struct pw_ctx		*ctx;
	struct pw_args		*args;
	const struct pw_cmd	*cmd;
	const char		*path;		/* "pool add" */
	char			*state;		/* resolved state path */
	int			 fmt;
	int			 quiet;
	int			 verbose;
	int			 color;
	int			 show_secrets;
};

/* Argument access. */
const char	*arg_get(struct pw_args *a, const char *lname);
int		 arg_has(struct pw_args *a, const char *lname);
char	       **arg_all(struct pw_args *a, const char *lname, int *n);
/*
 * Where the k-th value of lname (as arg_all counts) was given: its index
 * in argv, to take two options' values in command-line order.
 */
int		 arg_pos(struct pw_args *a, const char *lname, int k);
int		 args_parse(struct pw_args *a, const struct pw_opt **opts,
		     int nopts, int argc, char **argv, struct pw_err *err);
void		 args_free(struct pw_args *a);

/* Record an error about usage of this command; returns PW_EUSAGE. */
/* The exit status of r: 0, a PW_E* code's, or r itself (22, ...). */
int		 cmd_exit_status(int r);
int		 cmd_usagef(struct pw_cmdctx *cc, const char *fmt, ...)
		     __attribute__((format(printf, 2, 3)));
/*
 * --source, --country, --region and --weight into m (borrowing the
 * arguments; the country's canonical form goes to cc_buf).
 */
int		 cmd_meta_opts(struct pw_cmdctx *cc, struct pw_meta *m,
		     char cc_buf[3]);
/*
 * The options a check shares with pw health (--url, --timeout,
 * --concurrency, --evict) into o, after pw_health_opts_init; PW_EUSAGE
 * with a message when one is bad. In cmd/health.c.
 */
int		 cmd_check_opts(struct pw_cmdctx *cc,
		     struct pw_health_opts *o);
/* The checks that fit the open-file limit (raised when it can be). */
int64_t		 cmd_fit_fd_limit(int64_t conc);
/* Parse an integer option; PW_EUSAGE with a message when bad. */
int		 cmd_int_opt(struct pw_cmdctx *cc, const char *lname,
		     int64_t min, int64_t max, int64_t *out);

/*
 * Output. Columns are declared once; each row gives one value per column
 * (NULL for none). Tables are buffered to size the columns; every other
 * format streams.
 */
enum col_type { COL_STR, COL_INT, COL_REAL, COL_BOOL, COL_TIME };

struct out_col {
	const char	*name;
	enum col_type	 type;
	int		 brief;		/* shown in table and plain output */
};

struct out;
struct out	*out_new(int fmt, const struct out_col *cols, int ncols,
		    int color);
void		 out_row(struct out *o, const char *const *vals);
void		 out_free(struct out *o);	/* flushes tables, ends json */
/* One record, shown as "key: value" lines or an object. */
void		 out_record(int fmt, const struct out_col *cols, int ncols,
		    const char *const *vals);
void		 out_json_str(FILE *f, const char *s);
void		 out_json_strn(FILE *f, const char *s, size_t n);
/*
 * One member of an object being built in b, after a comma unless first:
 * "name":value, value a number as written, a string (is_str) or, when
 * NULL, null. For pw fetch -w %{json}.
 */
void		 out_json_member(struct pw_buf *b, int first, const char *name,
		    const char *value, int is_str);
/* pw fetch --json: status, headers, body (text or base64), attempts. */
void		 out_fetch_json(FILE *f, const struct pw_fetch_result *res,
		    const char *hdrs, size_t hlen, const void *body,
		    size_t blen);
int		 out_isatty(void);

/* The commands. */
extern const struct pw_cmd cmd_pool_entry;
extern const struct pw_cmd cmd_config_entry;
extern const struct pw_cmd cmd_fetch_entry;
extern const struct pw_cmd cmd_health_entry;
extern const struct pw_cmd cmd_cache_entry;
extern const struct pw_cmd cmd_serve_entry;

#endif /* PW_CMD_H */
