// Command vmtest runs a static binary (usually a Go test binary) inside a
// qemu guest with Debian's cloud kernel, where kernel WireGuard and ESP
// exist, and exits with the binary's status (125 when vmtest itself
// failed, 2 for bad flags):
//
//	go run ./tools/vmtest [flags] -- BINARY|PACKAGE [ARGS...]
//	CGO_ENABLED=0 go test -exec 'go run github.com/strait-net/strait/tools/vmtest --' ./encryption/ipsec/ -run Kernel
//
// See README.md for the flags, the guest's layout and timings, package vm
// for how it works, and hack/test-vm.sh for the suites `make test-vm` runs.
package main
