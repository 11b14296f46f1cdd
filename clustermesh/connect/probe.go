package connect

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// DefaultDialTimeout bounds the dial of one apiserver.
const DefaultDialTimeout = 10 * time.Second

// Material is what a cluster hands to its peers, read from its certDir.
type Material struct {
	// CAPEM is ca.crt; CA its parsed certificate.
	CAPEM []byte
	CA    *x509.Certificate
	// RemoteCertPEM and RemoteKeyPEM are remote.crt and remote.key (CN
	// "remote", issued by CA): the client identity peers use.
	RemoteCertPEM, RemoteKeyPEM []byte
}

// NodeCIDR is one pod CIDR of one node.
type NodeCIDR struct {
	Node   string
	Prefix netip.Prefix
}

// Info is what straitctl learns about one cluster before connecting it.
type Info struct {
	Context  *Context
	Material Material
	// Served is the server certificate the apiserver presents (first
	// endpoint that answered).
	Served *x509.Certificate
	// Config is the decoded cilium/cluster-config/<cluster>.
	Config *schema.ClusterConfig
	// PodCIDRs are the IPv4 and IPv6 pod CIDRs (primary and secondary) of
	// every valid node entry cilium/state/nodes/v1/<cluster>/*, sorted.
	PodCIDRs []NodeCIDR
	// Peers are the remote clusters this cluster already caches
	// (cilium/cluster-config/<peer> with "cached": true), by name.
	Peers map[string]Peer
}

// Peer is a remote cluster a cluster is already connected to.
type Peer struct {
	ID identity.ClusterID
	// PodCIDRs of its cached nodes, cilium/cache/nodes/v1/<peer>/*.
	PodCIDRs []NodeCIDR
}

// loadMaterial reads the files a cluster hands to its peers.
func loadMaterial(c *Context) (Material, error) {
	f := c.Files()
	var m Material
	var err error
	read := func(path string) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = os.ReadFile(path)
		if err != nil {
			err = fmt.Errorf("%w: cluster %q: %w: check %q in %s", ErrCertificate, c.Cluster, err, FieldCertDir, c.Name())
		}
		return b
	}
	m.CAPEM = read(f.CACert)
	m.RemoteCertPEM = read(f.RemoteCert)
	m.RemoteKeyPEM = read(f.RemoteKey)
	if err != nil {
		return m, err
	}
	if m.CA, err = certs.ParseCert(m.CAPEM); err != nil {
		return m, fmt.Errorf("%w: cluster %q: %s: %w", ErrCertificate, c.Cluster, f.CACert, err)
	}
	kp, err := certs.LoadKeyPair(f.RemoteCert, f.RemoteKey)
	if err != nil {
		return m, fmt.Errorf("%w: cluster %q: %w: run \"strait-apiserver certs generate\" for it again", ErrCertificate, c.Cluster, err)
	}
	if kp.Cert.Subject.CommonName != certs.RemoteUser {
		return m, fmt.Errorf("%w: cluster %q: %s has CN %q, want %q: run \"strait-apiserver certs generate\" for it again",
			ErrCertificate, c.Cluster, f.RemoteCert, kp.Cert.Subject.CommonName, certs.RemoteUser)
	}
	if err := (*certs.CA)(&certs.KeyPair{Cert: m.CA}).Verify(kp.Cert, x509.ExtKeyUsageClientAuth, time.Now()); err != nil {
		return m, fmt.Errorf("%w: cluster %q: %s is not issued by its CA %s (%v): run \"strait-apiserver certs generate\" for it again",
			ErrCertificate, c.Cluster, f.RemoteCert, f.CACert, err)
	}
	return m, nil
}

// fetchServed completes a TLS handshake with the first endpoint that
// answers and returns the server certificate it presents (not verified
// here: see verifyServed).
func fetchServed(ctx context.Context, c *Context, timeout time.Duration) (*x509.Certificate, error) {
	// Present the admin certificate, so the server has no reason to
	// complain about the probe.
	f := c.Files()
	admin, err := tls.LoadX509KeyPair(f.AdminCert, f.AdminKey)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster %q: admin certificate: %w: check %q in %s", ErrCertificate, c.Cluster, err, FieldCertDir, c.Name())
	}
	var errs []string
	for _, ep := range c.Endpoints {
		u, err := url.Parse(ep)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", ep, err))
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, timeout)
		d := tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{
			InsecureSkipVerify: true, // verified against the CAs by verifyServed
			ServerName:         u.Hostname(),
			MinVersion:         tls.VersionTLS12,
			Certificates:       []tls.Certificate{admin},
		}}
		conn, err := d.DialContext(dctx, "tcp", u.Host)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", ep, err))
			continue
		}
		st := conn.(*tls.Conn).ConnectionState()
		conn.Close()
		if len(st.PeerCertificates) == 0 {
			errs = append(errs, fmt.Sprintf("%s: no server certificate", ep))
			continue
		}
		return st.PeerCertificates[0], nil
	}
	return nil, fmt.Errorf("%w: cluster %q: %s: check that its strait-apiserver runs and %q in %s",
		ErrUnreachable, c.Cluster, strings.Join(errs, "; "), FieldEndpoints, c.Name())
}

