#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian 12 machine. Idempotent:
# every package is checked before apt-get is called.
set -euo pipefail

need=()
for pkg in iproute2 ca-certificates; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need root to install: ${need[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
go mod download
