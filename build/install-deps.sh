#!/usr/bin/env bash
# Installs what `make test` or `make bench` needs on a fresh Debian 12 machine:
# Debian packages through apt-get (there is no PyPI here) and Go tools through
# the module proxy. Anything already present is left alone, so a warm machine
# pays only for the dpkg query.
set -euo pipefail

case "${1:-test}" in
test)
	packages=(libpython3.11-dev python3-flask python3-django python3-requests curl)
	;;
bench)
	packages=(libpython3.11-dev python3-flask python3-django wrk uwsgi-core uwsgi-plugin-python3
		gunicorn python3-gevent python3-waitress nghttp2-client)
	;;
*)
	echo "usage: $0 test|bench" >&2
	exit 2
	;;
esac

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing from Debian: ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-test}" = test ] && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
	echo "installing staticcheck from the Go module proxy"
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
