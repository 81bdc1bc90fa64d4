#!/bin/sh
# deps.sh -- the Debian packages pw builds and tests with.
#   --check    exit 0 when everything is there
#   --install  apt-get install what is missing
set -eu

PKGS="build-essential pkg-config clang
libsqlite3-dev libsodium-dev libcurl4-openssl-dev libcjson-dev
libmicrohttpd-dev libhiredis-dev libcmocka-dev
bats sqlite3 curl python3 openssl tinyproxy microsocks redis-server
hyperfine nginx-light wrk valgrind time prometheus
groff-base man-db zsh fish jq faketime"

missing() {
	for p in $PKGS; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		    grep -q 'install ok installed' || echo "$p"
	done
}

case "${1:---check}" in
--check)
	m=$(missing)
	[ -z "$m" ] && exit 0
	echo "missing packages:" $m >&2
	exit 1
	;;
--install)
	m=$(missing)
	[ -z "$m" ] && { echo "deps: all installed"; exit 0; }
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $m
	;;
*)
	echo "usage: deps.sh --check|--install" >&2
	exit 2
	;;
esac
