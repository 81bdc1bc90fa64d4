#!/bin/sh
# demo.sh -- pw's main job end to end, on a throw-away state file.
set -eu
: "${PW_BUILD:?PW_BUILD must name the build directory}"
share=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/pw-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
export PATH="$PW_BUILD:$PATH" PW_STATE="$dir/state.db"
export XDG_CONFIG_HOME="$dir/config"

say() { printf '\n$ %s\n' "$*"; "$@"; }

say pw pool add - <"$share/demo-proxies.txt"
say pw pool add --country DE --source demo http://127.0.0.1:8888
say pw pool ls
say pw pool show 3
say pw config set strategy random
say pw config list
say pw pool ls --scheme socks5 --json
