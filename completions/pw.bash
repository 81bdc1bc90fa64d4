# pw.bash -- bash completion for pw(1).
#
# Nothing here lists a command or an option: they (fetch, pool, config,
# health, cache, serve and the rest) come from the binary being
# completed ("pw __dump"), config keys from "pw config list" and
# proxy ids from "pw pool ls", so the completion cannot drift from it.
# Only the fixed choices of a few option values are spelt out below;
# tests/cli/docs.bats checks them against the binary.

_pw_statuses='unknown healthy degraded unhealthy pending'
_pw_schemes='http https socks4 socks4a socks5 socks5h'
_pw_anonymity='transparent anonymous elite'
_pw_strategies='round-robin random weighted least-used performance sticky geo'
_pw_inner='round-robin random weighted least-used performance'
_pw_methods='GET HEAD POST PUT PATCH DELETE OPTIONS'

# _pw_table: read the command table of $_pw_bin into _pw_cmds (every
# command path) and the parallel arrays _pw_opath, _pw_olong, _pw_oshort
# and _pw_oarg (every option). Fields are tab-separated; a NUL byte may
# stand for an empty field, and is dropped.
_pw_table() {
	local kind path f3 f4 f5 f6
	_pw_cmds=() _pw_opath=() _pw_olong=() _pw_oshort=() _pw_oarg=()
	while IFS=$'\037' read -r kind path f3 f4 f5 f6; do
		case $kind in
		command) _pw_cmds+=("$path") ;;
		option)
			_pw_opath+=("$path")
			_pw_olong+=("$f3")
			_pw_oshort+=("${f4// /}")
			_pw_oarg+=("$f5")
			;;
		esac
	done < <("$_pw_bin" __dump 2>/dev/null | tr -d '\000' | tr '\t' '\037')
}

# _pw_children PARENT: the names one level below PARENT ("" for the top),
# in the array _pw_r.
_pw_children() {
	local p
	_pw_r=()
	for p in "${_pw_cmds[@]}"; do
		if [[ -z $1 ]]; then
			[[ $p == *" "* ]] || _pw_r+=("$p")
		elif [[ $p == "$1 "* && ${p#"$1 "} != *" "* ]]; then
			_pw_r+=("${p#"$1 "}")
		fi
	done
}

# _pw_resolve PARENT WORD: the child named WORD, or the only child it is
# a prefix of (as pw itself resolves "pw po ls"), in _pw_v; status 1 when
# there is none.
_pw_resolve() {
	local c n=0
	_pw_v=
	_pw_children "$1"
	for c in "${_pw_r[@]}"; do
		if [[ $c == "$2" ]]; then
			_pw_v=$c
			return 0
		fi
		if [[ -n $2 && $c == "$2"* ]]; then
			_pw_v=$c
			n=$((n + 1))
		fi
	done
	[[ $n -eq 1 ]] && return 0
	_pw_v=
	return 1
}

# _pw_opt PATH WORD: the index of option WORD (long or short) of PATH in
# the _pw_o arrays, in _pw_i; status 1 when WORD is not one.
_pw_opt() {
	for ((_pw_i = 0; _pw_i < ${#_pw_opath[@]}; _pw_i++)); do
		[[ ${_pw_opath[_pw_i]} == "$1" ]] || continue
		[[ $2 == "${_pw_olong[_pw_i]}" ]] && return 0
		[[ -n ${_pw_oshort[_pw_i]} && $2 == "${_pw_oshort[_pw_i]}" ]] &&
		    return 0
	done
	return 1
}

# _pw_longopts PATH: the long options of PATH, in _pw_r.
_pw_longopts() {
	local i
	_pw_r=()
	for ((i = 0; i < ${#_pw_opath[@]}; i++)); do
		[[ ${_pw_opath[i]} == "$1" ]] && _pw_r+=("${_pw_olong[i]}")
	done
}

# The first field of "pw ... --plain" output: proxy ids, config keys.
_pw_ids() {
	"$_pw_bin" ${_pw_state:+--state "$_pw_state"} pool ls --plain \
	    2>/dev/null | cut -f1
}

_pw_keys() {
	"$_pw_bin" ${_pw_state:+--state "$_pw_state"} config list --plain \
	    2>/dev/null | cut -f1
}

# _pw_add WORDS CUR: add the words (split on white space) that start
# with CUR.
_pw_add() {
	local w -
	set -f
	for w in $1; do
		[[ $w == "$2"* ]] && COMPREPLY+=("$w")
	done
}

_pw_files() {
	compopt -o filenames 2>/dev/null
	mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$1")
}

# _pw_key_values KEY CUR: the values of a setting with fixed choices.
_pw_key_values() {
	case $1 in
	strategy) _pw_add "$_pw_strategies" "$2" ;;
	session.strategy | geo.strategy) _pw_add "$_pw_inner" "$2" ;;
	strategy.fallback)
		_pw_add "none round-robin random weighted least-used" "$2" ;;
	geo.fallback) _pw_add "true false" "$2" ;;
	strategy.plugins) _pw_files "$2" ;;
	esac
}

# _pw_formats PATH: what --format takes in the command PATH.
_pw_formats() {
	case $1 in
	"cache warm") echo "auto txt csv json jsonl" ;;
	"cache export") echo "jsonl json csv txt" ;;
	"cache stats") echo "text json prometheus" ;;
	*) echo "url json" ;;
	esac
}

