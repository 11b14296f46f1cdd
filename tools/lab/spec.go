package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
)

// Prefix starts the name of every network namespace the lab creates.
const Prefix = "sl-"

// Encryption modes of Spec.Encryption.
const (
	EncryptionWireGuard = "wireguard"
	EncryptionIPsec     = "ipsec"
	EncryptionNone      = "none"
)

// Spec describes a lab.
type Spec struct {
	// Name is short ([a-z0-9]{1,8}, e.g. "t1234"): it goes into netns names.
	Name string
	// Clusters (1..9), NodesPerCluster (1..9), PodsPerNode (0..9).
	Clusters, NodesPerCluster, PodsPerNode int
	// UnderlayMTU of every underlay veth and the bridge; default 1500.
	UnderlayMTU int
	// Encryption is "wireguard" (default), "ipsec" or "none".
	Encryption string
	// WireGuardMode is the agent's --wireguard-mode ("" = the agent's default).
	WireGuardMode string
	// StrictMode passes every other node's pod CIDR as --strict-mode-cidr.
	StrictMode bool
	// BinDir holds strait-apiserver, strait-agent, strait-wireguard, strait-cni.
	BinDir string
	// WorkDir holds certificates, etcd data, state, logs and the lab record.
	WorkDir string
	// Connect makes the lab connect every cluster with every other one (full
	// mesh) by writing the apiservers' clustermesh config directories; when
	// false the clusters are left unconnected (straitctl connect does it).
	Connect bool
	// LogLevel of the agents and apiservers; default "info".
	LogLevel string
}

var labNameRe = regexp.MustCompile(`^[a-z0-9]{1,8}$`)

// withDefaults fills defaults and validates; errors name the field.
func (s Spec) withDefaults() (Spec, error) {
	if !labNameRe.MatchString(s.Name) {
		return s, fmt.Errorf("spec name %q: must match %s (netns and interface names are short)", s.Name, labNameRe)
	}
	if s.Clusters < 1 || s.Clusters > 9 {
		return s, fmt.Errorf("spec clusters %d: must be 1..9", s.Clusters)
	}
	if s.NodesPerCluster < 1 || s.NodesPerCluster > 9 {
		return s, fmt.Errorf("spec nodes per cluster %d: must be 1..9", s.NodesPerCluster)
	}
	if s.PodsPerNode < 0 || s.PodsPerNode > 9 {
		return s, fmt.Errorf("spec pods per node %d: must be 0..9", s.PodsPerNode)
	}
	if s.UnderlayMTU == 0 {
		s.UnderlayMTU = 1500
	}
	if s.UnderlayMTU < 1280 || s.UnderlayMTU > 65535 {
		return s, fmt.Errorf("spec underlay MTU %d: must be 1280..65535", s.UnderlayMTU)
	}
	switch s.Encryption {
	case "":
		s.Encryption = EncryptionWireGuard
	case EncryptionWireGuard, EncryptionIPsec, EncryptionNone:
	default:
		return s, fmt.Errorf("spec encryption %q: must be wireguard, ipsec or none", s.Encryption)
	}
	switch s.WireGuardMode {
	case "", "auto", "kernel", "userspace":
	default:
		return s, fmt.Errorf("spec wireguard mode %q: must be auto, kernel or userspace", s.WireGuardMode)
	}
	if s.BinDir == "" || s.WorkDir == "" {
		return s, fmt.Errorf("spec bin dir %q, work dir %q: both required", s.BinDir, s.WorkDir)
	}
	var err error
	if s.BinDir, err = filepath.Abs(s.BinDir); err != nil {
		return s, fmt.Errorf("spec bin dir: %w", err)
	}
	if s.WorkDir, err = filepath.Abs(s.WorkDir); err != nil {
		return s, fmt.Errorf("spec work dir: %w", err)
	}
	if s.LogLevel == "" {
		s.LogLevel = "info"
	}
	return s, nil
}

