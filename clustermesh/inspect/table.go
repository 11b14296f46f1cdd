package inspect

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/strait-net/strait/clustermesh/schema"
)

// WriteTable renders r as aligned text columns (straitctl inspect -o
// table), valid entries first, then the invalid ones with their reason.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var head []string
	switch r.Kind {
	case KindNodes:
		head = []string{"CLUSTER", "SOURCE", "NAME", "ADDRESSES", "POD-CIDRS", "WIREGUARD-KEY", "IPSEC-KEY"}
	case KindIPCache:
		head = []string{"CLUSTER", "SOURCE", "PREFIX", "IDENTITY", "HOST-IP", "IPSEC-KEY", "POD"}
	case KindIdentities:
		head = []string{"CLUSTER", "SOURCE", "ID", "LABELS"}
	case KindServices:
		head = []string{"CLUSTER", "SOURCE", "SERVICE", "FRONTENDS", "BACKENDS", "GLOBAL", "SHARED"}
	case KindClusters:
		head = []string{"CLUSTER", "ID", "MAX", "CACHED", "SYNCED-CANARIES", "SYNCED"}
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, e := range r.Entries {
		fmt.Fprintln(tw, strings.Join(row(e), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Invalid) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\n%d invalid %s entries:\n", len(r.Invalid), r.Kind)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tSOURCE\tKEY\tREASON")
	for _, in := range r.Invalid {
		// The reason names the key again; the KEY column already does.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", in.Cluster, in.Source, in.Key, strings.TrimPrefix(in.Reason, in.Key+": "))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func row(e Entry) []string {
	switch v := e.decoded.(type) {
	case *schema.Node:
		var addrs, cidrs []string
		for _, a := range v.IPAddresses {
			addrs = append(addrs, fmt.Sprintf("%s=%s", a.Type, a.IP))
		}
		for _, p := range append([]netip.Prefix{v.IPv4AllocCIDR, v.IPv6AllocCIDR}, append(v.IPv4SecondaryAllocCIDRs, v.IPv6SecondaryAllocCIDRs...)...) {
			if p.IsValid() {
				cidrs = append(cidrs, p.String())
			}
		}
		return []string{e.Cluster, e.Source, v.Name, orDash(strings.Join(addrs, ",")), orDash(strings.Join(cidrs, ",")),
			orDash(v.WireguardPubKey), strconv.Itoa(int(v.EncryptionKey))}
	case *schema.IPIdentityPair:
		host := "-"
		if v.HostIP.IsValid() {
			host = v.HostIP.String()
		}
		pod := "-"
		if v.K8sPodName != "" {
			pod = v.K8sNamespace + "/" + v.K8sPodName
		}
		return []string{e.Cluster, e.Source, v.Prefix().String(), strconv.FormatUint(uint64(v.ID), 10), host,
			strconv.Itoa(int(v.EncryptionKey)), pod}
	case IdentityValue:
		return []string{e.Cluster, e.Source, strconv.FormatUint(uint64(v.ID), 10), strings.Join(v.Labels, ",")}
	case *schema.ClusterService:
		return []string{e.Cluster, e.Source, v.Namespace + "/" + v.Name, ports(v.Frontends), ports(v.Backends),
			strconv.FormatBool(v.IncludeExternal), strconv.FormatBool(v.Shared)}
	case *schema.ClusterConfig:
		m := v.Capabilities.MaxConnectedClusters
		if m == 0 {
			m = 255
		}
		return []string{e.Cluster, strconv.FormatUint(uint64(v.ID), 10), strconv.FormatUint(uint64(m), 10),
			strconv.FormatBool(v.Capabilities.Cached), strconv.FormatBool(v.Capabilities.SyncedCanaries), orDash(strings.Join(e.Synced, ","))}
	}
	return []string{e.Cluster, e.Source, e.Key}
}

// ports renders addr:port/proto entries, sorted.
func ports(m map[netip.Addr]schema.PortConfiguration) string {
	var out []string
	for a, pc := range m {
		for name, l4 := range pc {
			s := netip.AddrPortFrom(a, l4.Port).String() + "/" + l4.Protocol
			if name != "" {
				s += "(" + name + ")"
			}
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return orDash(strings.Join(out, ","))
}