# _pw_option_values LONG CUR: the values of an option's argument (in the
# command $path of the caller).
_pw_option_values() {
	case $1 in
	--status) _pw_add "$_pw_statuses" "$2" ;;
	--scheme) _pw_add "$_pw_schemes" "$2" ;;
	--anonymity) _pw_add "$_pw_anonymity" "$2" ;;
	--strategy) _pw_add "$_pw_strategies" "$2" ;;
	--format) _pw_add "$(_pw_formats "$path")" "$2" ;;
	--mode) _pw_add "get connect" "$2" ;;
	--request) _pw_add "$_pw_methods" "$2" ;;
	--exclude) _pw_add "$(_pw_ids)" "$2" ;;
	--state | --strategy-plugin | --output | --cacert) _pw_files "$2" ;;
	--config)
		compopt -o nospace 2>/dev/null
		_pw_add "$(_pw_keys | sed 's/$/=/')" "$2"
		;;
	esac
}

# _pw_positional PATH N CUR: the Nth (from 0) argument of PATH.
_pw_positional() {
	case "$1:$2" in
	"pool rm:"* | "pool show:0" | "pool set:0" | "pool report:0")
		_pw_add "$(_pw_ids)" "$3" ;;
	"config get:0" | "config unset:0" | "config set:0")
		_pw_add "$(_pw_keys)" "$3" ;;
	"config set:1") _pw_key_values "$_pw_arg0" "$3" ;;
	"pool report:1") _pw_add "ok fail" "$3" ;;
	"help:0")
		_pw_children ""
		_pw_add "${_pw_r[*]}" "$3"
		;;
	"help:1")
		if _pw_resolve "" "$_pw_arg0"; then
			_pw_children "$_pw_v"
			_pw_add "${_pw_r[*]}" "$3"
		fi
		;;
	esac
}

