// Package demo is `straitctl demo` (issue 7): it builds strait clusters on
// this machine, meshes them, proves that pod traffic between clusters
// crosses the underlay only encrypted, prints a summary and tears
// everything down.
//
// # What Run does
//
//  1. preflight: root, iproute2, every binary in Options.BinDir
//     (strait-apiserver, strait-agent, strait-wireguard, strait-cni,
//     straitctl), the work directory (absent, empty, or a previous demo's:
//     see MarkerFile), the lab name (DefaultName, or "d<pid>" when another
//     "demo" lab's namespaces exist);
//  2. build clusters: tools/lab Up with Connect false, so each cluster
//     (its strait-apiserver with an embedded etcd, one strait-agent per
//     node, pods created through strait-cni) comes up alone;
//  3. start the underlay capture (tools/lab/capture) and a watch for the
//     first encrypted frame between nodes of different clusters;
//  4. connect: `straitctl connect --mode mesh --context ...` (the binary
//     from BinDir, run in cluster 1's apiserver namespace, since the host
//     namespace has no route to the lab's underlay); from the moment it
//     returns, one pod pings the first pod of every other cluster;
//  5. wait for the mesh: every agent (endpoint API socket) sees every
//     remote cluster ready and, with WireGuard, every other node as a peer
//     holding its pod CIDR; then `straitctl status --wait -o json` must say
//     Ready;
//  6. traffic: from every pod to every pod of the other clusters, one TCP
//     echo carrying a random marker and one ICMP echo, 8 pairs at a time;
//     a pair that fails is tried again until 25 s after the step began,
//     and counted in Summary.Retried: when two nodes initiate a WireGuard
//     handshake at the same moment, wireguard-go can reject the crossed
//     response and only retries after 15 s;
//  7. underlay proof: no plaintext pod packet, the marker never seen, no
//     unexpected frame, encrypted frames of the mode's kind (WireGuard UDP
//     51871 between node addresses, or ESP) including one between clusters;
//  8. summary table (Summary.WriteTable), then teardown (lab Close, then a
//     check that no namespace "sl-<name>-*" and no process of the work
//     directory is left, then the work files are removed); with Keep the
//     topology stays and Summary.WriteExplore says how to look at it.
//
// Time to first encrypted cross-cluster packet is measured from the moment
// straitctl connect returned to the first WireGuard/ESP frame between nodes
// of different clusters the watch saw; it includes the apiservers'
// caching of each other, the agents learning the remote nodes and the
// first WireGuard handshake.
//
// # Failure and interruption
//
// Every failure is a *StepError naming the step (Step* constants), with
// the tail of the relevant log (lab, agent, straitctl output). Everything
// is torn down before Run returns, under its own bounded context, also when
// ctx was cancelled (Ctrl-C). The work directory's logs stay after a
// failure; the next demo or Down removes them. With encryption ipsec on a
// kernel without ESP the agents refuse to start and Run fails in "build
// clusters" with the agent's message.
//
// Down removes a kept demo, or one whose process died: lab.Destroy from the
// lab record in the work directory (processes by pid file, namespaces by
// name), then the demo's files.
//
// # Errors
//
// ErrOption (names the flag), ErrNotRoot, ErrExists (a demo is up in the
// directory), ErrNoDemo (Down found nothing), ErrUnreached (pods did not
// reach each other), ErrNotEncrypted (the underlay proof failed),
// ErrLeftover (teardown left namespaces or processes).
//
// Who uses it: cmd/straitctl (demo, demo down) and this package's tests.
// It needs root and imports tools/lab, tools/lab/capture,
// clustermesh/connect (types of the status JSON) and agent/endpointapi.
package demo
