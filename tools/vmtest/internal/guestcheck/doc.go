// Package guestcheck holds the checks that prove a vmtest guest provides
// what the kernel suites need: the runner's mounts, iproute2, veth between
// two network namespaces, a kernel WireGuard tunnel (netlink + wgctrl) and
// an ESP transport with rfc4106(gcm(aes)) states and policies (netlink
// XFRM) that really encrypts a ping.
//
// Consumers: the selfcheck program (booted by tools/vmtest/vm's tests) and
// this package's own TestInGuest, which hack/test-vm.sh runs inside the
// guest as its first suite. The checks change the current network
// namespace's links and need root; they are meant for the guest only
// (InGuest), where nothing else runs: on the host, TestInGuest skips.
//
// Lifecycle: NewEnv names the two namespaces; run All() in order (later
// checks reuse the namespaces and veth pair earlier ones built); Close
// deletes the namespaces and links. Each check returns an error naming the
// command or netlink call that failed.
package guestcheck
