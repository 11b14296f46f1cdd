package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strait-net/strait/agent/endpointapi"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RunWireGuardDir is where wireguard-go puts its UAPI sockets; each agent
// gets a private bind mount of its node's directory there.
const RunWireGuardDir = "/run/wireguard"

// upAgents starts every agent and waits until they see each other.
func (l *Lab) upAgents(ctx context.Context) error {
	if err := os.MkdirAll(RunWireGuardDir, 0o700); err != nil {
		return fmt.Errorf("mount point %s: %w", RunWireGuardDir, err)
	}
	if l.spec.Encryption == EncryptionIPsec {
		if err := writeIPsecKey(l.ipsecKeyFile()); err != nil {
			return err
		}
	}
	for _, n := range l.nodes {
		if err := mkdirs(n.Dir, n.StateDir, filepath.Join(n.Dir, "run-wireguard"), filepath.Join(n.Dir, "ipam")); err != nil {
			return err
		}
		if err := l.rec.addPidFile(filepath.Join(n.Dir, "agent.pid"), "strait-agent"); err != nil {
			return err
		}
		if err := l.rec.addPidFile(filepath.Join(n.StateDir, "strait-wireguard.pid"), "strait-wireguard"); err != nil {
			return err
		}
		if err := l.startAgent(n); err != nil {
			return err
		}
	}
	for _, c := range l.clusters {
		if err := l.writeContext(c); err != nil {
			return err
		}
	}
	return l.WaitReady(ctx)
}

// agentArgs is node n's strait-agent command line.
func (l *Lab) agentArgs(n Node) []string {
	c := l.clusters[n.Cluster-1]
	args := []string{
		"--cluster-name", c.Name,
		"--cluster-id", strconv.Itoa(c.ID),
		"--node-name", n.Name,
		"--node-ip", n.IP.String(),
		"--pod-cidr", n.PodCIDR.String(),
		"--kvstore-endpoints", c.Endpoint,
		"--kvstore-ca-file", filepath.Join(c.CertDir, "ca.crt"),
		"--kvstore-cert-file", filepath.Join(c.CertDir, "admin.crt"),
		"--kvstore-key-file", filepath.Join(c.CertDir, "admin.key"),
		"--state-dir", n.StateDir,
		"--socket", n.Socket,
		"--encryption", l.spec.Encryption,
		"--underlay-device", "eth0",
		"--log-level", l.spec.LogLevel,
	}
	if l.spec.Encryption == EncryptionWireGuard {
		args = append(args, "--wireguard-binary", filepath.Join(l.spec.BinDir, "strait-wireguard"))
		if l.spec.WireGuardMode != "" {
			args = append(args, "--wireguard-mode", l.spec.WireGuardMode)
		}
	}
	if l.spec.Encryption == EncryptionIPsec {
		args = append(args, "--ipsec-key-file", l.ipsecKeyFile())
	}
	if l.spec.StrictMode {
		var cidrs []string
		for _, o := range l.nodes {
			if o.Netns != n.Netns {
				cidrs = append(cidrs, o.PodCIDR.String())
			}
		}
		if len(cidrs) > 0 {
			args = append(args, "--strict-mode-cidr", strings.Join(cidrs, ","))
		}
	}
	return args
}

// startAgent starts node n's agent in its namespace, with a private
// RunWireGuardDir bound to the node's run-wireguard directory.
func (l *Lab) startAgent(n Node) error {
	argv := []string{"ip", "netns", "exec", n.Netns, "sh", "-c",
		`d=$1; shift; mount --bind "$d" ` + RunWireGuardDir + ` && exec "$0" "$@"`,
		filepath.Join(l.spec.BinDir, "strait-agent"), filepath.Join(n.Dir, "run-wireguard"),
	}
	argv = append(argv, l.agentArgs(n)...)
	p, err := startProcess("agent "+n.Key(), "strait-agent", l.AgentLog(n), filepath.Join(n.Dir, "agent.pid"), nil, argv...)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.agents[n.Netns] = p
	l.mu.Unlock()
	return nil
}

// AgentStop stops node n's agent with sig (syscall.SIGKILL for a crash,
// SIGTERM for a clean stop) and waits for its exit. The WireGuard device
// process it started keeps running.
func (l *Lab) AgentStop(ctx context.Context, n Node, sig syscall.Signal) error {
	l.mu.Lock()
	p := l.agents[n.Netns]
	l.mu.Unlock()
	if p == nil {
		return fmt.Errorf("agent %s: %w", n.Key(), ErrUnknown)
	}
	return p.stop(sig, 15*time.Second)
}

// AgentStart starts node n's agent again and waits until its socket
// answers a status request.
func (l *Lab) AgentStart(ctx context.Context, n Node) error {
	l.mu.Lock()
	p := l.agents[n.Netns]
	l.mu.Unlock()
	if p != nil && p.running() {
		return fmt.Errorf("agent %s: already running", n.Key())
	}
	if err := l.startAgent(n); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return l.waitAgents(wctx, []Node{n}, func(n Node, st endpointapi.Status) (bool, string) { return true, "" })
}

// WaitReady waits until every agent sees every remote cluster connected
// and synced with all its nodes (when the lab connected them) and every
// other node as a WireGuard peer with its pod CIDR.
func (l *Lab) WaitReady(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	nodes := l.Nodes()
	return l.waitAgents(wctx, nodes, func(n Node, st endpointapi.Status) (bool, string) {
		return l.agentReady(n, nodes, st)
	})
}

