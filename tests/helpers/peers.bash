# peers.bash -- real peers on loopback for the bats tests, and their cleanup.
#
# Load it from a bats file (`load ../helpers/peers`). Every peer listens on
# 127.0.0.1 (or ::1) on a port the kernel picked, runs in the foreground,
# logs to a file in the peers directory and is recorded there (pid and
# start time) so that stop_peers ends exactly it:
#
#   in setup_file/teardown_file  $BATS_FILE_TMPDIR/peers
#   in setup/@test/teardown      $BATS_TEST_TMPDIR/peers
#   outside bats                 $PEERS_DIR (must be set)
#
# Start shared peers in setup_file and call stop_peers in teardown_file; a
# test that starts its own peers calls stop_peers in teardown. Peers started
# inside a test are also listed for the file, so a stop_peers in
# teardown_file ends any that a test left behind.
#
#   free_port                  print a free loopback port
#   refused_port               REFUSED_PORT, also printed: a port where
#                              connecting is refused (a socket holds it
#                              bound, never listening). $(refused_port)
#                              works, but its holder is then an orphan,
#                              which stop_peers must wait for init to reap
#   wait_port PORT [SECS [HOST]]  wait until PORT accepts (default 10 s)
#   start_origin [--tls] [--ipv6] [-v]   tests/helpers/origin.py
#       ORIGIN_PORT ORIGIN_URL ORIGIN_PID ORIGIN_LOG       plain, 127.0.0.1
#     -v: the origin logs a line per request (to ORIGIN_LOG)
#       ORIGIN_TLS_PORT ORIGIN_TLS_URL ORIGIN_TLS_PID ORIGIN_CA   --tls
#       ORIGIN6_PORT ORIGIN6_URL ORIGIN6_PID                --ipv6 (::1)
#       ORIGIN6_TLS_PORT ORIGIN6_TLS_URL ORIGIN6_TLS_PID    --tls --ipv6
#     ORIGIN_CA signs a certificate for 127.0.0.1, ::1 and localhost (made
#     once per file): pass it to curl or pw with --cacert.
#   start_tinyproxy [--connect-port P]... [--user U --pass P] [--no-source]
#                   [--xtinyproxy]
#       TINYPROXY_PORT TINYPROXY_URL TINYPROXY_SRC, and TINYPROXY_PORTS /
#       TINYPROXY_SRCS (space-separated, one entry per call, in order);
#       TINYPROXY_USER TINYPROXY_PASS (empty without auth).
#     CONNECT is allowed to ORIGIN_TLS_PORT (when started before) and to
#     each --connect-port; with neither, to every port. With --user and
#     --pass every request (CONNECT too) needs Basic proxy authentication,
#     else tinyproxy answers 407; TINYPROXY_URL carries no credentials.
#     --xtinyproxy adds an X-Tinyproxy header with the client's address to
#     each request (a transparent proxy).
#   start_microsocks [--user U --pass P] [--no-source]
#       MICROSOCKS_PORT MICROSOCKS_SRC MICROSOCKS_PORTS MICROSOCKS_SRCS,
#       MICROSOCKS_USER MICROSOCKS_PASS (empty without auth)
#   start_blackhole            BLACKHOLE_PORT: accepts, reads, never answers
#   start_redis [--pass P]     REDIS_PORT REDIS_URL (no persistence; with
#                              --pass, requirepass P, and REDIS_URL
#                              carries no password)
#   start_badpeer MODE         tests/helpers/badpeer.py: a peer that
#       misbehaves (malformed, endless, huge-header, close-head,
#       close-body; see there), as a proxy or an origin alike;
#       BADPEER_PORT BADPEER_URL, BADPEER_COUNT (a file: the connections
#       it took so far)
#   slow_client PORT [ARGS...] badpeer.py --slow-client 127.0.0.1 PORT: a
#                              client sending one byte a second; prints
#                              "closed after N bytes in S s"
#   start_serve [ARGS...]      pw serve --listen on a free port, with ARGS
#       and the environment in the array SERVE_ENV (NAME=VALUE, if set);
#       SERVE_PORT SERVE_URL SERVE_PID SERVE_LOG (its stderr)
#   api METHOD PATH [CURL ARGS...]  a request to SERVE_URL (or API_URL):
#       STATUS, BODY, HDRS (headers, no CRs); post PATH JSON [CURL ARGS...]
#       the same with a JSON body (Content-Type: application/json), and
#       put PATH JSON [CURL ARGS...] with PUT; j FILTER: jq -r FILTER over
#       BODY
#   start_gateway [ARGS...]    pw serve -v --gateway on a free port, with
#       ARGS; GW (its URL) GW_URL GW_PORT GW_PID GW_LOG
#   stop_peers                 end every peer of this context, and wait
#   pid_alive PID              PID runs (a zombie does not count)
#   origin_bytes N             the N bytes the origin's /bytes/N sends
#   json_get PATH...           read JSON on stdin; print the value at each
#                              PATH (keys and list indexes joined by ".",
#                              e.g. headers.Via, header_list.0), one a line:
#                              strings raw, anything else as JSON
# After each start_*, _PEER_PID is the pid of the peer just started.
#
# Source addresses (*_SRC): each proxy binds its outgoing connections to its
# own loopback address, 127.1.(port/256).(port%256), so the origin's /ip
# tells which proxy carried a request, through CONNECT and SOCKS too.
# Targets on ::1 are reached from ::1. --no-source leaves it to the kernel.

