#!/usr/bin/env bash
# Runs the kernel VM suites: each package's tests, built statically, inside
# qemu with Debian's cloud kernel (tools/vmtest), where kernel WireGuard and
# ESP exist. `make test-vm` runs this; `make test` runs it after the host tests.
#
# usage: hack/test-vm.sh [FILTER]     (FILTER: run only suites whose package contains it)
# env:   VMTEST_FLAGS   extra tools/vmtest flags for every suite (e.g. --verbose)
#        STRAIT_VMTEST_CACHE  kernel/initramfs cache (default ~/.cache/strait/vmtest)
#
# Rules for the list below:
# - a package directory that does not exist (yet) is skipped with a note;
# - a package that exists must build, and PATTERN must match at least one of
#   its tests: "no tests to run" is a failure, and so is a run in which no test
#   passed (every matching test skipped: the guest lacked something);
# - the project's binaries (./cmd/...) are built statically and put into the
#   guest at /opt/strait/bin, with STRAIT_BIN_DIR=/opt/strait/bin (contract §10).
set -euo pipefail

# package                          -test.run pattern   extra vmtest flags
SUITES=(
	"tools/vmtest/internal/guestcheck  InGuest             "
	"encryption/wireguard              Kernel              "
	"encryption/ipsec                  Kernel              "
	"tools/lab/vme2e                   TestVM              --mem 3072"
)

TEST_TIMEOUT=${TEST_TIMEOUT:-30m}
VM_TIMEOUT=${VM_TIMEOUT:-40m}
filter=${1:-}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d "${TMPDIR:-/tmp}/strait-test-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT

note() { printf 'test-vm: %s\n' "$*" >&2; }

note "building tools/vmtest and the static binaries of ./cmd/..."
go build -o "$work/vmtest" ./tools/vmtest
mkdir -p "$work/bin"
CGO_ENABLED=0 go build -o "$work/bin/" ./cmd/...

declare -a summary=()
failed=0
for line in "${SUITES[@]}"; do
	read -r pkg pattern extra <<<"$line"
	[[ -z "$filter" || "$pkg" == *"$filter"* ]] || continue
	if [[ ! -d "$pkg" ]]; then
		note "skip $pkg: not in this tree"
		summary+=("SKIP  $pkg (not in this tree)")
		continue
	fi
	name=$(echo "$pkg" | tr '/' '_')
	bin="$work/$name.test"
	note "building $pkg (CGO_ENABLED=0 go test -c)"
	if ! CGO_ENABLED=0 go test -c -o "$bin" "./$pkg"; then
		summary+=("FAIL  $pkg (build)")
		failed=1
		continue
	fi
	if [[ ! -x "$bin" ]]; then
		summary+=("FAIL  $pkg (package has no tests)")
		failed=1
		continue
	fi
	note "running $pkg -test.run '$pattern' in the VM"
	log="$work/$name.log"
	start=$(date +%s)
	set +e
	# shellcheck disable=SC2086 # $extra and $VMTEST_FLAGS are word lists
	(cd "$pkg" && "$work/vmtest" --stats --timeout "$VM_TIMEOUT" \
		--file "$work/bin:/opt/strait/bin" --env STRAIT_BIN_DIR=/opt/strait/bin \
		$extra ${VMTEST_FLAGS:-} -- "$bin" -test.v -test.count=1 -test.timeout "$TEST_TIMEOUT" -test.run "$pattern") \
		2>&1 | tee "$log"
	status=${PIPESTATUS[0]}
	set -e
	secs=$(($(date +%s) - start))
	passed=$(grep -c -- '^--- PASS' "$log" || true)
	skipped=$(grep -c -- '^--- SKIP' "$log" || true)
	if [[ $status -ne 0 ]]; then
		summary+=("FAIL  $pkg -run '$pattern' (exit $status, ${secs}s)")
		failed=1
	elif grep -q 'testing: warning: no tests to run' "$log"; then
		summary+=("FAIL  $pkg -run '$pattern' (no tests to run)")
		failed=1
	elif [[ $passed -eq 0 ]]; then
		summary+=("FAIL  $pkg -run '$pattern' (no test passed, $skipped skipped)")
		failed=1
	else
		summary+=("ok    $pkg -run '$pattern' ($passed passed, $skipped skipped, ${secs}s)")
	fi
done

echo
echo "test-vm summary:"
printf '  %s\n' "${summary[@]}"
# The plain closing line CI reads: suites, not tests.
nok=0 nfail=0
for l in "${summary[@]}"; do
	case "$l" in ok*) nok=$((nok + 1)) ;; FAIL*) nfail=$((nfail + 1)) ;; esac
done
echo "test-vm: $nok passed, $nfail failed"
exit $failed