// verifyServed checks that served chains (for server auth) to one of cas.
func verifyServed(served *x509.Certificate, cas ...*x509.Certificate) error {
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	_, err := served.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// readCluster dials the apiserver as admin (trusting caPEM) and reads the
// cluster config and the pod CIDRs of its nodes.
func readCluster(ctx context.Context, log *slog.Logger, c *Context, caFile string, timeout time.Duration) (*schema.ClusterConfig, []NodeCIDR, map[string]Peer, error) {
	cfg := c.AdminConfig()
	cfg.TrustedCAFile = caFile
	cfg.DialTimeout = timeout / 2
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cli, err := kvstore.New(dctx, log, cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: cluster %q: %w: check that its strait-apiserver runs, %q in %s and its admin certificate in %q",
			ErrUnreachable, c.Cluster, err, FieldEndpoints, c.Name(), FieldCertDir)
	}
	defer cli.Close()
	key := schema.ClusterConfigKey(c.Cluster)
	val, found, err := cli.Get(dctx, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: cluster %q: read %s: %w", ErrUnreachable, c.Cluster, key, err)
	}
	if !found {
		return nil, nil, nil, fmt.Errorf("%w: cluster %q: its apiserver at %s has no %s: the apiserver runs under another --cluster-name, or is still starting; fix %q in %s",
			ErrClusterConfig, c.Cluster, strings.Join(c.Endpoints, ","), key, FieldCluster, c.Name())
	}
	cc, err := schema.DecodeClusterConfig(key, val, schema.Origin{Cluster: c.Cluster, Max: c.Max})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: cluster %q: %w", ErrClusterConfig, c.Cluster, err)
	}
	if cc.ID != c.ID {
		return nil, nil, nil, fmt.Errorf("%w: cluster %q: %s says ID %d, its apiserver announces ID %d in %s: fix %q in %s",
			ErrClusterConfig, c.Cluster, c.Name(), c.ID, cc.ID, key, FieldID, c.Name())
	}
	if m := cc.Capabilities.MaxConnectedClusters; m != 0 && m != c.Max {
		return nil, nil, nil, fmt.Errorf("%w: cluster %q: %s says maxConnectedClusters %d, its apiserver announces %d in %s: fix %q in %s",
			ErrClusterConfig, c.Cluster, c.Name(), c.Max, m, key, FieldMax, c.Name())
	}
	cidrs, err := podCIDRs(dctx, log, cli, c, schema.NodesPrefix, c.Cluster, c.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	peers, err := readPeers(dctx, log, cli, c)
	if err != nil {
		return nil, nil, nil, err
	}
	return cc, cidrs, peers, nil
}

// readPeers lists the remote clusters c already caches and their pod CIDRs.
func readPeers(ctx context.Context, log *slog.Logger, cli *kvstore.Client, c *Context) (map[string]Peer, error) {
	resp, err := cli.Etcd().Get(ctx, schema.ClusterConfigPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("%w: cluster %q: list %s: %w", ErrUnreachable, c.Cluster, schema.ClusterConfigPrefix, err)
	}
	peers := map[string]Peer{}
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), schema.ClusterConfigPrefix)
		if name == c.Cluster {
			continue
		}
		cc, err := schema.DecodeClusterConfig(string(kv.Key), kv.Value, schema.Origin{Cluster: name, Max: c.Max})
		if err != nil || !cc.Capabilities.Cached {
			continue
		}
		cidrs, err := podCIDRs(ctx, log, cli, c, schema.CacheNodesPrefix, name, cc.ID)
		if err != nil {
			return nil, err
		}
		peers[name] = Peer{ID: cc.ID, PodCIDRs: cidrs}
	}
	return peers, nil
}

// podCIDRs lists <nodesPrefix>/<cluster>/ in c's etcd (its own nodes under
// cilium/state/, a peer's under cilium/cache/) and returns the pod CIDRs
// of every node entry that decodes; invalid entries are logged and
// skipped, as every consumer of the mesh skips them.
func podCIDRs(ctx context.Context, log *slog.Logger, cli *kvstore.Client, c *Context, nodesPrefix, cluster string, id identity.ClusterID) ([]NodeCIDR, error) {
	prefix := nodesPrefix + "/" + cluster + "/"
	resp, err := cli.Etcd().Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("%w: cluster %q: list %s: %w", ErrUnreachable, c.Cluster, prefix, err)
	}
	from := schema.Origin{Cluster: cluster, ClusterID: id, Max: c.Max}
	var out []NodeCIDR
	for _, kv := range resp.Kvs {
		n, err := schema.DecodeNode(string(kv.Key), kv.Value, from)
		if err != nil {
			log.Warn("Skipping invalid node entry", logCluster, cluster, logError, err)
			continue
		}
		for _, p := range append([]netip.Prefix{n.IPv4AllocCIDR, n.IPv6AllocCIDR}, append(n.IPv4SecondaryAllocCIDRs, n.IPv6SecondaryAllocCIDRs...)...) {
			if p.IsValid() {
				out = append(out, NodeCIDR{Node: n.Name, Prefix: p.Masked()})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Prefix.String() < out[j].Prefix.String()
	})
	return out, nil
}

// bundle concatenates PEM certificates, skipping duplicates.
func bundle(pems ...[]byte) []byte {
	var out []byte
	for _, p := range pems {
		p = bytes.TrimSpace(p)
		if len(p) == 0 || bytes.Contains(out, p) {
			continue
		}
		out = append(out, p...)
		out = append(out, '\n')
	}
	return out
}
