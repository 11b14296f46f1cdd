package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/strait-net/strait/agent/endpointapi"
)

// upPods creates every pod through strait-cni and waits until every agent
// knows every pod of the clusters it sees.
func (l *Lab) upPods(ctx context.Context) error {
	for i := range l.pods {
		p := &l.pods[i]
		if err := l.rec.addNetns(p.Netns); err != nil {
			return err
		}
		if err := createNetns(ctx, p.Netns); err != nil {
			return err
		}
		ip, err := l.cni(ctx, "ADD", *p)
		if err != nil {
			return err
		}
		l.mu.Lock()
		p.IP = ip
		l.mu.Unlock()
	}
	if len(l.pods) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	nodes := l.Nodes()
	return l.waitAgents(wctx, nodes, func(n Node, st endpointapi.Status) (bool, string) {
		if st.Endpoints != l.spec.PodsPerNode {
			return false, fmt.Sprintf("%s: %d local endpoints, want %d", n.Key(), st.Endpoints, l.spec.PodsPerNode)
		}
		if !l.spec.Connect {
			return true, ""
		}
		for _, c := range l.clusters {
			if c.ID == n.Cluster {
				continue
			}
			want := l.spec.NodesPerCluster * l.spec.PodsPerNode
			i := slices.IndexFunc(st.Clusters, func(cs endpointapi.ClusterStatus) bool { return cs.Name == c.Name })
			if i < 0 || st.Clusters[i].Endpoints < want {
				return false, fmt.Sprintf("%s: cluster %s endpoints not all seen, want %d (%+v)", n.Key(), c.Name, want, st.Clusters)
			}
		}
		return true, ""
	})
}

// netConf is the CNI network configuration the lab hands strait-cni.
type netConf struct {
	CNIVersion  string `json:"cniVersion"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	AgentSocket string `json:"agentSocket"`
	IPAMDataDir string `json:"ipamDataDir"`
	Args        struct {
		CNI struct {
			Labels []label `json:"labels"`
		} `json:"cni"`
	} `json:"args"`
}

type label struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// cni runs strait-cni with command (ADD, DEL, CHECK) for pod p in its
// node's namespace, as a container runtime does; for ADD it returns the
// pod's address from the result.
func (l *Lab) cni(ctx context.Context, command string, p Pod) (netip.Addr, error) {
	n := l.NodeOf(p)
	var nc netConf
	nc.CNIVersion = "1.0.0"
	nc.Name = "strait"
	nc.Type = "strait-cni"
	nc.AgentSocket = n.Socket
	nc.IPAMDataDir = filepath.Join(n.Dir, "ipam")
	nc.Args.CNI.Labels = []label{{Key: "app", Value: p.Name}, {Key: "lab", Value: l.spec.Name}}
	conf, err := json.Marshal(nc)
	if err != nil {
		return netip.Addr{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, "ip", "netns", "exec", n.Netns, filepath.Join(l.spec.BinDir, "strait-cni"))
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=" + p.ContainerID,
		"CNI_NETNS=" + filepath.Join(NetnsDir, p.Netns),
		"CNI_IFNAME=" + p.IfName,
		"CNI_PATH=" + l.spec.BinDir,
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + p.Name,
	}
	cmd.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return netip.Addr{}, fmt.Errorf("strait-cni %s of pod %s on %s: %w: %s %s; agent log %s:\n%s", command, p.Name, n.Key(), err,
			strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String()), l.AgentLog(n), logTail(l.AgentLog(n), 10))
	}
	if command != "ADD" {
		return netip.Addr{}, nil
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return netip.Addr{}, fmt.Errorf("strait-cni ADD of pod %s: result %q: %w", p.Name, stdout.String(), err)
	}
	for _, ip := range res.IPs {
		pfx, err := netip.ParsePrefix(ip.Address)
		if err == nil && pfx.Addr().Is4() && n.PodCIDR.Contains(pfx.Addr()) {
			return pfx.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("strait-cni ADD of pod %s: result %q: no address in %s", p.Name, stdout.String(), n.PodCIDR)
}