_pw() {
	local cur=${COMP_WORDS[COMP_CWORD]} w i path= n=0 only= want=
	local eq=0 lhs=
	local _pw_bin=${COMP_WORDS[0]} _pw_state= _pw_arg0= _pw_v _pw_i
	local -a _pw_cmds _pw_opath _pw_olong _pw_oshort _pw_oarg _pw_r

	COMPREPLY=()
	[[ $_pw_bin == "~/"* ]] && _pw_bin=$HOME/${_pw_bin#"~/"}
	_pw_table
	[[ ${#_pw_cmds[@]} -eq 0 ]] && return 0

	# bash splits "--opt=value" and "-c key=value" at the "="
	# (COMP_WORDBREAKS): the cursor is on the "=" or just after it.
	if [[ $cur == "=" ]]; then
		eq=$COMP_CWORD
		cur=
	elif [[ $COMP_CWORD -ge 2 && ${COMP_WORDS[COMP_CWORD - 1]} == "=" ]]
	then
		eq=$((COMP_CWORD - 1))
	fi
	[[ $eq -ge 2 ]] && lhs=${COMP_WORDS[eq - 1]}

	# Walk the words before the cursor: global options, the command,
	# its verb, then its options and arguments.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == "=" ]]; then
			# The value after "--opt=" or "-c key=".
			[[ $want == --state ]] && _pw_state=${COMP_WORDS[i + 1]}
			i=$((i + 1))
			want=
			continue
		fi
		if [[ $w == ":" ]]; then
			# bash splits at ":" too: "h:80" is one word to pw.
			i=$((i + 1))
			continue
		fi
		if [[ -n $want ]]; then
			[[ $want == --state ]] && _pw_state=$w
			want=
			continue
		fi
		if [[ -z $only && $w == -?* ]]; then
			if [[ $w == -- ]]; then
				only=1
			elif _pw_opt "$path" "$w" && [[ -n ${_pw_oarg[_pw_i]} ]]
			then
				want=${_pw_olong[_pw_i]}
			fi
			continue
		fi
		if [[ -z $path ]]; then
			if [[ $w == help ]]; then
				path=help
				continue
			fi
			_pw_resolve "" "$w" || return 0
			path=$_pw_v
			continue
		fi
		# Verbs, as deep as they go (serve keys add).
		if [[ $path != help && $n -eq 0 ]]; then
			_pw_children "$path"
			if [[ ${#_pw_r[@]} -gt 0 ]]; then
				_pw_resolve "$path" "$w" || return 0
				path="$path $_pw_v"
				continue
			fi
		fi
		[[ $n -eq 0 ]] && _pw_arg0=$w
		n=$((n + 1))
	done

	# After "=": the value of an option, or of a key after -c.
	if [[ $eq -ge 2 ]]; then
		if [[ $eq -ge 3 && ( ${COMP_WORDS[eq - 2]} == -c ||
		    ${COMP_WORDS[eq - 2]} == --config ) ]]; then
			_pw_key_values "$lhs" "$cur"
		elif [[ $lhs == --?* && $path != help ]]; then
			_pw_option_values "$lhs" "$cur"
		fi
		return 0
	fi
	# The value of an option given as the previous word.
	if [[ -n $want ]]; then
		_pw_option_values "$want" "$cur"
		return 0
	fi

	if [[ -z $path ]]; then
		if [[ $cur == -* ]]; then
			_pw_longopts ""
			_pw_add "${_pw_r[*]}" "$cur"
		else
			_pw_children ""
			_pw_add "${_pw_r[*]} help" "$cur"
		fi
		return 0
	fi
	if [[ $path == help ]]; then
		_pw_positional help "$n" "$cur"
		return 0
	fi
	_pw_children "$path"
	if [[ ${#_pw_r[@]} -gt 0 ]]; then
		# The verb's place: a verb, or --help; or the options of a
		# command that runs itself too (pw serve).
		if [[ $cur == -* ]]; then
			_pw_longopts "$path"
			[[ ${#_pw_r[@]} -eq 0 ]] && _pw_r=(--help)
			_pw_add "${_pw_r[*]}" "$cur"
		else
			_pw_add "${_pw_r[*]}" "$cur"
		fi
		return 0
	fi
	if [[ $cur == -* && -z $only ]]; then
		_pw_longopts "$path"
		_pw_add "${_pw_r[*]}" "$cur"
		return 0
	fi
	_pw_positional "$path" "$n" "$cur"
	return 0
}

complete -F _pw pw
