#!/usr/bin/env bash
# Installs what `make test` and `make demo` need on a fresh Debian 12 machine.
# Idempotent: every package is checked before apt-get is called.
#
#   iproute2                 `ip netns exec`, `ip`, `tc` (lab, tests)
#   qemu-system-x86, busybox-static, kmod, cpio
#                            the kernel VM runner (tools/vmtest): kernel
#                            WireGuard and IPsec suites, this kernel has neither
#   --generate adds clang, llvm, libbpf-dev: only to regenerate the committed
#                            bpf2go objects (`make generate`)
set -euo pipefail

pkgs=(iproute2 ca-certificates qemu-system-x86 busybox-static kmod cpio)
if [ "${1:-}" = "--generate" ]; then
	pkgs+=(clang llvm libbpf-dev)
fi
need=()
for pkg in "${pkgs[@]}"; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need root to install: ${need[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
go mod download