case ${BASH_SOURCE[0]} in
/*) PEERS_HELPERS=${BASH_SOURCE[0]%/*} ;;
*/*) PEERS_HELPERS=$PWD/${BASH_SOURCE[0]%/*} ;;
*) PEERS_HELPERS=$PWD ;;
esac
PEERS_ORIGIN=$PEERS_HELPERS/origin.py
PEERS_BADPEER=$PEERS_HELPERS/badpeer.py
# A pyenv shim costs a second per start: prefer the system python3.
if [ -z "${PEERS_PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then
		PEERS_PYTHON=/usr/bin/python3
	else
		PEERS_PYTHON=python3
	fi
fi
# How long a peer may take to start listening, in seconds.
: "${PEERS_START_TIMEOUT:=10}"

_peers_err() {
	echo "peers: $*" >&2
	return 1
}

# _peers_dirs: _PD, the directory recording the peers of this context, and
# _PFD, the file-wide one (empty outside bats).
_peers_dirs() {
	_PFD=
	if [ -n "${PEERS_DIR:-}" ]; then
		_PD=$PEERS_DIR
	elif [ -n "${BATS_TEST_TMPDIR:-}" ]; then
		_PD=$BATS_TEST_TMPDIR/peers
		_PFD=$BATS_FILE_TMPDIR/peers
	elif [ -n "${BATS_FILE_TMPDIR:-}" ]; then
		_PD=$BATS_FILE_TMPDIR/peers
		_PFD=$_PD
	else
		_peers_err "set PEERS_DIR (or run under bats)"
		return
	fi
	[ -d "$_PD" ] || mkdir -p "$_PD"
}

# _peers_stat PID: _PST_STATE and _PST_START (fields 3 and 22 of
# /proc/PID/stat); fails when there is no such process.
_peers_stat() {
	local s
	{ read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	_PST_STATE=$1 _PST_START=${20}
}

pid_alive() {
	_peers_stat "${1:?usage: pid_alive PID}" || return 1
	[ "$_PST_STATE" != Z ] && [ "$_PST_STATE" != X ] &&
	    { [ -z "${2:-}" ] || [ "$2" = "$_PST_START" ]; }
}

# _peers_spawn NAME LOG CMD...: start CMD in the background with no tie to
# bats' file descriptors, and record it; sets _PEER_PID, _PEER_START and
# _PEER_REC (the record file).
_peers_spawn() {
	local name=$1 log=$2
	shift 2
	_peers_dirs || return
	"$@" </dev/null >"$log" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
	_PEER_PID=$!
	_PEER_START=gone
	_peers_stat "$_PEER_PID" && _PEER_START=$_PST_START
	_PEER_REC=$_PD/$name.$_PEER_PID.pid
	printf '%s %s %s\n' "$_PEER_PID" "$_PEER_START" "$log" >"$_PEER_REC"
	if [ -n "$_PFD" ] && [ "$_PFD" != "$_PD" ]; then
		mkdir -p "$_PFD/strays"
		printf '%s %s %s\n' "$_PEER_PID" "$_PEER_START" "$log" \
		    >"$_PFD/strays/${_PEER_REC##*/}"
	fi
}