// Cluster is one cluster of the lab. Values are descriptions: they do not
// change while the lab runs.
type Cluster struct {
	// ID is 1-based and also the cluster ID; Name is "cluster<ID>".
	ID   int
	Name string
	// Netns of the strait-apiserver; APIAddr its underlay address.
	Netns   string
	APIAddr netip.Addr
	// Endpoint is https://APIAddr:2379.
	Endpoint string
	// Dir holds certs/, mesh/ (the clustermesh config), etcd/ and logs.
	Dir, CertDir, MeshDir string
	// ContextFile is the straitctl context (clustermesh/connect format).
	ContextFile string
}

// Node is one node of the lab.
type Node struct {
	Cluster     int
	ClusterName string
	// Index is 1-based within the cluster; Name is "node<Index>".
	Index int
	Name  string
	Netns string
	IP    netip.Addr
	// PodCIDR is 10.<cluster>.<index>.0/24.
	PodCIDR netip.Prefix
	// Dir holds state/ (the agent's --state-dir), run-wireguard/, the
	// agent's socket and log, and ipam/.
	Dir, StateDir, Socket string
}

// Key names a node as "<cluster>/<node>", the form of endpointapi.PeerStatus.
func (n Node) Key() string { return n.ClusterName + "/" + n.Name }

// Pod is one pod of the lab, created through strait-cni.
type Pod struct {
	Cluster, Node, Index int
	// Name is "pod<cluster>-<node>-<index>" in Kubernetes namespace "default".
	Name        string
	Netns       string
	ContainerID string
	IfName      string
	IP          netip.Addr
}

func clusterDesc(s Spec, c int) Cluster {
	dir := filepath.Join(s.WorkDir, fmt.Sprintf("cluster%d", c))
	addr := netip.AddrFrom4([4]byte{198, 18, byte(c), 1})
	return Cluster{
		ID:          c,
		Name:        fmt.Sprintf("cluster%d", c),
		Netns:       fmt.Sprintf("%s%s-c%dapi", Prefix, s.Name, c),
		APIAddr:     addr,
		Endpoint:    "https://" + netip.AddrPortFrom(addr, 2379).String(),
		Dir:         dir,
		CertDir:     filepath.Join(dir, "certs"),
		MeshDir:     filepath.Join(dir, "mesh"),
		ContextFile: filepath.Join(dir, "context.yaml"),
	}
}

func nodeDesc(s Spec, c, n int) Node {
	dir := filepath.Join(s.WorkDir, fmt.Sprintf("cluster%d", c), fmt.Sprintf("node%d", n))
	return Node{
		Cluster:     c,
		ClusterName: fmt.Sprintf("cluster%d", c),
		Index:       n,
		Name:        fmt.Sprintf("node%d", n),
		Netns:       fmt.Sprintf("%s%s-c%dn%d", Prefix, s.Name, c, n),
		IP:          netip.AddrFrom4([4]byte{198, 18, byte(c), byte(10 + n)}),
		PodCIDR:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(c), byte(n), 0}), 24),
		Dir:         dir,
		StateDir:    filepath.Join(dir, "state"),
		Socket:      filepath.Join(dir, "agent.sock"),
	}
}

func podDesc(s Spec, c, n, p int) Pod {
	return Pod{
		Cluster:     c,
		Node:        n,
		Index:       p,
		Name:        fmt.Sprintf("pod%d-%d-%d", c, n, p),
		Netns:       fmt.Sprintf("%s%s-c%dn%dp%d", Prefix, s.Name, c, n, p),
		ContainerID: fmt.Sprintf("lab-%s-c%dn%dp%d", s.Name, c, n, p),
		IfName:      "eth0",
	}
}

// UnderlayNetns is the name of the underlay bridge's namespace of lab name.
func UnderlayNetns(name string) string { return Prefix + name + "-ul" }
