#!/usr/bin/env bats
# docs.bats -- the command table, the man pages, the completions and the
# README must not drift apart. Each is checked against the binary: its
# command table ("pw __dump"), its settings ("pw config list") and its
# exit statuses ("pw --help"). The completions are driven for real: bash
# through its completion function, zsh on a pseudo-terminal, fish with
# "complete -C".

bats_require_minimum_version 1.5.0

load helper

# The command table and the parsed man pages are read once per file.
setup_file() {
	export DOCS_CACHE=$BATS_FILE_TMPDIR/docs
	mkdir -p "$DOCS_CACHE"
	# A field without a value may be printed as a NUL byte: drop them.
	"$PW_BUILD/pw" __dump | tr -d '\000' >"$DOCS_CACHE/dump"
}

setup() {
	setup_pw
	ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	MAN=$ROOT/man
	COMP=$ROOT/completions
}

# same ACTUAL EXPECTED: equal, or show both and fail.
same() {
	if [ "$1" != "$2" ]; then
		printf -- '--- expected\n%s\n--- actual\n%s\n---\n' "$2" "$1"
		return 1
	fi
}

# words W...: the words, sorted, one a line.
words() {
	printf '%s\n' "$@" | LC_ALL=C sort
}

# ------------------------------------------------------------ the binary

# The command table, as "pw __dump" prints it.
dump() {
	cat "$DOCS_CACHE/dump"
}

# children PARENT: the names one level below PARENT ("" for the top).
children() {
	dump | awk -F'\t' -v p="$1" '$1 == "command" {
		if (p == "" && index($2, " ") == 0) print $2
		else if (p != "" && index($2, p " ") == 1 &&
		    index(substr($2, length(p) + 2), " ") == 0)
			print substr($2, length(p) + 2)
	}' | LC_ALL=C sort
}

# paths: every command path ("pool", "pool add", ...).
paths() {
	dump | awk -F'\t' '$1 == "command" { print $2 }'
}

# leaf_paths: the command paths that run: those with options (every one
# that runs has --help), whether or not verbs are below them (pw serve).
leaf_paths() {
	dump | awk -F'\t' '$1 == "option" && $2 != "" && !seen[$2]++ {
	    print $2 }'
}

# options PATH: "long|short|arg" of each option of PATH ("" for the
# global options); short and arg may be empty.
options() {
	dump | awk -F'\t' -v p="$1" '$1 == "option" && $2 == p {
		s = $4; gsub(/ /, "", s); print $3 "|" s "|" $5 }'
}

longs() {
	options "$1" | cut -d'|' -f1 | LC_ALL=C sort
}

# has LIST WORD: WORD is a line of LIST.
has() {
	[[ $'\n'$1$'\n' == *$'\n'"$2"$'\n'* ]]
}

# help_of PATH LONG: the help text of an option.
help_of() {
	dump | awk -F'\t' -v p="$1" -v o="$2" \
	    '$1 == "option" && $2 == p && $3 == o { print $6 }'
}

# choices TEXT: the words of "a, b, c or d" (a choice in prose, such as
# "a plugin's name", is left out).
choices() {
	echo "$1" | sed 's/ or /, /g' | awk -F', ' '{
		for (i = 1; i <= NF; i++) if ($i ~ /^[a-z0-9-]+$/) print $i }' |
	    LC_ALL=C sort
}

keys() {
	pw config list --plain | cut -f1 | LC_ALL=C sort
}

exit_codes() {
	pw --help | sed -n '/^exit status:/,/^$/s/^  \([0-9][0-9]*\) .*/\1/p'
}

# ------------------------------------------------------------ man pages

# roff FILE: the page as text lines, macros kept as markers: escapes
# resolved (\- is -, fonts dropped), the arguments of font macros joined
# (".BR a b" is "ab", ".B a b" is "a b"), comments dropped.
roff() {
	local c
	c=$DOCS_CACHE/$(basename "$1").txt
	if [ ! -e "$c" ]; then
		roff_parse "$1" >"$c.$$" && mv "$c.$$" "$c" || return
	fi
	cat "$c"
}