# _peers_failed NAME LOG WHY: report a peer that did not start, with its log.
_peers_failed() {
	{
		echo "peers: $1 did not start: $3"
		if [ -s "$2" ]; then
			echo "peers: --- $2"
			tail -n 20 "$2" | sed 's/^/peers: /'
		fi
	} >&2
	return 1
}

free_port() {
	"$PEERS_PYTHON" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# _peers_connects HOST PORT: one connection attempt, closed at once.
_peers_connects() {
	{ : <>"/dev/tcp/$1/$2"; } 2>/dev/null
}

_peers_now() {
	_NOW=${EPOCHREALTIME/[.,]/}
}

wait_port() {
	local port=${1:?usage: wait_port PORT [SECS [HOST]]} secs=${2:-10}
	local host=${3:-127.0.0.1} end
	_peers_now
	end=$((_NOW + secs * 1000000))
	until _peers_connects "$host" "$port"; do
		_peers_now
		if [ "$_NOW" -ge "$end" ]; then
			_peers_err "wait_port: nothing accepts connections on $host port $port after ${secs}s"
			return
		fi
		sleep 0.02
	done
}

# _peers_wait NAME LOG TEST...: wait until TEST succeeds; fail early when
# the peer just spawned exits, or after PEERS_START_TIMEOUT.
_peers_wait() {
	local name=$1 log=$2 end
	shift 2
	_peers_now
	end=$((_NOW + PEERS_START_TIMEOUT * 1000000))
	until "$@"; do
		if ! pid_alive "$_PEER_PID" "$_PEER_START"; then
			_peers_failed "$name" "$log" "it exited"
			return
		fi
		_peers_now
		if [ "$_NOW" -ge "$end" ]; then
			_peers_failed "$name" "$log" \
			    "not ready after ${PEERS_START_TIMEOUT}s ($*)"
			return
		fi
		sleep 0.02
	done
}

# _peers_py NAME ARGS...: start origin.py with a --port-file and wait for
# the port; sets _PEER_PORT and _PEER_PID.
_peers_py() {
	local name=$1 pf log
	shift
	_peers_dirs || return
	pf=$(mktemp "$_PD/$name.XXXXXX.port") || return
	log=${pf%.port}.log
	_peers_spawn "$name" "$log" "$PEERS_PYTHON" "$PEERS_ORIGIN" \
	    --port-file "$pf" "$@" || return
	_peers_wait "$name" "$log" test -s "$pf" || return
	read -r _PEER_PORT <"$pf"
	_PEER_LOG=$log
}

# _peers_retry NAME LAUNCH: for daemons that take their port on the command
# line: pick a free port, LAUNCH PORT (which spawns, and sets _PEER_LOG),
# wait for it to accept. A port someone took meanwhile is retried with
# another. Sets _PEER_PORT.
_peers_retry() {
	local name=$1 launch=$2 port why
	_peers_dirs || return
	for _ in 1 2 3; do
		port=$(free_port) || return
		"$launch" "$port" || return
		why=$_PD/$name.$port.why
		if _peers_wait "$name" "$_PEER_LOG" _peers_connects 127.0.0.1 "$port" \
		    2>"$why"; then
			rm -f "$why"
			_PEER_PORT=$port
			return 0
		fi
		_peers_stop "$_PEER_REC"
	done
	cat "$why" >&2
	return 1
}

# _peers_source PORT: the loopback source address for a proxy on PORT.
_peers_source() {
	_SRC=127.1.$(($1 / 256)).$(($1 % 256))
}

# _peers_ca: a CA and a server certificate for 127.0.0.1, ::1, localhost,
# once per file (per PEERS_DIR outside bats); sets _PEERS_CA (a directory).
_peers_ca() {
	local base ca tmp
	_peers_dirs || return
	base=${_PFD:-$_PD}
	ca=$base/ca
	if [ ! -s "$ca/server.pem" ]; then
		mkdir -p "$base"
		tmp=$(mktemp -d "$base/ca.XXXXXX") || return
		cat >"$tmp/server.ext" <<-EOF
		subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
		basicConstraints = critical, CA:FALSE
		keyUsage = critical, digitalSignature, keyEncipherment
		extendedKeyUsage = serverAuth
		EOF
		if ! {
			openssl req -x509 -new -nodes -days 3650 \
			    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
			    -subj "/CN=pw test CA" \
			    -addext "basicConstraints=critical,CA:TRUE" \
			    -addext "keyUsage=critical,keyCertSign,cRLSign" &&
			openssl req -new -nodes \
			    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			    -keyout "$tmp/server.key" -out "$tmp/server.csr" \
			    -subj "/CN=localhost" &&
			openssl x509 -req -days 3650 -in "$tmp/server.csr" \
			    -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -set_serial 2 \
			    -extfile "$tmp/server.ext" -out "$tmp/server.pem"
		} >"$tmp/openssl.log" 2>&1; then
			cat "$tmp/openssl.log" >&2
			rm -rf "$tmp"
			_peers_err "could not make the test certificates"
			return
		fi
		# A test running in parallel may have won the race: keep its files.
		mv -T "$tmp" "$ca" 2>/dev/null || rm -rf "$tmp"
	fi
	_PEERS_CA=$ca
}

start_origin() {
	local tls="" ipv6="" args=() name=origin host=127.0.0.1 url
	while [ $# -gt 0 ]; do
		case $1 in
		--tls) tls=1 ;;
		--ipv6) ipv6=1 ;;
		-v) args+=(-v) ;;
		*) _peers_err "start_origin: unknown option $1"; return ;;
		esac
		shift
	done
	if [ -n "$ipv6" ]; then
		args+=(--ipv6)
		name=origin6
		host='[::1]'
	fi
	if [ -n "$tls" ]; then
		_peers_ca || return
		args+=(--tls "$_PEERS_CA/server.pem" "$_PEERS_CA/server.key")
		name=$name-tls
	fi
	_peers_py "$name" "${args[@]}" || return
	url=http${tls:+s}://$host:$_PEER_PORT
	case $name in
	origin) export ORIGIN_PORT=$_PEER_PORT ORIGIN_URL=$url \
	    ORIGIN_PID=$_PEER_PID ORIGIN_LOG=$_PEER_LOG ;;
	origin-tls) export ORIGIN_TLS_PORT=$_PEER_PORT ORIGIN_TLS_URL=$url \
	    ORIGIN_TLS_PID=$_PEER_PID ;;
	origin6) export ORIGIN6_PORT=$_PEER_PORT ORIGIN6_URL=$url \
	    ORIGIN6_PID=$_PEER_PID ;;
	origin6-tls) export ORIGIN6_TLS_PORT=$_PEER_PORT ORIGIN6_TLS_URL=$url \
	    ORIGIN6_TLS_PID=$_PEER_PID ;;
	esac
	if [ -n "$tls" ]; then
		export ORIGIN_CA=$_PEERS_CA/ca.pem
	fi
}

