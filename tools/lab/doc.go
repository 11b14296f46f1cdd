// Package lab builds strait clusters as network namespaces on one machine:
// the network-namespace lab of issue 6, used by the end-to-end tests
// (tools/lab/e2e), the datapath benchmark (tools/bench/datapath), the `lab`
// CLI (tools/lab/cmd/lab) and straitctl demo.
//
// # Topology
//
// For lab name L, Up(ctx, log, Spec) creates (C, N, P 1-based):
//
//	sl-L-ul        underlay: bridge br0 (no address), one port per namespace below
//	sl-L-cCapi     cluster C's strait-apiserver, eth0 198.18.C.1/16
//	sl-L-cCnN      node N of cluster C, eth0 198.18.C.(10+N)/16, strait-agent
//	sl-L-cCnNpP    pod P of that node, created by strait-cni (10.C.N.0/24)
//
// Every namespace has lo up and IPv6 off (no link-local chatter on the
// underlay); nodes forward (ip_forward=1, rp_filter=0). The underlay MTU is
// Spec.UnderlayMTU on every port and the bridge.
//
// Each cluster's strait-apiserver runs as a process in its namespace
// (certificates from `certs generate --hosts 198.18.C.1`, embedded etcd).
// With Spec.Connect the clusters are joined in a full mesh by writing each
// apiserver's --clustermesh-config directory the way straitctl connect
// does (<remote>, <remote>.etcd-client-ca.crt, .crt, .key), and Up waits
// until each cluster's etcd holds cilium/cluster-config/<remote>. Each
// agent runs as `ip netns exec sl-L-cCnN sh -c 'mount --bind
// <node>/run-wireguard /run/wireguard && exec strait-agent ...'`, so each
// node has a private /run/wireguard and its own strait-wg0; the
// strait-wireguard process an agent starts inherits that mount namespace and
// outlives agent restarts. Pods are created by running strait-cni ADD in the
// node's namespace exactly as a container runtime does.
//
// Up returns when every agent's endpointapi Status shows every remote
// cluster ready, every other node as a WireGuard peer with its pod CIDR, and
// every pod of every cluster it sees. On any error Up tears down what it
// built and returns the error with the tail of the log at fault.
//
// # Work directory
//
// Spec.WorkDir holds, per cluster, certs/, mesh/, etcd/, apiserver.log,
// context.yaml (a straitctl context: contract §9) and per node state/ (the
// agent's --state-dir with wireguard.key and strait-wireguard.log/.pid),
// run-wireguard/, ipam/, agent.sock and agent.log. The record file lab.json
// lists every namespace and pid file before it is created, so Destroy (and
// `lab down`) removes a lab after a crash: processes by pid file (only when
// the pid still runs the recorded binary), namespaces by name (also any
// other "sl-L-*"). Close does the same for a live lab; neither deletes
// the work directory.
//
// # Controlling a running lab
//
// AgentStop (SIGKILL for a crash, SIGTERM for a clean stop) and AgentStart,
// ApiserverStop and ApiserverStart, RemoveNode (stop the agent and its
// WireGuard process, delete its node and ipcache entries from etcd and its
// namespaces), Etcd (an admin client dialled from inside the apiserver's
// namespace), Agent (an endpointapi client). Do runs Go code on a thread
// inside a namespace; DialIn and ListenIn open sockets that stay there.
// Traffic helpers (no external tools): EchoServer/Echo (TCP), Ping (ICMP
// through a raw socket), StreamServer/StartStream (a sequence-numbered TCP
// stream whose every byte is verified, carrying a marker the underlay
// capture in tools/lab/capture must never see).
//
// # Errors
//
// Spec errors name the field. ErrExists: the work directory already holds
// a lab record; ErrNoRecord, ErrRecord: Destroy found no or a bad record;
// ErrUnknown: a cluster, node or pod not in the lab; ErrStreamData,
// ErrEchoMismatch: traffic came back altered. Needs root (namespaces, mounts)
// and iproute2's `ip`.
package lab