roff_parse() {
	awk '
	function unescape(s) {
		gsub(/\\f(\[[A-Z]*\]|\(..|[BIRP])/, "", s)
		gsub(/\\-/, "-", s)
		gsub(/\\[&%]/, "", s)
		gsub(/\\\(lq|\\\(rq|\\\(dq/, "\"", s)
		gsub(/\\e/, "\\", s)
		gsub(/\\ /, " ", s)
		return s
	}
	# The arguments of a macro line: quoted or white-space separated.
	function args(s, a,    n, q, c, w, i) {
		n = 0; q = 0; w = ""; c = 0
		for (i = 1; i <= length(s); i++) {
			ch = substr(s, i, 1)
			if (ch == "\"") { q = !q; c = 1; continue }
			if (!q && (ch == " " || ch == "\t")) {
				if (c) { a[++n] = w; w = ""; c = 0 }
				continue
			}
			w = w ch; c = 1
		}
		if (c) a[++n] = w
		return n
	}
	/^\.\\"/ { next }
	/^\.(B|I|SM|SH|SS)( |$)/ {
		m = $1; rest = substr($0, length(m) + 2)
		n = args(rest, a); out = ""
		for (i = 1; i <= n; i++) out = out (i > 1 ? " " : "") a[i]
		print (m == ".SH" || m == ".SS" ? m " " : "") unescape(out)
		next
	}
	/^\.(BR|RB|BI|IB|IR|RI)( |$)/ {
		rest = substr($0, length($1) + 2)
		n = args(rest, a); out = ""
		for (i = 1; i <= n; i++) out = out a[i]
		print unescape(out)
		next
	}
	{ print unescape($0) }
	' "$1"
}

# section FILE NAME: the lines of section NAME.
section() {
	roff "$1" | awk -v s=".SH $2" '
		/^\.SH / { on = ($0 == s); next }
		on'
}

# subsection FILE SECTION TITLE: the lines of the subsection of SECTION
# whose title is TITLE or starts with "TITLE ".
subsection() {
	section "$1" "$2" | awk -v t="$3" '
		/^\.SS / { x = substr($0, 5); on = (x == t ||
		    index(x, t " ") == 1); next }
		on'
}

# tags: the tag lines (the line after each .TP) of the text on stdin.
tags() {
	awk 'tp { print; tp = 0; next } /^\.TP/ { tp = 1 }'
}

# tag_options: every --option named in the tag lines on stdin.
tag_options() {
	tags | grep -oE -- '--[a-z][a-z0-9-]*' | LC_ALL=C sort -u
}

# documents TEXT LONG SHORT ARG: a line of TEXT names "--LONG ARG" (as
# whole words), and the short option too when there is one.
documents() {
	local want=$2 re line found=
	[ -n "$4" ] && want="$2 $4"
	re="(^|[^a-zA-Z0-9-])$want([^a-zA-Z0-9-]|\$)"
	while IFS= read -r line; do
		[[ $line =~ $re ]] || continue
		found=1
		[ -z "$3" ] && return 0
		[[ $line =~ (^|[ ,])$3([ ,]|\$) ]] && return 0
	done <<<"$1"
	if [ -z "$found" ]; then
		echo "not documented: $want"
	else
		echo "$want documented without $3"
	fi
	return 1
}

@test "every man page renders without a warning" {
	local f n=0
	for f in "$MAN"/*.[1-9]; do
		run -0 --separate-stderr groff -man -Tutf8 -ww -z "$f"
		same "$stderr" ""
		MANWIDTH=80 run -0 --separate-stderr man --warnings -l "$f"
		same "$stderr" ""
		[[ "$output" == *NAME* ]]
		n=$((n + 1))
	done
	[ "$n" -ge 3 ]
}

@test "pw(1) lists every command, each with a page of its own" {
	local c
	same "$(section "$MAN/pw.1" COMMANDS | tags | awk '{ print $2 }' |
	    LC_ALL=C sort)" "$(words $(children "") help)"
	for c in $(children ""); do
		[ -f "$MAN/pw-$c.1" ]
		section "$MAN/pw.1" "SEE ALSO" | grep -q "^pw-$c(1)"
		roff "$MAN/pw-$c.1" | grep -q "^pw-$c - "
	done
}

@test "every verb has its subsection and synopsis line, and no other does" {
	local c v titles
	for c in $(children ""); do
		[ -n "$(children "$c")" ] || continue
		titles=$(section "$MAN/pw-$c.1" VERBS | sed -n 's/^\.SS //p')
		# verbs of verbs (pw serve keys add) have subsections each
		same "$(echo "$titles" | awk -v c="$c" \
		    '$1 == "pw" && $2 == c { print $3 }' | LC_ALL=C sort -u)" \
		    "$(children "$c")"
		same "$(echo "$titles" | awk -v c="$c" \
		    '!($1 == "pw" && $2 == c)')" ""
		for v in $(children "$c"); do
			section "$MAN/pw-$c.1" SYNOPSIS | grep -q "^pw $c $v\b"
		done
	done
}

@test "every option of every command is documented in its page" {
	local p c v long short arg text common own globals n=0
	globals=$(longs "")
	while IFS= read -r p; do
		c=${p%% *}
		v=${p#* }
		common=$(section "$MAN/pw-$c.1" "COMMON OPTIONS" | tags)
		if [ "$v" = "$p" ]; then
			own=$(section "$MAN/pw-$c.1" OPTIONS)
		else
			own=$(subsection "$MAN/pw-$c.1" VERBS "pw $p")
		fi
		while IFS='|' read -r long short arg; do
			if has "$globals" "$long"; then
				text=$common
			else
				text=$own
			fi
			documents "$text" "$long" "$short" "$arg" ||
			    { echo "in pw-$c.1, for pw $p"; return 1; }
			n=$((n + 1))
		done < <(options "$p")
	done < <(leaf_paths)
	[ "$n" -gt 50 ]
}

@test "every option a page documents exists" {
	local p c o own globals
	globals=$(longs "")
	while IFS= read -r p; do
		c=${p%% *}
		own=$(longs "$p")
		for o in $(if [ "$c" = "$p" ]; then
		    section "$MAN/pw-$c.1" OPTIONS
		    else subsection "$MAN/pw-$c.1" VERBS "pw $p"; fi |
		    tag_options); do
			has "$own" "$o" ||
			    { echo "pw-$c.1: pw $p has no $o"; return 1; }
		done
		for o in $(section "$MAN/pw-$c.1" "COMMON OPTIONS" |
		    tag_options); do
			has "$own" "$o" && has "$globals" "$o" || {
				echo "pw-$c.1: common $o not in pw $p"
				return 1
			}
		done
	done < <(leaf_paths)
}

@test "pw(1) documents exactly the global options" {
	local long short arg text
	text=$(section "$MAN/pw.1" "GLOBAL OPTIONS" | tags)
	while IFS='|' read -r long short arg; do
		documents "$text" "$long" "$short" "$arg"
	done < <(options "")
	same "$(section "$MAN/pw.1" "GLOBAL OPTIONS" | tag_options)" \
	    "$(longs "")"
}

@test "pw-config(1) gives every key its type, default and variable" {
	local key type def env text first
	same "$(section "$MAN/pw-config.1" KEYS | tags | LC_ALL=C sort)" \
	    "$(keys)"
	# key,value,origin,type,default: no comma in the first five
	while IFS=, read -r key _ _ type def _; do
		text=$(section "$MAN/pw-config.1" KEYS |
		    awk -v k="$key" 'tp { on = ($0 == k); tp = 0; next }
		    /^\.TP/ { tp = 1; next } on')
		[ -n "$def" ] || def=empty
		# "Type T, default D; range." or "Type T, default D."
		first=$(printf '%s\n' "$text" | head -n 1)
		case $first in
		*\;*) first=${first%%;*} ;;
		*) first=${first%.} ;;
		esac
		same "$first" "Type $type, default $def"
		env=PW_$(echo "$key" | sed 's/\./__/g' | tr a-z A-Z)
		printf '%s\n' "$text" | grep -qxF "Environment: $env." ||
		    { echo "$key: no 'Environment: $env.'"; return 1; }
	done < <(pw config list --csv | tail -n +2)
}

@test "pw(1) and the README list exactly the exit statuses pw has" {
	local c
	[ "$(exit_codes | wc -l)" -ge 7 ]
	same "$(section "$MAN/pw.1" "EXIT STATUS" | tags)" "$(exit_codes)"
	for c in $(exit_codes); do
		grep -qE "^\| *$c *\|" "$ROOT/README.md" ||
		    { echo "README: no row for exit status $c"; return 1; }
	done
}

@test "the README shows every command and verb" {
	local p
	while IFS= read -r p; do
		grep -qF "pw $p" "$ROOT/README.md" ||
		    { echo "README: no 'pw $p'"; return 1; }
	done < <(paths)
}

@test "the README's quick start is exactly make demo and make test" {
	local quick
	quick=$(awk '/^## Quick start/ { on = 1; next } /^## / { on = 0 }
	    on && /^```/ { code = !code; next } on && code' "$ROOT/README.md")
	same "$quick" "$(printf 'make demo\nmake test')"
}

# ------------------------------------------------------ bash completion

# bash_complete WORD...: complete the last word of "WORD..." as bash
# would; the candidates sorted, one a line.
bash_complete() {
	source "$COMP/pw.bash"
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_pw pw "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	[ "${#COMPREPLY[@]}" -eq 0 ] || words "${COMPREPLY[@]}"
}

# two proxies, ids 1 and 2, in the test's state file
two_proxies() {
	run -0 pw pool add http://10.0.0.1:3128 socks5://u:p@10.0.0.2:1080
}

@test "bash: pw is completed by _pw" {
	source "$COMP/pw.bash"
	same "$(complete -p pw)" "complete -F _pw pw"
}

@test "bash: commands, and a unique prefix" {
	local c
	run -0 bash_complete pw ''
	same "$output" "$(words $(children "") help)"
	for c in config help pool; do
		printf '%s\n' "$output" | grep -qx "$c"
	done
	run -0 bash_complete pw po
	same "$output" pool
	run -0 bash_complete pw --state "$PW_STATE" -q con
	same "$output" config
}

@test "bash: the verbs of every command" {
	local c
	for c in $(children ""); do
		[ -n "$(children "$c")" ] || continue
		run -0 bash_complete pw "$c" ''
		same "$output" "$(children "$c")"
	done
	run -0 bash_complete pw po s
	same "$output" "$(children pool | grep '^s')"
	[ "${#lines[@]}" -ge 3 ]
}

@test "bash: the options of every command, and the global ones" {
	local p
	while IFS= read -r p; do
		run -0 bash_complete pw $p --
		same "$output" "$(longs "$p")"
	done < <(leaf_paths)
	run -0 bash_complete pw --
	same "$output" "$(longs "")"
	run -0 bash_complete pw pool ls --sta
	same "$output" "$(words --state --status)"
	run -0 bash_complete pw pool -
	same "$output" --help
}

@test "bash: config keys for get, set, unset and -c" {
	local v
	for v in get set unset; do
		run -0 bash_complete pw config "$v" ''
		same "$output" "$(keys)"
	done
	run -0 bash_complete pw config get strategy.
	same "$output" "$(words strategy.alpha strategy.fallback \
	    strategy.plugins strategy.window)"
	run -0 bash_complete pw -c ''
	same "$output" "$(keys | sed 's/$/=/' | LC_ALL=C sort)"
	# a key takes one argument, get and unset only the key
	run -0 bash_complete pw config get strategy ''
	same "$output" ""
}

@test "bash: proxy ids for rm, show, set, report and --exclude" {
	local v
	run -0 bash_complete pw pool rm ''
	same "$output" ""
	two_proxies
	for v in rm show set report; do
		run -0 bash_complete pw pool "$v" ''
		same "$output" "$(words 1 2)"
	done
	run -0 bash_complete pw pool rm 1 ''
	same "$output" "$(words 1 2)"
	run -0 bash_complete pw pool show 1 ''
	same "$output" ""
	# bash splits a URL at its colons: still one argument
	run -0 bash_complete pw pool show http : //10.0.0.1 : 3128 ''
	same "$output" ""
	run -0 bash_complete pw pool rm http : //10.0.0.1 : 3128 ''
	same "$output" "$(words 1 2)"
	run -0 bash_complete pw pool next -x ''
	same "$output" "$(words 1 2)"
	# bash splits "--exclude=" at the "=": the word is "="
	run -0 bash_complete pw pool next --exclude '='
	same "$output" "$(words 1 2)"
	# ids come from the state file the line names
	run -0 bash_complete pw --state "$BATS_TEST_TMPDIR/none.db" pool rm ''
	same "$output" ""
	run -0 pw --state "$BATS_TEST_TMPDIR/other.db" pool add 10.9.9.9:80 \
	    10.9.9.8:80 10.9.9.7:80
	run -0 bash_complete pw pool rm --state "$BATS_TEST_TMPDIR/other.db" ''
	same "$output" "$(words 1 2 3)"
	[ ! -e "$BATS_TEST_TMPDIR/none.db" ]
}

@test "bash: option values with fixed choices, and = forms" {
	run -0 bash_complete pw pool ls --status ''
	same "$output" "$(choices "$(help_of "pool ls" --status)")"
	same "$output" "$(words unknown healthy degraded unhealthy pending)"
	run -0 bash_complete pw pool ls --status = he
	same "$output" healthy
	run -0 bash_complete pw pool ls --scheme ''
	same "$output" "$(choices "$(help_of "pool ls" --scheme)")"
	same "$output" "$(words http https socks4 socks4a socks5 socks5h)"
	run -0 bash_complete pw pool ls --anonymity ''
	same "$output" "$(choices "$(help_of "pool ls" --anonymity)")"
	run -0 bash_complete pw pool next -s ''
	same "$output" "$(choices "$(help_of "pool next" --strategy)")"
	run -0 bash_complete pw pool next --format ''
	same "$output" "$(words url json)"
	run -0 bash_complete pw cache warm --format ''
	same "$output" "$(words auto txt csv json jsonl)"
	run -0 bash_complete pw cache export -f ''
	same "$output" "$(words jsonl json csv txt)"
	run -0 bash_complete pw cache stats --format ''
	same "$output" "$(words text json prometheus)"
	run -0 bash_complete pw health --mode ''
	same "$output" "$(words get connect)"
	run -0 bash_complete pw health --status ''
	same "$output" "$(words unknown healthy degraded unhealthy pending)"
	run -0 bash_complete pw -c strategy = r
	same "$output" "$(words random round-robin)"
	# a free-form value gets nothing
	run -0 bash_complete pw pool add --country ''
	same "$output" ""
}

@test "bash: config set offers the values of keys with fixed choices" {
	run -0 bash_complete pw config set strategy ''
	same "$output" "$(choices "$(help_of "pool next" --strategy)")"
	same "$output" "$(words round-robin random weighted least-used \
	    performance sticky geo)"
	run -0 bash_complete pw config set geo.fallback ''
	same "$output" "$(words true false)"
	run -0 bash_complete pw config set fetch.timeout ''
	same "$output" ""
}

@test "every value the completions offer is one pw accepts" {
	local key v opt
	for key in strategy strategy.fallback session.strategy geo.strategy \
	    geo.fallback; do
		run -0 bash_complete pw config set "$key" ''
		[ -n "$output" ]
		for v in $output; do
			run -0 pw config set "$key" "$v"
			run -0 pw config get "$key"
			same "$output" "$v"
		done
	done
	for opt in --status --scheme --anonymity; do
		run -0 bash_complete pw pool ls "$opt" ''
		[ -n "$output" ]
		for v in $output; do
			run -0 pw pool ls "$opt" "$v"
		done
	done
}

@test "bash: help completes commands, then verbs" {
	run -0 bash_complete pw help ''
	same "$output" "$(children "")"
	run -0 bash_complete pw help pool ''
	same "$output" "$(children pool)"
	run -0 bash_complete pw help config ''
	same "$output" "$(children config)"
	run -0 bash_complete pw help pool ls ''
	same "$output" ""
}

# --------------------------------------------------------- zsh completion

# zsh_complete LINE...: complete the end of each LINE, one after the
# other, in one interactive zsh on a pseudo-terminal with completions/_pw.
# What the completion system is given for line K (sorted, one a line)
# goes to $BATS_TEST_TMPDIR/zsh.K; with one LINE it is also printed.
zsh_complete() {
	local drv=$BATS_TEST_TMPDIR/complete.zsh out=$BATS_TEST_TMPDIR/zsh.out
	local k
	cat >"$drv" <<'EOF'
zmodload zsh/zpty || exit 3
rm -f -- $OUT $OUT.n
: >$OUT
zpty z zsh -f -i
zpty -w z 'PS1= PROMPT= RPROMPT=; unsetopt beep autolist; bindkey -e'
zpty -w z 'fpath=($COMPDIR $fpath); autoload -Uz compinit && compinit -u -D'
# Record every match given to the completion system (-O, -A and -D only
# ask, they add nothing), and mark where each completion ends.
zpty -w z 'compadd() { if (( ${@[(I)-[OAD]]} )); then builtin compadd "$@"; return; fi; local -a m; builtin compadd -O m "$@"; (( $#m )) && print -rl -- $m >>$OUT; builtin compadd "$@"; }'
zpty -w z '_zc_n=0; _zc() { _main_complete; (( _zc_n++ )); print -r -- --zc-end-- >>$OUT; print $_zc_n >$OUT.n; }'
zpty -w z 'zle -C zc complete-word _zc; bindkey "^I" zc'
integer k=0 i
local junk
for line in "${(@f)ZC_LINES}"; do
	(( k++ ))
	zpty -n -w z "$line"$'\t'
	for (( i = 0; i < 600; i++ )); do
		[[ -e $OUT.n && $(<$OUT.n) == $k ]] && break
		while zpty -r -t z junk; do :; done
		sleep 0.05
	done
	[[ -e $OUT.n && $(<$OUT.n) == $k ]] ||
	    { print -u2 "zsh: no completion for: $line"; zpty -d z; exit 4; }
	zpty -n -w z $'\C-u'
done
zpty -d z
EOF
	OUT=$out COMPDIR=$COMP ZC_LINES=$(printf '%s\n' "$@") zsh -f "$drv" ||
	    return
	awk -v dir="$BATS_TEST_TMPDIR" '
		BEGIN { k = 1; f = dir "/zsh.1"; printf "" >f }
		/^--zc-end--$/ { close(f); k++; f = dir "/zsh." k;
		    printf "" >f; next }
		{ print >f }' "$out"
	for ((k = 1; k <= $#; k++)); do
		LC_ALL=C sort -u "$BATS_TEST_TMPDIR/zsh.$k" \
		    -o "$BATS_TEST_TMPDIR/zsh.$k"
	done
	[ $# -eq 1 ] && cat "$BATS_TEST_TMPDIR/zsh.1"
	return 0
}

# zres K: what zsh_complete found for its Kth line.
zres() {
	cat "$BATS_TEST_TMPDIR/zsh.$1"
}

@test "zsh: commands, verbs and a unique prefix" {
	zsh_complete 'pw ' 'pw po' 'pw pool ' 'pw config ' 'pw help pool '
	same "$(zres 1)" "$(words $(children "") help)"
	same "$(zres 2)" pool
	same "$(zres 3)" "$(children pool)"
	same "$(zres 4)" "$(children config)"
	same "$(zres 5)" "$(children pool)"
}

@test "zsh: the options of every command, and the global ones" {
	local -a p l
	local k
	mapfile -t p < <(leaf_paths)
	for k in "${p[@]}"; do
		l+=("pw $k --")
	done
	zsh_complete "${l[@]}" 'pw --'
	for ((k = 0; k < ${#p[@]}; k++)); do
		same "$(zres $((k + 1)))" "$(longs "${p[k]}")"
	done
	same "$(zres $((k + 1)))" "$(longs "")"
	[ "${#p[@]}" -gt 10 ]
}

@test "zsh: config keys, proxy ids and option values" {
	two_proxies
	zsh_complete 'pw config get ' 'pw config set strategy ' 'pw -c ' \
	    'pw -c strategy=r' 'pw pool rm ' 'pw pool show 1 ' \
	    'pw pool ls --status ' 'pw pool ls --scheme=socks'
	same "$(zres 1)" "$(keys)"
	same "$(zres 2)" "$(choices "$(help_of "pool next" --strategy)")"
	same "$(zres 3)" "$(keys)"
	same "$(zres 4)" "$(words random round-robin)"
	same "$(zres 5)" "$(words 1 2)"
	same "$(zres 6)" ""
	same "$(zres 7)" "$(choices "$(help_of "pool ls" --status)")"
	same "$(zres 8)" "$(words socks4 socks4a socks5 socks5h)"
}

# fish_complete LINE...: fish's candidates for the end of each LINE; for
# line K, sorted, in $BATS_TEST_TMPDIR/fish.K; with one LINE also printed.
fish_complete() {
	local k
	fish --no-config -c 'source $argv[1]
		for l in $argv[2..-1]
			complete -C $l
			echo --fish-end--
		end' "$COMP/pw.fish" "$@" >"$BATS_TEST_TMPDIR/fish.out" ||
	    return
	awk -v dir="$BATS_TEST_TMPDIR" -F'\t' '
		BEGIN { k = 1; f = dir "/fish.1"; printf "" >f }
		/^--fish-end--$/ { close(f); k++; f = dir "/fish." k;
		    printf "" >f; next }
		{ print $1 >f }' "$BATS_TEST_TMPDIR/fish.out"
	for ((k = 1; k <= $#; k++)); do
		LC_ALL=C sort "$BATS_TEST_TMPDIR/fish.$k" \
		    -o "$BATS_TEST_TMPDIR/fish.$k"
	done
	[ $# -eq 1 ] && cat "$BATS_TEST_TMPDIR/fish.1"
	return 0
}

fres() {
	cat "$BATS_TEST_TMPDIR/fish.$1"
}

@test "fish: commands, verbs and a unique prefix" {
	fish_complete 'pw ' 'pw po' 'pw pool ' 'pw config ' 'pw help pool '
	same "$(fres 1)" "$(words $(children "") help)"
	same "$(fres 2)" pool
	same "$(fres 3)" "$(children pool)"
	same "$(fres 4)" "$(children config)"
	same "$(fres 5)" "$(children pool)"
}

@test "fish: the options of every command, and the global ones" {
	local -a p l
	local k
	mapfile -t p < <(leaf_paths)
	for k in "${p[@]}"; do
		l+=("pw $k --")
	done
	fish_complete "${l[@]}" 'pw --'
	for ((k = 0; k < ${#p[@]}; k++)); do
		same "$(fres $((k + 1)))" "$(longs "${p[k]}")"
	done
	same "$(fres $((k + 1)))" "$(longs "")"
	[ "${#p[@]}" -gt 10 ]
}

@test "zsh and fish: --format values follow the command" {
	zsh_complete 'pw pool next --format ' 'pw cache warm --format ' \
	    'pw cache export --format ' 'pw cache stats --format '
	same "$(zres 1)" "$(words url json)"
	same "$(zres 2)" "$(words auto txt csv json jsonl)"
	same "$(zres 3)" "$(words jsonl json csv txt)"
	same "$(zres 4)" "$(words text json prometheus)"
	fish_complete 'pw pool next --format ' 'pw cache warm --format ' \
	    'pw cache export --format ' 'pw cache stats --format=p'
	same "$(fres 1)" "$(words url json)"
	same "$(fres 2)" "$(words auto txt csv json jsonl)"
	same "$(fres 3)" "$(words jsonl json csv txt)"
	same "$(fres 4)" "--format=prometheus"
}

@test "fish: config keys, proxy ids and option values" {
	two_proxies
	fish_complete 'pw config get ' 'pw config set strategy ' 'pw -c ' \
	    'pw -c strategy=r' 'pw pool rm ' 'pw pool show 1 ' \
	    'pw pool ls --status ' 'pw pool ls --scheme=socks'
	same "$(fres 1)" "$(keys)"
	same "$(fres 2)" "$(choices "$(help_of "pool next" --strategy)")"
	same "$(fres 3)" "$(keys | sed 's/$/=/' | LC_ALL=C sort)"
	same "$(fres 4)" "$(words strategy=random strategy=round-robin)"
	same "$(fres 5)" "$(words 1 2)"
	same "$(fres 6)" ""
	same "$(fres 7)" "$(choices "$(help_of "pool ls" --status)")"
	same "$(fres 8)" "$(words --scheme=socks4 --scheme=socks4a \
	    --scheme=socks5 --scheme=socks5h)"
}

@test "bash, zsh and fish: verbs of verbs (pw serve keys), and a command that runs itself too" {
	run -0 bash_complete pw serve ''
	same "$output" keys
	run -0 bash_complete pw serve keys ''
	same "$output" "$(words add ls rm)"
	run -0 bash_complete pw serve k r
	same "$output" rm
	run -0 bash_complete pw serve --
	same "$output" "$(longs serve)"
	run -0 bash_complete pw serve keys add --
	same "$output" "$(longs "serve keys add")"
	run -0 bash_complete pw serve keys -
	same "$output" --help
	run -0 bash_complete pw help serve ''
	same "$output" keys
	zsh_complete 'pw serve ' 'pw serve keys ' 'pw serve --' \
	    'pw serve keys add --'
	same "$(zres 1)" keys
	same "$(zres 2)" "$(words add ls rm)"
	same "$(zres 3)" "$(longs serve)"
	same "$(zres 4)" "$(longs "serve keys add")"
	fish_complete 'pw serve ' 'pw serve keys ' 'pw serve --' \
	    'pw serve keys add --'
	same "$(fres 1)" keys
	same "$(fres 2)" "$(words add ls rm)"
	same "$(fres 3)" "$(longs serve)"
	same "$(fres 4)" "$(longs "serve keys add")"
}