start_blackhole() {
	_peers_py blackhole --blackhole || return
	export BLACKHOLE_PORT=$_PEER_PORT
}

refused_port() {
	_peers_py refused --refuse || return
	export REFUSED_PORT=$_PEER_PORT
	printf '%s\n' "$_PEER_PORT"
}

_TP_CONNECT=()
_TP_SOURCE=1
_TP_USER=
_TP_PASS=
_TP_XTP=
_peers_tinyproxy_launch() {
	local port=$1 conf p
	conf=$_PD/tinyproxy.$port.conf
	_PEER_LOG=$_PD/tinyproxy.$port.log
	{
		echo "Port $port"
		echo "Listen 127.0.0.1"
		if [ -n "$_TP_SOURCE" ]; then
			# Tried in order: the second serves targets on ::1.
			_peers_source "$port"
			echo "Bind $_SRC"
			echo "Bind ::1"
		fi
		echo "Timeout 30"
		echo "MaxClients 100"
		echo "Allow 127.0.0.1"
		echo "ViaProxyName \"tinyproxy-$port\""
		echo "Syslog Off"
		echo "LogFile \"$_PEER_LOG\""
		echo "LogLevel Info"
		echo "PidFile \"$_PD/tinyproxy.$port.pidfile\""
		if [ -n "${ORIGIN_TLS_PORT:-}" ]; then
			echo "ConnectPort $ORIGIN_TLS_PORT"
		fi
		for p in "${_TP_CONNECT[@]}"; do
			echo "ConnectPort $p"
		done
		if [ -n "$_TP_USER" ]; then
			echo "BasicAuth $_TP_USER $_TP_PASS"
		fi
		if [ -n "$_TP_XTP" ]; then
			echo "XTinyproxy Yes"
		fi
	} >"$conf"
	_peers_spawn tinyproxy "$_PD/tinyproxy.$port.out" tinyproxy -d -c "$conf"
}

