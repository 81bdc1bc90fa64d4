# pw.bash -- bash completion for pw(1).
#
# Nothing here lists a command or an option: they come from the binary
# being completed ("pw __dump"), config keys from "pw config list" and
# proxy ids from "pw pool ls", so the completion cannot drift from it.
# Only the fixed choices of a few option values are spelt out below;
# tests/cli/docs.bats checks them against the binary.

_pw_statuses='unknown healthy degraded unhealthy'
_pw_schemes='http https socks4 socks4a socks5 socks5h'
_pw_anonymity='transparent anonymous elite'
_pw_strategies='round-robin random weighted least-used performance sticky geo'
_pw_inner='round-robin random weighted least-used performance'

# _pw_dump: the command table as "kind<US>path<US>f3<US>f4<US>f5<US>f6"
# lines (fields split by 0x1f, so that empty fields survive "read").
_pw_dump() {
	"$_pw_bin" __dump 2>/dev/null | tr -d '\000' | tr '\t' '\037'
}

# _pw_table: load the table into _pw_cmds (paths), _pw_opts (path, long,
# short and argument name of every option, one "path<US>long<US>short
# <US>arg" entry each).
_pw_table() {
	local kind path f3 f4 f5 f6
	_pw_cmds=()
	_pw_opts=()
	while IFS=$'\037' read -r kind path f3 f4 f5 f6; do
		case $kind in
		command) _pw_cmds+=("$path") ;;
		option)
			f4=${f4// /}
			_pw_opts+=("$path"$'\037'"$f3"$'\037'"$f4"$'\037'"$f5")
			;;
		esac
	done < <(_pw_dump)
}

# _pw_children PARENT: the names one level below PARENT ("" for the top).
_pw_children() {
	local p
	for p in "${_pw_cmds[@]}"; do
		if [[ -z $1 ]]; then
			[[ $p == *" "* ]] || printf '%s\n' "$p"
		elif [[ $p == "$1 "* && ${p#"$1 "} != *" "* ]]; then
			printf '%s\n' "${p#"$1 "}"
		fi
	done
}

# _pw_resolve PARENT WORD: the child named WORD, or the only child it is
# a prefix of (as pw itself resolves "pw po ls"); nothing when none.
_pw_resolve() {
	local c found= n=0
	while IFS= read -r c; do
		if [[ $c == "$2" ]]; then
			printf '%s\n' "$c"
			return
		fi
		if [[ -n $2 && $c == "$2"* ]]; then
			found=$c
			n=$((n + 1))
		fi
	done < <(_pw_children "$1")
	[[ $n -eq 1 ]] && printf '%s\n' "$found"
}

# _pw_optarg PATH WORD: the argument name of option WORD (long or short)
# of PATH; status 1 when WORD is not an option of PATH.
_pw_optarg() {
	local e path long short arg
	for e in "${_pw_opts[@]}"; do
		IFS=$'\037' read -r path long short arg <<<"$e"
		[[ $path == "$1" ]] || continue
		if [[ $2 == "$long" || ( -n $short && $2 == "$short" ) ]]; then
			printf '%s\n' "$arg"
			return 0
		fi
	done
	return 1
}

_pw_longopts() {
	local e path long short arg
	for e in "${_pw_opts[@]}"; do
		IFS=$'\037' read -r path long short arg <<<"$e"
		[[ $path == "$1" ]] && printf '%s\n' "$long"
	done
}

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
	mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -W "$1" -- "$2")
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

# _pw_option_values LONG CUR: the values of an option's argument.
_pw_option_values() {
	case $1 in
	--status) _pw_add "$_pw_statuses" "$2" ;;
	--scheme) _pw_add "$_pw_schemes" "$2" ;;
	--anonymity) _pw_add "$_pw_anonymity" "$2" ;;
	--strategy) _pw_add "$_pw_strategies" "$2" ;;
	--format) _pw_add "url json" "$2" ;;
	--exclude) _pw_add "$(_pw_ids)" "$2" ;;
	--request) _pw_add "GET HEAD POST PUT PATCH DELETE OPTIONS" "$2" ;;
	--state | --strategy-plugin | --output | --cacert) _pw_files "$2" ;;
	--config)
		compopt -o nospace 2>/dev/null
		_pw_add "$(_pw_keys | sed 's/$/=/')" "$2"
		;;
	esac
}

# _pw_long PATH WORD: the long name of option WORD of PATH.
_pw_long() {
	local e path long short arg
	for e in "${_pw_opts[@]}"; do
		IFS=$'\037' read -r path long short arg <<<"$e"
		[[ $path == "$1" ]] || continue
		if [[ $2 == "$long" || ( -n $short && $2 == "$short" ) ]]; then
			printf '%s\n' "$long"
			return
		fi
	done
}

# _pw_positional PATH N CUR: the Nth (from 0) argument of PATH.
_pw_positional() {
	case "$1:$2" in
	"pool rm:"* | "pool show:0" | "pool set:0" | "pool report:0")
		_pw_add "$(_pw_ids)" "$3" ;;
	"config get:0" | "config unset:0" | "config set:0")
		_pw_add "$(_pw_keys)" "$3" ;;
	"config set:1") _pw_key_values "$_pw_arg0" "$3" ;;
	"help:0") _pw_add "$(_pw_children "")" "$3" ;;
	"help:1")
		local c
		c=$(_pw_resolve "" "$_pw_arg0")
		[[ -n $c ]] && _pw_add "$(_pw_children "$c")" "$3"
		;;
	esac
}

_pw() {
	local cur=${COMP_WORDS[COMP_CWORD]} w i arg path= n=0 only= want=
	local eq=0 lhs= cmd verb
	local _pw_bin=${COMP_WORDS[0]} _pw_state= _pw_arg0=
	local -a _pw_cmds _pw_opts

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
			i=$((i + 1))
			want=
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
			elif arg=$(_pw_optarg "$path" "$w") && [[ -n $arg ]]
			then
				want=$(_pw_long "$path" "$w")
				[[ $want == --state && ${COMP_WORDS[i + 1]} == "=" ]] &&
				    _pw_state=${COMP_WORDS[i + 2]}
			fi
			continue
		fi
		if [[ -z $path ]]; then
			[[ $w == help ]] && { path=help; continue; }
			cmd=$(_pw_resolve "" "$w")
			[[ -z $cmd ]] && return 0
			path=$cmd
			continue
		fi
		if [[ $path != help && $path != *" "* ]] &&
		    [[ -n $(_pw_children "$path") ]]; then
			verb=$(_pw_resolve "$path" "$w")
			[[ -z $verb ]] && return 0
			path="$path $verb"
			continue
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
			_pw_add "$(_pw_longopts "")" "$cur"
		else
			_pw_add "$(_pw_children "") help" "$cur"
		fi
		return 0
	fi
	if [[ $path == help ]]; then
		_pw_positional help "$n" "$cur"
		return 0
	fi
	if [[ $path != *" "* && -n $(_pw_children "$path") ]]; then
		# The verb's place: only a verb, or --help.
		if [[ $cur == -* ]]; then
			_pw_add "--help" "$cur"
		else
			_pw_add "$(_pw_children "$path")" "$cur"
		fi
		return 0
	fi
	if [[ $cur == -* && -z $only ]]; then
		_pw_add "$(_pw_longopts "$path")" "$cur"
		return 0
	fi
	_pw_positional "$path" "$n" "$cur"
	return 0
}

complete -F _pw pw