// agentReady checks one agent's status against the lab.
func (l *Lab) agentReady(n Node, nodes []Node, st endpointapi.Status) (bool, string) {
	if l.spec.Connect {
		if !st.MeshSynced {
			return false, fmt.Sprintf("%s: mesh not synced (%+v)", n.Key(), st.Clusters)
		}
		for _, c := range l.clusters {
			if c.ID == n.Cluster {
				continue
			}
			// Ready needs every kind synced, services and identities
			// included, whose sync canaries nothing writes in a cluster
			// without Kubernetes services: a connected cluster whose nodes
			// all arrived (MeshSynced: its nodes and ipcache synced) is
			// what the datapath needs.
			want := 0
			for _, o := range nodes {
				if o.Cluster == c.ID {
					want++
				}
			}
			i := slices.IndexFunc(st.Clusters, func(cs endpointapi.ClusterStatus) bool { return cs.Name == c.Name })
			if i < 0 || !st.Clusters[i].Connected || (!st.Clusters[i].Ready && st.Clusters[i].Nodes != want) {
				return false, fmt.Sprintf("%s: cluster %s not connected with its %d nodes (%+v)", n.Key(), c.Name, want, st.Clusters)
			}
		}
	}
	if l.spec.Encryption == EncryptionWireGuard {
		for _, o := range nodes {
			if o.Netns == n.Netns || (!l.spec.Connect && o.Cluster != n.Cluster) {
				continue
			}
			if !slices.ContainsFunc(st.Peers, func(p endpointapi.PeerStatus) bool {
				return p.Node == o.Key() && slices.Contains(p.AllowedIPs, o.PodCIDR.String())
			}) {
				return false, fmt.Sprintf("%s: no peer %s with %s (peers %+v, problems %+v)", n.Key(), o.Key(), o.PodCIDR, st.Peers, st.Problems)
			}
		}
	}
	return true, ""
}

// waitAgents polls the status of nodes' agents until ok holds for all.
func (l *Lab) waitAgents(ctx context.Context, nodes []Node, ok func(Node, endpointapi.Status) (bool, string)) error {
	var failed Node
	err := waitFor(ctx, 250*time.Millisecond, "agents ready", func(ctx context.Context) (bool, string, error) {
		for _, n := range nodes {
			failed = n
			l.mu.Lock()
			p := l.agents[n.Netns]
			l.mu.Unlock()
			if p != nil && !p.running() {
				return false, "", p.exitErr()
			}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := l.Agent(n).Status(sctx)
			cancel()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.Key(), err), nil
			}
			if done, why := ok(n, st); !done {
				return false, why, nil
			}
		}
		return true, "", nil
	})
	if err != nil && !strings.Contains(err.Error(), l.AgentLog(failed)) {
		return fmt.Errorf("%w; log %s:\n%s", err, l.AgentLog(failed), logTail(l.AgentLog(failed), 20))
	}
	return err
}

// RemoveNode takes node n out of the lab as a decommissioned node leaves a
// cluster: its agent is stopped, its WireGuard process killed, its node
// entry and its pods' ipcache entries deleted from its cluster's etcd, and
// its namespaces (node and pods) deleted.
func (l *Lab) RemoveNode(ctx context.Context, n Node) error {
	if err := l.AgentStop(ctx, n, syscall.SIGTERM); err != nil {
		return err
	}
	if err := killPidFile(filepath.Join(n.StateDir, "strait-wireguard.pid"), "strait-wireguard", 10*time.Second); err != nil {
		return err
	}
	l.mu.Lock()
	l.removed[n.Netns] = true
	l.mu.Unlock()
	cli, err := etcdClient(l.clusters[n.Cluster-1])
	if err != nil {
		return err
	}
	defer cli.Close()
	if err := deleteNodeEntries(ctx, cli, n); err != nil {
		return err
	}
	for _, p := range l.pods {
		if p.Cluster == n.Cluster && p.Node == n.Index {
			if err := deleteNetns(ctx, p.Netns); err != nil {
				return err
			}
		}
	}
	return deleteNetns(ctx, n.Netns)
}

// deleteNodeEntries deletes cilium/state/nodes/v1/<cluster>/<node> and
// every cilium/state/ip/v1/ entry whose hostIP is the node's.
func deleteNodeEntries(ctx context.Context, cli *clientv3.Client, n Node) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nodeKey := "cilium/state/nodes/v1/" + n.ClusterName + "/" + n.Name
	if _, err := cli.Delete(ctx, nodeKey); err != nil {
		return fmt.Errorf("delete %s: %w", nodeKey, err)
	}
	resp, err := cli.Get(ctx, "cilium/state/ip/v1/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list ipcache of %s: %w", n.ClusterName, err)
	}
	for _, kv := range resp.Kvs {
		var v struct {
			HostIP string `json:"HostIP"`
		}
		if json.Unmarshal(kv.Value, &v) == nil && v.HostIP == n.IP.String() {
			if _, err := cli.Delete(ctx, string(kv.Key)); err != nil {
				return fmt.Errorf("delete %s: %w", kv.Key, err)
			}
		}
	}
	return nil
}

// ipsecKeyFile is the key file every agent of the lab shares (as one
// Kubernetes secret would), in the work directory.
func (l *Lab) ipsecKeyFile() string { return filepath.Join(l.spec.WorkDir, "ipsec.key") }

// writeIPsecKey writes a fresh key file: SPI 3, per node pair ('+'),
// rfc4106(gcm(aes)) with a 16-byte key and 4-byte salt, 128-bit ICV (the
// format of encryption/ipsec.ParseKeyFile and Cilium's cilium-ipsec-keys).
func writeIPsecKey(path string) error {
	key := make([]byte, 20)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("ipsec key: %w", err)
	}
	line := "3+ rfc4106(gcm(aes)) " + hex.EncodeToString(key) + " 128\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		return fmt.Errorf("ipsec key: %w", err)
	}
	return nil
}