start_tinyproxy() {
	local src=
	_TP_CONNECT=()
	_TP_SOURCE=1
	_TP_USER="" _TP_PASS=""
	_TP_XTP=
	while [ $# -gt 0 ]; do
		case $1 in
		--connect-port)
			[ -n "${2:-}" ] ||
			    { _peers_err "start_tinyproxy: --connect-port needs a port"; return; }
			_TP_CONNECT+=("$2")
			shift
			;;
		--user|--pass)
			[ -n "${2:-}" ] ||
			    { _peers_err "start_tinyproxy: $1 needs a value"; return; }
			# tinyproxy's config takes them as two bare words.
			case $2 in
			*[!A-Za-z0-9._~-]*)
				_peers_err "start_tinyproxy: $1: letters, digits and ._~- only"
				return
				;;
			esac
			if [ "$1" = --user ]; then _TP_USER=$2; else _TP_PASS=$2; fi
			shift
			;;
		--no-source) _TP_SOURCE= ;;
		--xtinyproxy) _TP_XTP=1 ;;
		*) _peers_err "start_tinyproxy: unknown option $1"; return ;;
		esac
		shift
	done
	if { [ -n "$_TP_USER" ] && [ -z "$_TP_PASS" ]; } ||
	    { [ -z "$_TP_USER" ] && [ -n "$_TP_PASS" ]; }; then
		_peers_err "start_tinyproxy: --user and --pass go together"
		return
	fi
	_peers_retry tinyproxy _peers_tinyproxy_launch || return
	if [ -n "$_TP_SOURCE" ]; then
		_peers_source "$_PEER_PORT"
		src=$_SRC
	fi
	export TINYPROXY_PORT=$_PEER_PORT
	export TINYPROXY_URL=http://127.0.0.1:$_PEER_PORT
	export TINYPROXY_SRC=$src
	export TINYPROXY_USER=$_TP_USER TINYPROXY_PASS=$_TP_PASS
	export TINYPROXY_PORTS="${TINYPROXY_PORTS:+$TINYPROXY_PORTS }$_PEER_PORT"
	export TINYPROXY_SRCS="${TINYPROXY_SRCS:+$TINYPROXY_SRCS }${src:-127.0.0.1}"
}

_MS_USER=
_MS_PASS=
_MS_SOURCE=1
_peers_microsocks_launch() {
	local port=$1 args=(-i 127.0.0.1 -p "$1")
	_PEER_LOG=$_PD/microsocks.$port.log
	if [ -n "$_MS_SOURCE" ]; then
		_peers_source "$port"
		args+=(-b "$_SRC")
	fi
	if [ -n "$_MS_USER" ]; then
		args+=(-u "$_MS_USER" -P "$_MS_PASS")
	fi
	_peers_spawn microsocks "$_PEER_LOG" microsocks "${args[@]}"
}

