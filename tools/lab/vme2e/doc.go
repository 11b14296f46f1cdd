// Package vme2e holds the kernel-VM end-to-end tests of issues 6 and 8:
// the tools/lab clusters (2 clusters × 2 nodes × 1 pod, real
// strait-apiserver, strait-agent and strait-cni processes in network
// namespaces) with the encryption this machine's kernel lacks:
//
//   - TestVMKernelWireGuard: kernel WireGuard (--wireguard-mode kernel).
//     Every pod reaches every pod on another node over TCP and ICMP, every
//     agent reports a kernel device, the underlay carries only UDP 51871
//     between node addresses (plus control-plane TCP and ARP) and never the
//     payload marker, and a TCP stream survives both of its agents being
//     killed and restarted with every byte verified.
//   - TestVMIPsec: IPsec (--encryption ipsec, XFRM ESP tunnel mode). Pod
//     traffic flows; the underlay carries only ESP between node addresses
//     for it; an agent restart under a ping flood (one sequence-numbered
//     echo every 10 ms) and a TCP stream keeps every XFRM state and loses
//     no packet; a key rotation (a line with SPI+1 appended to the shared
//     key file) under the same traffic loses no packet, shows 4 states per
//     remote node while both keys are live and 2 after the rotation delay;
//     a node "reboot" (new boot ID) changes exactly the keys of that node's
//     pairs, and traffic flows again (a TCP stream to its pod across the
//     reboot arrives intact). Each wait for a state the lab must reach is
//     bounded (4 minutes, far above what TCG needs) so a failure ends the
//     test instead of the suite's timeout.
//
// Where they run: `hack/test-vm.sh vme2e` builds this package's test binary
// and ./cmd/... statically and runs them inside Debian's cloud kernel under
// qemu (tools/vmtest), with STRAIT_BIN_DIR=/opt/strait/bin. On a host whose
// kernel lacks WireGuard or ESP (this project's build machines) the tests
// skip, naming the missing feature; inside the VM (strait.vmtest=1 on the
// kernel command line) a missing feature is a failure, never a skip. They
// need root (namespaces, mounts) and skip without it.
//
// How the lab is bent for these tests, without changing tools/lab: the
// lab's Spec.BinDir is a directory of this package's making that links the
// real binaries and puts a small shell wrapper in place of strait-agent.
// The wrapper (run by the lab as `ip netns exec NODE sh -c 'mount --bind
// ... && exec strait-agent ...'`, so inside the agent's private mount
// namespace) bind-mounts the node's own boot ID file (<node dir>/boot_id)
// over /proc/sys/kernel/random/boot_id, because every node of the lab
// shares one kernel and so one boot ID, and a reboot is simulated by
// writing a new one and restarting the agent; and it appends extra agent
// flags (--ipsec-rotation-delay, which the lab does not pass).
//
// The package has no non-test code.
package vme2e
