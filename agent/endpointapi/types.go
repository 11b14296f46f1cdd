package endpointapi

import (
	"fmt"
	"net/netip"
	"regexp"
	"time"
)

// DefaultSocket is where strait-agent listens unless told otherwise.
const DefaultSocket = "/var/run/strait/agent.sock"

// NodeInfo is what the CNI plugin needs to know about the node.
type NodeInfo struct {
	Cluster   string       `json:"cluster"`
	ClusterID uint32       `json:"clusterID"`
	Node      string       `json:"node"`
	NodeIP    netip.Addr   `json:"nodeIP"`
	PodCIDRv4 netip.Prefix `json:"podCIDRv4"`
	// PodMTU is the MTU pod interfaces should get (the underlay's, minus the
	// encryption overhead when traffic is encrypted).
	PodMTU int `json:"podMTU"`
}

// Endpoint is one pod interface as the CNI plugin created it.
type Endpoint struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	// Netns is the pod's network namespace path as the runtime gave it.
	Netns string `json:"netns"`
	// Namespace and PodName come from CNI_ARGS (K8S_POD_NAMESPACE,
	// K8S_POD_NAME); Namespace defaults to "default".
	Namespace string `json:"namespace"`
	PodName   string `json:"podName"`
	// Labels are the pod's labels (CNI conventions: args.cni.labels).
	Labels map[string]string `json:"labels,omitempty"`
	IPv4   netip.Addr        `json:"ipv4"`
	// HostIfName is the host side of the pod's veth.
	HostIfName string `json:"hostIfName"`
}

// EndpointStatus is an endpoint as the agent holds it.
type EndpointStatus struct {
	Endpoint
	// Identity is the numeric security identity allocated for the labels.
	Identity uint32 `json:"identity"`
}

// Status is the agent's state as straitctl status shows it.
type Status struct {
	Cluster   string `json:"cluster"`
	ClusterID uint32 `json:"clusterID"`
	Node      string `json:"node"`
	NodeIP    string `json:"nodeIP"`
	// Encryption is "wireguard", "ipsec" or "none".
	Encryption string `json:"encryption"`
	// Device is the encryption device (e.g. strait-wg0) and DeviceType
	// "kernel" or "userspace"; empty without encryption.
	Device     string `json:"device,omitempty"`
	DeviceType string `json:"deviceType,omitempty"`
	PublicKey  string `json:"publicKey,omitempty"`
	// KVStore is "ok" or the last error talking to the local etcd.
	KVStore string `json:"kvstore"`
	// MeshSynced: every remote cluster configured at start has synced, so
	// stale peers may be pruned.
	MeshSynced bool            `json:"meshSynced"`
	Clusters   []ClusterStatus `json:"clusters"`
	Peers      []PeerStatus    `json:"peers"`
	Endpoints  int             `json:"endpoints"`
	// Problems are remote or local entries the agent refused (a node
	// without a key, a duplicate key, an overlapping pod CIDR...).
	Problems []Problem `json:"problems"`
}

// ClusterStatus is one remote cluster as this agent sees it.
type ClusterStatus struct {
	Name      string `json:"name"`
	ID        uint32 `json:"id"`
	Connected bool   `json:"connected"`
	Ready     bool   `json:"ready"`
	Nodes     int    `json:"nodes"`
	Endpoints int    `json:"endpoints"`
}

// PeerStatus is one encryption peer (a node of this or another cluster).
type PeerStatus struct {
	// Node is "<cluster>/<node>".
	Node          string    `json:"node"`
	PublicKey     string    `json:"publicKey,omitempty"`
	Endpoint      string    `json:"endpoint"`
	AllowedIPs    []string  `json:"allowedIPs"`
	LastHandshake time.Time `json:"lastHandshake,omitzero"`
	RxBytes       int64     `json:"rxBytes"`
	TxBytes       int64     `json:"txBytes"`
}

// Problem is one entry the agent refused, and why.
type Problem struct {
	// Node is "<cluster>/<node>" when the problem is about a node.
	Node   string `json:"node,omitempty"`
	Key    string `json:"key,omitempty"`
	Reason string `json:"reason"`
}

// Error is an error answer of the agent.
type Error struct {
	// Status is the HTTP status code; 4xx means the request was bad.
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("agent: %s (HTTP %d)", e.Message, e.Status) }

// containerIDRe is what CNI's spec allows for a container ID.
var containerIDRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// ifNameRe is a Linux interface name.
var ifNameRe = regexp.MustCompile(`^[^/\s:]{1,15}$`)

// ValidateID checks a container ID and interface name as they appear in
// the URL path.
func ValidateID(containerID, ifName string) error {
	if !containerIDRe.MatchString(containerID) || len(containerID) > 256 {
		return fmt.Errorf("containerID %q: must match %s and be at most 256 characters", containerID, containerIDRe)
	}
	if ifName == "." || ifName == ".." || !ifNameRe.MatchString(ifName) {
		return fmt.Errorf("ifName %q: not a valid interface name (1-15 characters, no '/', ':' or space)", ifName)
	}
	return nil
}

// Validate checks an endpoint before the agent takes it.
func (e *Endpoint) Validate() error {
	if err := ValidateID(e.ContainerID, e.IfName); err != nil {
		return err
	}
	if !e.IPv4.Is4() {
		return fmt.Errorf("ipv4 %q: not an IPv4 address", e.IPv4)
	}
	if e.Namespace == "" {
		return fmt.Errorf("namespace: empty")
	}
	if len(e.Labels) > 64 {
		return fmt.Errorf("labels: %d labels, at most 64", len(e.Labels))
	}
	for k, v := range e.Labels {
		if k == "" || len(k) > 317 || len(v) > 63 {
			return fmt.Errorf("labels: %q=%q: key must be 1-317 and value at most 63 characters", k, v)
		}
	}
	return nil
}