start_microsocks() {
	local src=
	_MS_USER="" _MS_PASS="" _MS_SOURCE=1
	while [ $# -gt 0 ]; do
		case $1 in
		--user|--pass)
			[ -n "${2:-}" ] ||
			    { _peers_err "start_microsocks: $1 needs a value"; return; }
			if [ "$1" = --user ]; then _MS_USER=$2; else _MS_PASS=$2; fi
			shift
			;;
		--no-source) _MS_SOURCE= ;;
		*) _peers_err "start_microsocks: unknown option $1"; return ;;
		esac
		shift
	done
	if { [ -n "$_MS_USER" ] && [ -z "$_MS_PASS" ]; } ||
	    { [ -z "$_MS_USER" ] && [ -n "$_MS_PASS" ]; }; then
		_peers_err "start_microsocks: --user and --pass go together"
		return
	fi
	_peers_retry microsocks _peers_microsocks_launch || return
	if [ -n "$_MS_SOURCE" ]; then
		_peers_source "$_PEER_PORT"
		src=$_SRC
	fi
	export MICROSOCKS_PORT=$_PEER_PORT MICROSOCKS_SRC=$src
	export MICROSOCKS_USER=$_MS_USER MICROSOCKS_PASS=$_MS_PASS
	export MICROSOCKS_PORTS="${MICROSOCKS_PORTS:+$MICROSOCKS_PORTS }$_PEER_PORT"
	export MICROSOCKS_SRCS="${MICROSOCKS_SRCS:+$MICROSOCKS_SRCS }${src:-127.0.0.1}"
}

_REDIS_PASS=
_peers_redis_launch() {
	local port=$1 auth=()
	_PEER_LOG=$_PD/redis.$port.log
	mkdir -p "$_PD/redis.$port"
	if [ -n "$_REDIS_PASS" ]; then
		auth=(--requirepass "$_REDIS_PASS")
	fi
	_peers_spawn redis "$_PEER_LOG" redis-server \
	    --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
	    --daemonize no --dir "$_PD/redis.$port" --logfile '' "${auth[@]}"
}

start_redis() {
	_REDIS_PASS=
	case ${1:-} in
	'') ;;
	--pass)
		[ -n "${2:-}" ] ||
		    { _peers_err "start_redis: --pass needs a value"; return; }
		_REDIS_PASS=$2
		;;
	*) _peers_err "start_redis: unknown option $1"; return ;;
	esac
	_peers_retry redis _peers_redis_launch || return
	export REDIS_PORT=$_PEER_PORT REDIS_URL=redis://127.0.0.1:$_PEER_PORT
}

start_badpeer() {
	local mode=${1:?usage: start_badpeer MODE} pf log cf
	_peers_dirs || return
	pf=$(mktemp "$_PD/badpeer.XXXXXX.port") || return
	log=${pf%.port}.log
	cf=${pf%.port}.count
	_peers_spawn badpeer "$log" "$PEERS_PYTHON" "$PEERS_BADPEER" \
	    --mode "$mode" --port-file "$pf" --count-file "$cf" || return
	_peers_wait badpeer "$log" test -s "$pf" || return
	read -r _PEER_PORT <"$pf"
	export BADPEER_PORT=$_PEER_PORT
	export BADPEER_URL=http://127.0.0.1:$_PEER_PORT BADPEER_COUNT=$cf
}

slow_client() {
	local port=${1:?usage: slow_client PORT [ARGS...]}
	shift
	"$PEERS_PYTHON" "$PEERS_BADPEER" --slow-client 127.0.0.1 "$port" "$@"
}

_serve_launch() {
	_PEER_LOG=$_PD/serve.$1.log
	_peers_spawn serve "$_PEER_LOG" env ${SERVE_ENV[@]+"${SERVE_ENV[@]}"} \
	    pw serve --listen "127.0.0.1:$1" "${SERVE_ARGS[@]}"
}

start_serve() {
	SERVE_ARGS=("$@")
	_peers_retry serve _serve_launch || return
	SERVE_PORT=$_PEER_PORT
	SERVE_PID=$_PEER_PID
	SERVE_URL=http://127.0.0.1:$_PEER_PORT
	SERVE_LOG=$_PEER_LOG
}

api() {
	local m=$1 p=$2
	shift 2
	STATUS=$(curl -sS -o "$BATS_TEST_TMPDIR/body" \
	    -D "$BATS_TEST_TMPDIR/hdrs" -w '%{http_code}' -X "$m" "$@" \
	    "${API_URL:-$SERVE_URL}$p") || return
	BODY=$(cat "$BATS_TEST_TMPDIR/body")
	HDRS=$(tr -d '\r' <"$BATS_TEST_TMPDIR/hdrs")
}

post() {
	local p=$1 b=$2
	shift 2
	api POST "$p" -H 'Content-Type: application/json' --data-binary "$b" \
	    "$@"
}

