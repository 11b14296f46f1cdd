package connect

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mode says which clusters connect to which.
type Mode string

// Connection modes, as cilium clustermesh connect --connection-mode.
const (
	// ModeBidirectional: the first cluster and each other one connect to
	// each other (the default; usually two clusters).
	ModeBidirectional Mode = "bidirectional"
	// ModeMesh: every listed cluster connects to every other.
	ModeMesh Mode = "mesh"
	// ModeUnicast: the first cluster connects to the others, not back.
	ModeUnicast Mode = "unicast"
)

// ConfigFileName is the cluster file connect writes into a cluster's
// clustermeshConfigDir for remote cluster r (contract §9); the three files
// below sit beside it.
func ConfigFileName(r string) string { return r }

// CAFileName is the trust bundle for r's apiserver.
func CAFileName(r string) string { return r + ".etcd-client-ca.crt" }

// CertFileName is r's remote.crt (CN "remote", issued by r's CA).
func CertFileName(r string) string { return r + ".etcd-client.crt" }

// KeyFileName is r's remote.key.
func KeyFileName(r string) string { return r + ".etcd-client.key" }

// Pair is one direction of a connection: Local's apiserver caches Remote,
// so Local's clustermeshConfigDir gets Remote's files.
type Pair struct {
	Local, Remote string
}

func (p Pair) String() string { return p.Local + " → " + p.Remote }

// Pairs lists the directions mode asks for between clusters (in order;
// the first is the source of bidirectional and unicast).
func Pairs(clusters []string, mode Mode) ([]Pair, error) {
	if len(clusters) < 2 {
		return nil, fmt.Errorf("%w: %d context(s) given: name at least two clusters (--context A.yaml --context B.yaml)", ErrUsage, len(clusters))
	}
	var out []Pair
	switch mode {
	case ModeBidirectional, "":
		for _, r := range clusters[1:] {
			out = append(out, Pair{clusters[0], r}, Pair{r, clusters[0]})
		}
	case ModeUnicast:
		for _, r := range clusters[1:] {
			out = append(out, Pair{clusters[0], r})
		}
	case ModeMesh:
		for _, l := range clusters {
			for _, r := range clusters {
				if l != r {
					out = append(out, Pair{l, r})
				}
			}
		}
	default:
		return nil, fmt.Errorf("%w: mode %q: want %s, %s or %s", ErrUsage, mode, ModeBidirectional, ModeMesh, ModeUnicast)
	}
	return out, nil
}

// validateContexts runs the checks that need nothing but the context
// files: unique names, unique non-zero IDs within the peer's range, the
// same max-connected-clusters. Names and IDs were checked one by one
// (non-"default", non-zero) by ParseContext.
func validateContexts(cs []*Context) error {
	for i, a := range cs {
		for _, b := range cs[i+1:] {
			if a.Cluster == b.Cluster {
				return fmt.Errorf("%w: %s and %s both name cluster %q: every cluster of a mesh needs its own name; fix %q in one of them",
					ErrNameClash, a.Name(), b.Name(), a.Cluster, FieldCluster)
			}
			if a.ID == b.ID {
				return fmt.Errorf("%w: clusters %q and %q both have ID %d: every cluster of a mesh needs its own ID; give one of them another --cluster-id (and %q in its context file)",
					ErrIDClash, a.Cluster, b.Cluster, a.ID, FieldID)
			}
			for _, p := range [][2]*Context{{a, b}, {b, a}} {
				if uint32(p[0].ID) > uint32(p[1].Max) {
					return fmt.Errorf("%w: cluster %q has ID %d, above the maxConnectedClusters %d of cluster %q: give %q an ID in 1..%d",
						ErrIDRange, p[0].Cluster, p[0].ID, p[1].Max, p[1].Cluster, p[0].Cluster, p[1].Max)
				}
			}
			if a.Max != b.Max {
				return fmt.Errorf("%w: cluster %q runs maxConnectedClusters %d, cluster %q %d: every cluster of a mesh needs the same --max-connected-clusters",
					ErrMaxMismatch, a.Cluster, a.Max, b.Cluster, b.Max)
			}
		}
	}
	return nil
}

// validateCIDRs refuses overlapping pod CIDRs between different clusters.
func validateCIDRs(infos []*Info) error {
	for i, a := range infos {
		for _, b := range infos[i+1:] {
			for _, x := range a.PodCIDRs {
				for _, y := range b.PodCIDRs {
					if x.Prefix.Overlaps(y.Prefix) {
						return fmt.Errorf("%w: %s of cluster %q (node %s) and %s of cluster %q (node %s): pod CIDRs must be disjoint across a mesh; renumber the pods of one cluster",
							ErrPodCIDROverlap, x.Prefix, a.Context.Cluster, x.Node, y.Prefix, b.Context.Cluster, y.Node)
					}
				}
			}
		}
	}
	return nil
}

