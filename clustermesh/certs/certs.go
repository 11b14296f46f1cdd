package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/strait-net/strait/internal/atomicfile"
)

// etcd user names carried as certificate Common Names.
const (
	// RootUser is etcd's built-in superuser; it holds the root role.
	RootUser = "root"
	// RemoteUser is the user other clusters authenticate as.
	RemoteUser = "remote"
)

// AdminUser is the user the apiserver of cluster authenticates as (root role).
func AdminUser(cluster string) string { return "admin-" + cluster }

// LocalUser is the user the agents of cluster authenticate as (read-only on
// the cache, cluster configs, canaries and the heartbeat).
func LocalUser(cluster string) string { return "local-" + cluster }

// MeshDomain is the DNS suffix of a cluster's apiserver name,
// <cluster>.mesh.strait.io, always present in its server certificate.
const MeshDomain = "mesh.strait.io"

// Default validity periods and the renewal window.
const (
	DefaultCAValidity   = 3 * 365 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
	// DefaultRenewBefore: a leaf expiring sooner than this is issued anew.
	DefaultRenewBefore = 30 * 24 * time.Hour
)

var (
	// ErrNoCertificate is returned for a PEM file without a CERTIFICATE block.
	ErrNoCertificate = errors.New("certs: no certificate in file")
	// ErrNoKey is returned for a PEM file without a private key block.
	ErrNoKey = errors.New("certs: no private key in file")
	// ErrKeyMismatch is returned when a key file does not hold the private
	// key of the certificate beside it.
	ErrKeyMismatch = errors.New("certs: private key does not match certificate")
	// ErrExpired is returned for a certificate outside its validity period.
	ErrExpired = errors.New("certs: certificate expired or not yet valid")
	// ErrNotCA is returned when a CA file holds a certificate that cannot sign.
	ErrNotCA = errors.New("certs: certificate is not a CA")
	// ErrInvalidHost is returned for a host that is neither an IP nor a DNS name.
	ErrInvalidHost = errors.New("certs: invalid host")
)

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// CA is a cluster certificate authority.
type CA KeyPair

// NewCA creates a self-signed CA named strait-ca-<cluster>, valid from now
// (minus a minute of clock skew) for validity.
func NewCA(cluster string, now time.Time, validity time.Duration) (*CA, error) {
	if cluster == "" {
		return nil, errors.New("certs: empty cluster name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	skid, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "strait-ca-" + cluster, Organization: []string{"strait"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse new CA: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LeafOptions describe a certificate to issue.
type LeafOptions struct {
	// CommonName is the subject CN; for client certificates it is the etcd user.
	CommonName string
	// DNSNames and IPs are the subject alternative names (server certificates).
	DNSNames []string
	IPs      []netip.Addr
	// Server and Client select the extended key usages (at least one).
	Server, Client bool
	// Now and Validity set the validity period.
	Now      time.Time
	Validity time.Duration
}

// Issue signs a new ECDSA P-256 leaf certificate.
func (ca *CA) Issue(opts LeafOptions) (*KeyPair, error) {
	if opts.CommonName == "" {
		return nil, errors.New("certs: empty common name")
	}
	if !opts.Server && !opts.Client {
		return nil, fmt.Errorf("certs: %s: neither server nor client usage", opts.CommonName)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate key of %s: %w", opts.CommonName, err)
	}
	skid, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	var usages []x509.ExtKeyUsage
	if opts.Server {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if opts.Client {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName, Organization: []string{"strait"}},
		NotBefore:             opts.Now.Add(-time.Minute),
		NotAfter:              opts.Now.Add(opts.Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           usages,
		BasicConstraintsValid: true,
		DNSNames:              slices.Clone(opts.DNSNames),
		SubjectKeyId:          skid,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	for _, ip := range opts.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: sign %s: %w", opts.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parse new %s: %w", opts.CommonName, err)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// Verify checks that cert chains to ca for usage at time now.
func (ca *CA) Verify(cert *x509.Certificate, usage x509.ExtKeyUsage, now time.Time) error {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("certs: verify %s against %s: %w", cert.Subject.CommonName, ca.Cert.Subject.CommonName, err)
	}
	return nil
}

// ParseHosts splits hosts into IP addresses and DNS names. Each entry must be
// an IP address or a DNS name (letters, digits, '-', '.', optionally a
// leading "*." wildcard).
func ParseHosts(hosts []string) (dns []string, ips []netip.Addr, err error) {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip, perr := netip.ParseAddr(h); perr == nil {
			ips = append(ips, ip.Unmap())
			continue
		}
		if !validDNSName(h) {
			return nil, nil, fmt.Errorf("%w: %q is neither an IP address nor a DNS name", ErrInvalidHost, h)
		}
		dns = append(dns, strings.ToLower(h))
	}
	return dns, ips, nil
}

func validDNSName(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

// subjectKeyID is the SHA-1 of the subjectPublicKey bit string (RFC 5280
// §4.2.1.2, method 1).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("certs: marshal public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("certs: parse public key: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

// writeFileAtomic writes data with mode perm over name, atomically.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(name, data, perm)
}
