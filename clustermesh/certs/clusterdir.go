package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Files are the paths of a cluster directory:
//
//	<dir>/ca.crt      ca.key       cluster CA (CN strait-ca-<cluster>)
//	<dir>/server.crt  server.key   etcd server (SANs: hosts + <cluster>.mesh.strait.io)
//	<dir>/admin.crt   admin.key    client, CN admin-<cluster> (root role)
//	<dir>/local.crt   local.key    client, CN local-<cluster> (agents of this cluster)
//	<dir>/remote.crt  remote.key   client, CN remote (other clusters)
type Files struct {
	Dir                   string
	CACert, CAKey         string
	ServerCert, ServerKey string
	AdminCert, AdminKey   string
	LocalCert, LocalKey   string
	RemoteCert, RemoteKey string
}

// FilesIn returns the paths of the cluster directory dir.
func FilesIn(dir string) Files {
	p := func(name string) string { return filepath.Join(dir, name) }
	return Files{
		Dir:    dir,
		CACert: p("ca.crt"), CAKey: p("ca.key"),
		ServerCert: p("server.crt"), ServerKey: p("server.key"),
		AdminCert: p("admin.crt"), AdminKey: p("admin.key"),
		LocalCert: p("local.crt"), LocalKey: p("local.key"),
		RemoteCert: p("remote.crt"), RemoteKey: p("remote.key"),
	}
}

// DefaultHosts are always in a server certificate: loopback and the
// cluster's mesh name.
func DefaultHosts(cluster string) []string {
	return []string{"127.0.0.1", "::1", "localhost", cluster + "." + MeshDomain}
}

// ClusterDirOptions describe the directory WriteClusterDir lays out.
type ClusterDirOptions struct {
	// Cluster is the cluster name (CNs strait-ca-<cluster>, admin-<cluster>, ...).
	Cluster string
	// Dir is created (mode 0700) if absent.
	Dir string
	// Hosts are extra server SANs (IPs or DNS names) on top of DefaultHosts.
	Hosts []string
	// Now is the issue time; zero means time.Now().
	Now time.Time
	// CAValidity, LeafValidity and RenewBefore default to DefaultCAValidity,
	// DefaultLeafValidity and DefaultRenewBefore.
	CAValidity, LeafValidity, RenewBefore time.Duration
}

// WriteClusterDir lays out a whole cluster directory and returns its paths
// and the files it wrote (empty when everything was kept).
//
// A missing CA is created; an existing CA is kept and must load (else an
// error naming the file: a CA is never replaced silently, since other
// clusters may trust it). A leaf is kept when it loads, its key matches, it
// chains to the CA with the right usage, its CN is right, a server
// certificate covers every requested host, and it does not expire within
// RenewBefore; otherwise it is issued anew.
func WriteClusterDir(opts ClusterDirOptions) (Files, []string, error) {
	if opts.Cluster == "" {
		return Files{}, nil, errors.New("certs: empty cluster name")
	}
	if opts.Dir == "" {
		return Files{}, nil, errors.New("certs: empty directory")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	caValidity := orDefault(opts.CAValidity, DefaultCAValidity)
	leafValidity := orDefault(opts.LeafValidity, DefaultLeafValidity)
	renewBefore := orDefault(opts.RenewBefore, DefaultRenewBefore)
	dns, ips, err := ParseHosts(append(DefaultHosts(opts.Cluster), opts.Hosts...))
	if err != nil {
		return Files{}, nil, err
	}
	dns, ips = dedup(dns), dedupAddrs(ips)

	f := FilesIn(opts.Dir)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return f, nil, fmt.Errorf("certs: create %s: %w", opts.Dir, err)
	}
	var written []string

	ca, err := loadOrCreateCA(f, opts.Cluster, now, caValidity)
	if err != nil {
		return f, nil, err
	}
	if ca.created {
		if err := WriteKeyPair(f.CACert, f.CAKey, (*KeyPair)(ca.CA)); err != nil {
			return f, nil, err
		}
		written = append(written, f.CACert, f.CAKey)
	}

	leaves := []struct {
		cert, key string
		opts      LeafOptions
	}{
		{f.ServerCert, f.ServerKey, LeafOptions{CommonName: "strait-apiserver-" + opts.Cluster, DNSNames: dns, IPs: ips, Server: true, Client: true}},
		{f.AdminCert, f.AdminKey, LeafOptions{CommonName: AdminUser(opts.Cluster), Client: true}},
		{f.LocalCert, f.LocalKey, LeafOptions{CommonName: LocalUser(opts.Cluster), Client: true}},
		{f.RemoteCert, f.RemoteKey, LeafOptions{CommonName: RemoteUser, Client: true}},
	}
	for _, l := range leaves {
		l.opts.Now, l.opts.Validity = now, leafValidity
		if leafValid(ca.CA, l.cert, l.key, l.opts, now.Add(renewBefore)) {
			continue
		}
		kp, err := ca.Issue(l.opts)
		if err != nil {
			return f, written, err
		}
		if err := WriteKeyPair(l.cert, l.key, kp); err != nil {
			return f, written, err
		}
		written = append(written, l.cert, l.key)
	}
	return f, written, nil
}

type loadedCA struct {
	*CA
	created bool
}

func loadOrCreateCA(f Files, cluster string, now time.Time, validity time.Duration) (loadedCA, error) {
	_, certErr := os.Stat(f.CACert)
	_, keyErr := os.Stat(f.CAKey)
	if errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist) {
		ca, err := NewCA(cluster, now, validity)
		return loadedCA{CA: ca, created: true}, err
	}
	ca, err := LoadCA(f.CACert, f.CAKey)
	if err != nil {
		return loadedCA{}, err
	}
	if now.Before(ca.Cert.NotBefore) || now.After(ca.Cert.NotAfter) {
		return loadedCA{}, fmt.Errorf("certs: %s (valid %s to %s): %w", f.CACert,
			ca.Cert.NotBefore.Format(time.RFC3339), ca.Cert.NotAfter.Format(time.RFC3339), ErrExpired)
	}
	return loadedCA{CA: ca}, nil
}

// leafValid reports whether the pair on disk satisfies want until renewAt.
func leafValid(ca *CA, certFile, keyFile string, want LeafOptions, renewAt time.Time) bool {
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return false
	}
	c := kp.Cert
	if c.Subject.CommonName != want.CommonName || renewAt.After(c.NotAfter) {
		return false
	}
	if want.Server && ca.Verify(c, x509.ExtKeyUsageServerAuth, want.Now) != nil {
		return false
	}
	if want.Client && ca.Verify(c, x509.ExtKeyUsageClientAuth, want.Now) != nil {
		return false
	}
	for _, name := range want.DNSNames {
		if !slices.Contains(c.DNSNames, name) {
			return false
		}
	}
	for _, ip := range want.IPs {
		if !slices.ContainsFunc(c.IPAddresses, func(have net.IP) bool {
			a, ok := netip.AddrFromSlice(have)
			return ok && a.Unmap() == ip
		}) {
			return false
		}
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm()&0o077 != 0 {
		return false // a key readable by others is replaced
	}
	return true
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func dedup(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func dedupAddrs(s []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
