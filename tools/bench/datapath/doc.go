// Command datapath measures strait's pod-to-remote-pod datapath against
// three baselines in one run (issue 6):
//
//   - strait: a tools/lab lab of 2 clusters × 1 node × 1 pod, userspace
//     WireGuard (strait-wireguard) set up by the agents; traffic from the
//     pod of cluster1 to the pod of cluster2 (pod veth → node → strait-wg0 →
//     underlay bridge → node → pod veth);
//   - wireguard-go by hand: two namespaces joined by a veth, each running
//     strait-wireguard (wireguard-go) configured by this program through
//     wgctrl, traffic between the two tunnel addresses;
//   - plaintext veth: the same two namespaces, traffic on the veth;
//   - wireguard-go by hand, pods behind nodes: strait's topology (pod veth
//     → routing node → wireguard-go → bridge → node → pod veth) built and
//     configured by hand, so the cost of the topology and the cost of
//     strait's own setup can be told apart.
//
// All setups are built first and measured in interleaved rounds (-rounds,
// default 5), so load from elsewhere on the machine hits them alike. For
// each it measures TCP bulk throughput (one connection, -duration in all,
// default 10 s) and TCP round-trip time (1-byte request/response
// ping-pong with TCP_NODELAY, -rtt-iterations in all, mean, p50, p99),
// then prints the figures and the ratios strait / hand-configured
// wireguard-go (goal: throughput ≥ 0.95, RTT within 10 %).
//
//	go run ./tools/bench/datapath [-duration 10s] [-rtt-iterations 20000] [-rounds 5] [-bin-dir DIR]
//
// Needs root. Namespaces are named sl-bd<pid>-* (lab and veth pair) and
// sl-br<pid>-* (routed baseline) and removed at the end, also on Ctrl-C;
// the baselines' UAPI sockets use interface names unique to the run.
// docs/bench/datapath.md has the figures. Nothing imports this package.
package main
