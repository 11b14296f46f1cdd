package remoteconfig

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
)

// Errors returned by ValidateClusterName, Parse and Load. The returned
// errors wrap one of these and name the file, field and value at fault.
var (
	// ErrInvalidName: the file name is not a valid cluster name.
	ErrInvalidName = errors.New("remoteconfig: invalid cluster name")
	// ErrNotClusterFile: the file does not contain "endpoints:" (or cannot
	// be read and has no valid cluster name), so it is not a cluster file.
	// Certificates and keys may live in the same directory; the Watcher
	// ignores such files unless they replace a known cluster's config.
	ErrNotClusterFile = errors.New("remoteconfig: not a cluster file")
	// ErrSyntax: the content is not valid YAML of the expected shape.
	ErrSyntax = errors.New("remoteconfig: invalid yaml")
	// ErrNoEndpoints: the endpoints list is missing or empty.
	ErrNoEndpoints = errors.New("remoteconfig: no endpoints")
	// ErrInvalidEndpoint: an endpoint is not scheme://host:port with
	// scheme http or https.
	ErrInvalidEndpoint = errors.New("remoteconfig: invalid endpoint")
	// ErrTLSFields: the TLS fields do not fit together or do not fit the
	// endpoints' scheme (same rules as kvstore.Config).
	ErrTLSFields = errors.New("remoteconfig: inconsistent tls fields")
	// ErrHostAlias: a cilium-host-aliases entry is empty or duplicated.
	ErrHostAlias = errors.New("remoteconfig: invalid host alias")
	// ErrCertificate: a referenced certificate or key file is missing,
	// unreadable or does not hold what its field promises.
	ErrCertificate = errors.New("remoteconfig: unusable certificate file")
	// ErrTooLarge: a file exceeds MaxFileSize.
	ErrTooLarge = errors.New("remoteconfig: file too large")
)

// MaxFileSize bounds every file Load reads (config, certificates, keys).
const MaxFileSize = 1 << 20

// Field names as they appear in a cluster file.
const (
	FieldEndpoints     = "endpoints"
	FieldTrustedCAFile = "trusted-ca-file"
	FieldCertFile      = "cert-file"
	FieldKeyFile       = "key-file"
	FieldHostAliases   = "cilium-host-aliases"
	// fieldCAFile is etcd's deprecated alias of trusted-ca-file.
	fieldCAFile = "ca-file"
)

// ValidateClusterName checks name against Cilium's cluster-name rules
// (schema.ValidateClusterName for a meshed cluster, so "default" is
// refused). The error wraps both ErrInvalidName and
// schema.ErrInvalidClusterName.
func ValidateClusterName(name string) error {
	// A remote cluster is always meshed, so its ID is non-zero.
	if err := schema.ValidateClusterName(name, 1); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	return nil
}

// HostAlias is one cilium-host-aliases entry: static addresses for a
// hostname used in the endpoints. strait keeps it but does not act on it.
type HostAlias struct {
	Hostname string       `json:"hostname"`
	IPs      []netip.Addr `json:"ips"`
}

// File is the decoded content of a cluster file, paths as written.
type File struct {
	Endpoints     []string
	TrustedCAFile string
	CertFile      string
	KeyFile       string
	HostAliases   []HostAlias
}

// clusterFile is the on-disk shape: etcd's client YAML (clientv3/yaml) plus
// Cilium's cilium-host-aliases. Unknown keys (dial-timeout, username, ...)
// are accepted and ignored, as etcd's own loader does for keys it lacks.
type clusterFile struct {
	Endpoints     []string    `json:"endpoints"`
	TrustedCAFile string      `json:"trusted-ca-file"`
	CAFile        string      `json:"ca-file"`
	CertFile      string      `json:"cert-file"`
	KeyFile       string      `json:"key-file"`
	HostAliases   []HostAlias `json:"cilium-host-aliases"`
}

