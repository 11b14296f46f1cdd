// Package e2e holds the end-to-end tests of issue 6: strait clusters built
// by tools/lab as network namespaces (userspace WireGuard on this machine's
// kernel), real strait-apiserver, strait-agent, strait-wireguard and
// strait-cni processes (internal/binaries: $STRAIT_BIN_DIR or built once in
// TestMain), traffic from Go code inside pod namespaces and an AF_PACKET
// capture of the underlay (tools/lab/capture) that must never see a
// plaintext pod packet nor the marker the tests put in their payloads:
//
//   - TestMesh: 2 clusters × 2 nodes × 2 pods; every pod reaches every pod
//     on another node over TCP and ICMP; then, under a running
//     sequence-numbered TCP stream between clusters: agents killed (-9)
//     and restarted, an apiserver stopped for 20 s, a node's WireGuard key
//     regenerated (peers converge), a node removed (its peer and routes
//     go); the stream ends with every byte verified and no reset;
//   - TestJumboUnderlay: 9000-byte underlay, device and pod MTU 8920, a
//     64 MiB transfer verified;
//   - TestStrictMode: a misroute that would send a pod packet out of the
//     underlay device unencrypted drops it instead.
//
// Tests need root and skip without it; CI runs them as root. Run:
//
//	go test -v ./tools/lab/e2e/
//
// The package has no non-test code.
package e2e