// validatePeers checks each new direction L → R against the clusters L
// already caches that are not part of this connect: R must not reuse such
// a peer's ID, and R's pod CIDRs must not overlap the peer's.
func validatePeers(byName map[string]*Info, pairs []Pair) error {
	for _, p := range pairs {
		l, r := byName[p.Local], byName[p.Remote]
		for _, name := range sortedKeys(l.Peers) {
			if byName[name] != nil {
				continue // listed: checked with the others
			}
			peer := l.Peers[name]
			if peer.ID == r.Context.ID {
				return fmt.Errorf("%w: cluster %q has ID %d, the ID of cluster %q that cluster %q is already connected to: every cluster of a mesh needs its own ID; give %q another --cluster-id, or disconnect %q from %q first",
					ErrIDClash, r.Context.Cluster, r.Context.ID, name, l.Context.Cluster, r.Context.Cluster, name, l.Context.Cluster)
			}
			for _, x := range r.PodCIDRs {
				for _, y := range peer.PodCIDRs {
					if x.Prefix.Overlaps(y.Prefix) {
						return fmt.Errorf("%w: %s of cluster %q (node %s) and %s of cluster %q (node %s), which cluster %q is already connected to: pod CIDRs must be disjoint across a mesh; renumber the pods of one cluster",
							ErrPodCIDROverlap, x.Prefix, r.Context.Cluster, x.Node, y.Prefix, name, y.Node, l.Context.Cluster)
					}
				}
			}
		}
	}
	return nil
}

// trust returns the CA bundle local writes for remote: remote's CA, plus
// local's CA with allowMismatch (both CAs, as Cilium's
// --allow-mismatching-ca adds both to its bundle). It checks that the
// server certificate remote presents verifies against that bundle.
func trust(local, remote *Info, allowMismatch bool) ([]byte, error) {
	cas := []*x509.Certificate{remote.Material.CA}
	pems := [][]byte{remote.Material.CAPEM}
	if allowMismatch {
		cas = append(cas, local.Material.CA)
		pems = append(pems, local.Material.CAPEM)
	}
	if err := verifyServed(remote.Served, cas...); err != nil {
		l, r := local.Context.Cluster, remote.Context.Cluster
		if !allowMismatch && verifyServed(remote.Served, local.Material.CA) == nil {
			return nil, fmt.Errorf("%w: the apiserver of cluster %q presents a certificate issued by the CA of cluster %q (%q), not by its own CA %q in %s: pass --allow-mismatching-ca to trust both CAs, or reissue its server certificate with its own CA",
				ErrCAMismatch, r, l, local.Material.CA.Subject.CommonName, remote.Material.CA.Subject.CommonName, remote.Context.Files().CACert)
		}
		return nil, fmt.Errorf("%w: the apiserver of cluster %q presents a certificate (issuer %q) that %s does not verify (%v): point %q of %s at the certificate directory its strait-apiserver runs with",
			ErrCAMismatch, r, remote.Served.Issuer.CommonName, caNames(cas), err, FieldCertDir, remote.Context.Name())
	}
	return bundle(pems...), nil
}

func caNames(cas []*x509.Certificate) string {
	var n []string
	for _, c := range cas {
		n = append(n, fmt.Sprintf("%q", c.Subject.CommonName))
	}
	return "the CA " + strings.Join(n, " nor the CA ")
}

// FileOp is one file change: write Data with Perm, or remove (Remove).
type FileOp struct {
	Path   string
	Data   []byte
	Perm   os.FileMode
	Remove bool
}

// pairFiles are the files of pair p in local's directory, cluster file last.
func pairFiles(local, remote *Info, caBundle []byte) []FileOp {
	dir := local.Context.ClustermeshConfigDir
	r := remote.Context.Cluster
	var y strings.Builder
	y.WriteString("endpoints:\n")
	for _, ep := range remote.Context.Endpoints {
		fmt.Fprintf(&y, "- %s\n", ep)
	}
	fmt.Fprintf(&y, "trusted-ca-file: %s\ncert-file: %s\nkey-file: %s\n", CAFileName(r), CertFileName(r), KeyFileName(r))
	return []FileOp{
		{Path: filepath.Join(dir, CAFileName(r)), Data: caBundle, Perm: 0o644},
		{Path: filepath.Join(dir, CertFileName(r)), Data: remote.Material.RemoteCertPEM, Perm: 0o644},
		{Path: filepath.Join(dir, KeyFileName(r)), Data: remote.Material.RemoteKeyPEM, Perm: 0o600},
		{Path: filepath.Join(dir, ConfigFileName(r)), Data: []byte(y.String()), Perm: 0o600},
	}
}

// removeFiles are the files connect writes for remote r in dir, cluster
// file first (so the watcher drops the connection before its certificates).
func removeFiles(dir, r string) []FileOp {
	return []FileOp{
		{Path: filepath.Join(dir, ConfigFileName(r)), Remove: true},
		{Path: filepath.Join(dir, CAFileName(r)), Remove: true},
		{Path: filepath.Join(dir, CertFileName(r)), Remove: true},
		{Path: filepath.Join(dir, KeyFileName(r)), Remove: true},
	}
}