// Parse decodes and validates the content of a cluster file. It checks
// the syntax, the endpoints (http or https, host, port 1-65535, nothing
// else), the TLS fields' consistency and the host aliases; it touches no
// file. Errors wrap ErrSyntax, ErrNoEndpoints, ErrInvalidEndpoint,
// ErrTLSFields or ErrHostAlias and name the field.
func Parse(data []byte) (File, error) {
	var y clusterFile
	if err := yaml.Unmarshal(data, &y); err != nil {
		return File{}, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	f := File{
		Endpoints:     y.Endpoints,
		TrustedCAFile: y.TrustedCAFile,
		CertFile:      y.CertFile,
		KeyFile:       y.KeyFile,
		HostAliases:   y.HostAliases,
	}
	if f.TrustedCAFile == "" {
		f.TrustedCAFile = y.CAFile
	} else if y.CAFile != "" && y.CAFile != y.TrustedCAFile {
		return File{}, fmt.Errorf("%w: %s %q and %s %q disagree", ErrTLSFields,
			FieldTrustedCAFile, y.TrustedCAFile, fieldCAFile, y.CAFile)
	}
	if len(f.Endpoints) == 0 {
		return File{}, fmt.Errorf("%s: %w", FieldEndpoints, ErrNoEndpoints)
	}
	useTLS := f.TrustedCAFile != ""
	for i, ep := range f.Endpoints {
		scheme, err := validateEndpoint(ep)
		if err != nil {
			return File{}, fmt.Errorf("%s[%d] %q: %w", FieldEndpoints, i, ep, err)
		}
		switch {
		case scheme == "https" && !useTLS:
			return File{}, fmt.Errorf("%s[%d] %q: %w: https needs %s", FieldEndpoints, i, ep, ErrTLSFields, FieldTrustedCAFile)
		case scheme == "http" && useTLS:
			return File{}, fmt.Errorf("%s[%d] %q: %w: http with %s set", FieldEndpoints, i, ep, ErrTLSFields, FieldTrustedCAFile)
		}
	}
	switch {
	case f.CertFile != "" && f.KeyFile == "":
		return File{}, fmt.Errorf("%s: %w: missing, but %s is set", FieldKeyFile, ErrTLSFields, FieldCertFile)
	case f.KeyFile != "" && f.CertFile == "":
		return File{}, fmt.Errorf("%s: %w: missing, but %s is set", FieldCertFile, ErrTLSFields, FieldKeyFile)
	case f.CertFile != "" && f.TrustedCAFile == "":
		return File{}, fmt.Errorf("%s: %w: missing, but %s is set", FieldTrustedCAFile, ErrTLSFields, FieldCertFile)
	}
	seen := make(map[string]bool, len(f.HostAliases))
	for i, ha := range f.HostAliases {
		switch {
		case ha.Hostname == "":
			return File{}, fmt.Errorf("%s[%d]: %w: empty hostname", FieldHostAliases, i, ErrHostAlias)
		case len(ha.IPs) == 0:
			return File{}, fmt.Errorf("%s[%d] %q: %w: no ips", FieldHostAliases, i, ha.Hostname, ErrHostAlias)
		case seen[ha.Hostname]:
			return File{}, fmt.Errorf("%s[%d] %q: %w: duplicate hostname", FieldHostAliases, i, ha.Hostname, ErrHostAlias)
		}
		for j, ip := range ha.IPs {
			if !ip.IsValid() {
				return File{}, fmt.Errorf("%s[%d] %q: %w: ips[%d] is empty", FieldHostAliases, i, ha.Hostname, ErrHostAlias, j)
			}
		}
		seen[ha.Hostname] = true
	}
	return f, nil
}

// validateEndpoint checks that ep is scheme://host:port with scheme http or
// https and nothing else, and returns the scheme.
func validateEndpoint(ep string) (string, error) {
	u, err := url.Parse(ep)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidEndpoint, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%w: scheme %q is neither http nor https", ErrInvalidEndpoint, u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return "", fmt.Errorf("%w: want %s://host:port", ErrInvalidEndpoint, u.Scheme)
	case u.User != nil:
		return "", fmt.Errorf("%w: user info is not allowed", ErrInvalidEndpoint)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.ForceQuery, u.Fragment != "":
		return "", fmt.Errorf("%w: path, query and fragment are not allowed", ErrInvalidEndpoint)
	case u.Hostname() == "":
		return "", fmt.Errorf("%w: missing host", ErrInvalidEndpoint)
	case u.Port() == "":
		return "", fmt.Errorf("%w: missing port", ErrInvalidEndpoint)
	}
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("%w: port %q is not in 1-65535", ErrInvalidEndpoint, u.Port())
	}
	return u.Scheme, nil
}

// RemoteCluster is a validated cluster file, ready to connect with.
type RemoteCluster struct {
	// Name is the cluster name, the file name.
	Name string
	// Path is the cluster file's path (in the watched directory; it may
	// be a symlink).
	Path string
	// Config is the etcd client config. TLS paths are absolute: relative
	// paths in the file are resolved against the file's directory. Only
	// Endpoints and the TLS files are set; durations stay zero (defaults).
	Config kvstore.Config
	// HostAliases is the file's cilium-host-aliases, kept, not acted on.
	HostAliases []HostAlias
	// Hash is a SHA-256 over the file's content and the path and content
	// of each referenced TLS file, so a changed certificate changes it.
	Hash [sha256.Size]byte
}

// Load reads and validates the cluster file dir/name and the TLS files it
// references. Relative TLS paths are resolved against dir (Cilium passes
// them to etcd unchanged, i.e. relative to the process's working
// directory; Helm always writes absolute paths, so this only matters for
// hand-written files). Every error names the file and wraps one of:
// ErrNotClusterFile (no "endpoints:", or unreadable with an invalid name),
// ErrInvalidName, ErrTooLarge, a read error, one of Parse's errors, or
// ErrCertificate naming the field and the TLS file.
func Load(dir, name string) (RemoteCluster, error) {
	rc, _, err := load(dir, name)
	return rc, err
}

