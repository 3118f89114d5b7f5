#!/usr/bin/env bash
# Builds wsgo against every CPython 3.9+ that pyenv has on this machine and
# checks that each build serves the quickstart app. Machines without pyenv
# skip this step: the Debian build is tested by the Go suite.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v pyenv >/dev/null 2>&1 || { echo "other-pythons: no pyenv, skipped"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for v in $(pyenv versions --bare | grep -E '^3\.(9|1[0-9])\.[0-9]+$'); do
	py="$(pyenv prefix "$v")/bin/python3"
	bin="$tmp/wsgo-$v"
	make --no-print-directory -s build PYTHON="$py" BIN="$bin" >/dev/null
	"$bin" --module hello --chdir examples --http-socket 127.0.0.1:0 >/dev/null 2>"$tmp/err-$v" &
	pid=$!
	url=""
	for _ in $(seq 100); do
		url=$(grep -o 'http://[0-9.:]*' "$tmp/err-$v" | head -1 || true)
		[ -n "$url" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	body=$(curl -s --max-time 5 "$url/" || true)
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if [ "$body" != "Hello world!" ]; then
		echo "other-pythons: the build against Python $v did not serve hello:" >&2
		cat "$tmp/err-$v" >&2
		exit 1
	fi
	echo "other-pythons: Python $v ok"
done
