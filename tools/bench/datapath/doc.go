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
// Every hand-started wireguard-go runs in a session of its own (Setsid),
// as the agent starts strait-wireguard. With CONFIG_SCHED_AUTOGROUP each
// session is a scheduling group; a wireguard-go left in this program's
// session shares the group of the TCP sender and receiver, which made the
// baselines 10–18 % cheaper per byte than any strait (or real-node)
// wireguard-go can be (docs/benchmarks.md, section "Datapath").
//
// With -differences it also builds the routed baseline once per
// difference between strait's datapath and the hand copy (fwmark 0x1E00,
// the node's /32 in the allowed IPs, route mtu and protocol 0xC8,
// strait-cni's pod veth setup, IPv6 disabled as tools/lab does), once with
// all of them, and once with wireguard-go in this program's session, and
// reports each one's ratio to the plain routed baseline.
//
// All setups are built first and measured in interleaved rounds (-rounds,
// default 5), so load from elsewhere on the machine hits them alike. For
// each it measures TCP bulk throughput (one connection, -duration in all,
// default 10 s) and TCP round-trip time (1-byte request/response
// ping-pong with TCP_NODELAY, -rtt-iterations in all, mean, p50, p99),
// and the CPU time of the setup's wireguard-go processes per byte, then
// prints the figures, the ratios strait / hand-configured wireguard-go
// (goal: throughput ≥ 0.95, RTT within 10 %) over all rounds, and the
// medians of the per-round ratios (less sensitive to load bursts).
//
//	go run ./tools/bench/datapath [-duration 10s] [-rtt-iterations 20000] [-rounds 5] [-differences] [-bin-dir DIR]
//
// Needs root. Namespaces are named sl-bd<pid>-* (lab and veth pair) and
// sl-br<pid><tag>-* (routed baselines) and removed at the end, also on Ctrl-C;
// the baselines' UAPI sockets use interface names unique to the run.
// docs/benchmarks.md, section "Datapath" has the figures. Nothing imports this package.
package main
