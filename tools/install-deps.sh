#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages a make target needs, only those missing.
# usage: tools/install-deps.sh build|demo|test|bench
# Uses apt-get (through sudo when not root).  Never touches anything else.
set -eu

what=${1:-build}
build="gcc make autoconf pkg-config libc6-dev libfuse3-dev fuse3 liburing-dev libxxhash-dev liblmdb-dev libcurl4-openssl-dev check libmicrohttpd-dev"
case "$what" in
build|demo) pkgs="$build" ;;
test) pkgs="$build python3 python3-numpy python3-torch nginx-light nodejs npm curl procps util-linux util-linux-extra attr valgrind iproute2" ;;
bench) pkgs="$build python3 nginx-light curl procps" ;;
*) echo "usage: $0 build|demo|test|bench" >&2; exit 2 ;;
esac

# A tool already on the machine from elsewhere (node and npm are often not
# Debian's) counts as present: installing Debian's over it can conflict.
provided() {
	case "$1" in
	nodejs) command -v node >/dev/null 2>&1 ;;
	npm) command -v npm >/dev/null 2>&1 ;;
	nginx-light) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] ;;
	gcc|make|curl|valgrind|autoconf|pkg-config) command -v "$1" >/dev/null 2>&1 ;;
	*) return 1 ;;
	esac
}

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" &&
		! provided "$p"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "install-deps: missing Debian packages:$missing; run as root or install sudo" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