// errVanished marks a cluster file deleted between listing and reading.
var errVanished = errors.New("remoteconfig: file vanished")

// load is Load that also returns the resolved TLS paths the file
// references, once it got far enough to know them.
func load(dir, name string) (RemoteCluster, []string, error) {
	path := filepath.Join(dir, name)
	nameErr := ValidateClusterName(name)
	var tlsPaths []string
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return RemoteCluster{}, nil, fmt.Errorf("read %s: %w: %w", path, errVanished, err)
	}
	if err != nil {
		if nameErr != nil {
			return RemoteCluster{}, nil, fmt.Errorf("%s: %w: unreadable (%w) and %w", path, ErrNotClusterFile, err, nameErr)
		}
		return RemoteCluster{}, tlsPaths, fmt.Errorf("read %s: %w", path, err)
	}
	if !bytes.Contains(data, []byte(FieldEndpoints+":")) {
		return RemoteCluster{}, tlsPaths, fmt.Errorf("%s: %w: no %q key", path, ErrNotClusterFile, FieldEndpoints+":")
	}
	if nameErr != nil {
		return RemoteCluster{}, tlsPaths, fmt.Errorf("%s: %w", path, nameErr)
	}
	f, err := Parse(data)
	if err != nil {
		return RemoteCluster{}, tlsPaths, fmt.Errorf("%s: %w", path, err)
	}

	h := sha256.New()
	writeChunk(h, []byte("config"), data)
	rc := RemoteCluster{
		Name:        name,
		Path:        path,
		HostAliases: f.HostAliases,
		Config:      kvstore.Config{Endpoints: f.Endpoints},
	}
	tlsFiles := []struct {
		field string
		path  string // resolved; "" when the field is unset
		dst   *string
		pem   []byte
	}{
		{field: FieldTrustedCAFile, path: f.TrustedCAFile, dst: &rc.Config.TrustedCAFile},
		{field: FieldCertFile, path: f.CertFile, dst: &rc.Config.CertFile},
		{field: FieldKeyFile, path: f.KeyFile, dst: &rc.Config.KeyFile},
	}
	for i := range tlsFiles {
		tf := &tlsFiles[i]
		if tf.path == "" {
			continue
		}
		if !filepath.IsAbs(tf.path) {
			tf.path = filepath.Join(dir, tf.path)
		}
		tf.path = filepath.Clean(tf.path)
		tlsPaths = append(tlsPaths, tf.path)
	}
	for i := range tlsFiles {
		tf := &tlsFiles[i]
		if tf.path == "" {
			continue
		}
		b, err := readFile(tf.path)
		if err != nil {
			return RemoteCluster{}, tlsPaths, fmt.Errorf("%s: %s %s: %w: %w", path, tf.field, tf.path, ErrCertificate, err)
		}
		*tf.dst = tf.path
		tf.pem = b
		writeChunk(h, []byte(tf.field), []byte(tf.path))
		writeChunk(h, []byte(tf.field), b)
	}
	if ca := tlsFiles[0].pem; ca != nil {
		if !x509.NewCertPool().AppendCertsFromPEM(ca) {
			return RemoteCluster{}, tlsPaths, fmt.Errorf("%s: %s %s: %w: no PEM certificate", path, FieldTrustedCAFile, rc.Config.TrustedCAFile, ErrCertificate)
		}
	}
	if cert, key := tlsFiles[1].pem, tlsFiles[2].pem; cert != nil && key != nil {
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			return RemoteCluster{}, tlsPaths, fmt.Errorf("%s: %s %s and %s %s: %w: %w", path,
				FieldCertFile, rc.Config.CertFile, FieldKeyFile, rc.Config.KeyFile, ErrCertificate, err)
		}
	}
	h.Sum(rc.Hash[:0])
	return rc, tlsPaths, nil
}

// writeChunk writes tag and data length-prefixed, so that distinct
// sequences of chunks never hash alike.
func writeChunk(w io.Writer, tag, data []byte) {
	var n [8]byte
	for _, b := range [][]byte{tag, data} {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		_, _ = w.Write(n[:])
		_, _ = w.Write(b)
	}
}

// readFile reads a regular file (following symlinks) of at most
// MaxFileSize bytes. Refusing other file types keeps a FIFO from blocking
// the caller forever.
func readFile(path string) ([]byte, error) {
	// Stat before Open: opening a FIFO for reading blocks until a writer
	// shows up.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errNotRegular(fi.Mode())}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, path, MaxFileSize)
	}
	return b, nil
}

// errNotRegular describes a file that is not a regular file.
type errNotRegular fs.FileMode

func (m errNotRegular) Error() string {
	if fs.FileMode(m).IsDir() {
		return "is a directory"
	}
	return "not a regular file (" + strings.TrimSpace(fs.FileMode(m).Type().String()) + ")"
}