put() {
	local p=$1 b=$2
	shift 2
	api PUT "$p" -H 'Content-Type: application/json' --data-binary "$b" \
	    "$@"
}

j() {
	jq -r "$1" <<<"$BODY"
}

_gateway_launch() {
	_PEER_LOG=$_PD/gateway.$1.log
	_peers_spawn gateway "$_PEER_LOG" env ${GW_ENV[@]+"${GW_ENV[@]}"} \
	    pw serve -v --gateway "127.0.0.1:$1" "${GW_ARGS[@]}"
}

start_gateway() {
	GW_ARGS=("$@")
	_peers_retry gateway _gateway_launch || return
	GW_PORT=$_PEER_PORT
	GW_PID=$_PEER_PID
	GW_URL=http://127.0.0.1:$_PEER_PORT
	GW=$GW_URL
	GW_LOG=$_PEER_LOG
}

# _peers_ppid PID: _PPID, the parent of PID.
_peers_ppid() {
	local line
	_PPID=
	while { read -r line; } 2>/dev/null; do
		case $line in
		PPid:*) _PPID=${line#PPid:}; _PPID=${_PPID//[[:space:]]/}; return 0 ;;
		esac
	done <"/proc/$1/status"
} 2>/dev/null

# _peers_stop RECORD...: TERM, wait up to 5 s, then KILL; reap our own
# children; drop the records. A peer that is not our child (started by a
# test that ended, or in a $(...)) is reaped by init, which may take a
# while: wait (up to 5 s) until it is gone, so that nothing is left behind.
_peers_stop() {
	local rec pid st log pids=() starts=() orphans=() k n left
	for rec in "$@"; do
		[ -f "$rec" ] || continue
		read -r pid st log <"$rec" || continue
		if pid_alive "$pid" "$st"; then
			_peers_ppid "$pid" || :
			if [ "$_PPID" != "$BASHPID" ]; then
				orphans+=("$pid")
			fi
			kill -TERM "$pid" 2>/dev/null || :
			pids+=("$pid")
			starts+=("$st")
		fi
	done
	for ((n = 1; n <= 300 && ${#pids[@]} > 0; n++)); do
		left=0
		for k in "${!pids[@]}"; do
			if pid_alive "${pids[$k]}" "${starts[$k]}"; then
				left=1
				if [ "$n" = 250 ]; then
					echo "peers: pid ${pids[$k]} ignored SIGTERM; killing it" >&2
					kill -KILL "${pids[$k]}" 2>/dev/null || :
				fi
			fi
		done
		[ "$left" = 1 ] || break
		sleep 0.02
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || :
	done
	for ((n = 0; n < 250 && ${#orphans[@]} > 0; n++)); do
		left=0
		for pid in "${orphans[@]}"; do
			if _peers_stat "$pid" && [ "$_PST_STATE" = Z ]; then
				left=1
			fi
		done
		[ "$left" = 1 ] || break
		sleep 0.02
	done
	for rec in "$@"; do
		rm -f "$rec"
		if [ -n "$_PFD" ]; then
			rm -f "$_PFD/strays/${rec##*/}"
		fi
	done
	return 0
}

stop_peers() {
	local rec recs=()
	_peers_dirs || return
	for rec in "$_PD"/*.pid; do
		if [ -f "$rec" ]; then recs+=("$rec"); fi
	done
	# In file context also end what tests left running.
	if [ -n "$_PFD" ] && [ "$_PFD" = "$_PD" ]; then
		for rec in "$_PD"/strays/*.pid; do
			if [ -f "$rec" ]; then recs+=("$rec"); fi
		done
	fi
	if [ ${#recs[@]} -gt 0 ]; then
		_peers_stop "${recs[@]}"
	fi
}

origin_bytes() {
	"$PEERS_PYTHON" "$PEERS_ORIGIN" --gen "${1:?usage: origin_bytes N}"
}

json_get() {
	"$PEERS_PYTHON" -c '
import json, sys
doc = json.load(sys.stdin)
for path in sys.argv[1:]:
    v = doc
    for k in path.split(".") if path else []:
        v = v[int(k)] if isinstance(v, list) else v[k]
    print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))' "$@"
}
