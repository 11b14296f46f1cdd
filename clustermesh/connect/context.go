package connect

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

// MaxContextSize bounds a context file.
const MaxContextSize = 1 << 20

// Field names of a context file, as they appear in errors.
const (
	FieldCluster              = "cluster"
	FieldID                   = "id"
	FieldMax                  = "maxConnectedClusters"
	FieldEndpoints            = "endpoints"
	FieldCertDir              = "certDir"
	FieldClustermeshConfigDir = "clustermeshConfigDir"
	FieldAgents               = "agents"
)

// Agent is one node agent whose endpoint API socket straitctl status asks.
type Agent struct {
	Node   string `json:"node"`
	Socket string `json:"socket"`
}

// Context describes one cluster to straitctl (contract §9). Paths are
// absolute once loaded: relative ones are resolved against the directory
// of the context file.
type Context struct {
	// Path is the context file it was read from ("" when built in code).
	Path      string
	Cluster   string
	ID        identity.ClusterID
	Max       identity.ClusterMax
	Endpoints []string
	// CertDir is a `strait-apiserver certs generate` directory (certs.FilesIn).
	CertDir string
	// ClustermeshConfigDir is the directory the cluster's strait-apiserver
	// watches (--clustermesh-config).
	ClustermeshConfigDir string
	Agents               []Agent
}

// contextFile is the on-disk shape.
type contextFile struct {
	Cluster              string   `json:"cluster"`
	ID                   *int64   `json:"id"`
	Max                  *int64   `json:"maxConnectedClusters"`
	Endpoints            []string `json:"endpoints"`
	CertDir              string   `json:"certDir"`
	ClustermeshConfigDir string   `json:"clustermeshConfigDir"`
	Agents               []Agent  `json:"agents"`
}

// Name is how errors refer to the context: its file, else its cluster.
func (c *Context) Name() string {
	if c.Path != "" {
		return c.Path
	}
	return "context of " + c.Cluster
}

// Files are the paths of the cluster's certificate directory.
func (c *Context) Files() certs.Files { return certs.FilesIn(c.CertDir) }

// AdminConfig is the kvstore config straitctl dials the apiserver with:
// the cluster's CA and its admin certificate.
func (c *Context) AdminConfig() kvstore.Config {
	f := c.Files()
	return kvstore.Config{Endpoints: c.Endpoints, TrustedCAFile: f.CACert, CertFile: f.AdminCert, KeyFile: f.AdminKey}
}

// LoadContext reads and validates the context file at path. Errors wrap
// ErrContext (or the read error) and name the file and field.
func LoadContext(path string) (*Context, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrContext, path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxContextSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrContext, path, err)
	}
	if len(data) > MaxContextSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrContext, path, MaxContextSize)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrContext, path, err)
	}
	c, err := ParseContext(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// ParseContext decodes and validates a context file's content; relative
// paths are resolved against baseDir. It touches no file. Errors wrap
// ErrContext and name the field.
func ParseContext(data []byte, baseDir string) (*Context, error) {
	var y contextFile
	if err := yaml.UnmarshalStrict(data, &y); err != nil {
		return nil, fmt.Errorf("%w: invalid yaml: %w", ErrContext, err)
	}
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: field %q: %s", ErrContext, field, fmt.Sprintf(format, args...))
	}
	c := &Context{Cluster: y.Cluster}
	switch {
	case y.Cluster == "":
		return nil, bad(FieldCluster, "missing")
	case y.Cluster == schema.DefaultClusterName:
		return nil, bad(FieldCluster, "%q is reserved for a cluster outside a mesh: give the cluster another name (here and in its strait-apiserver --cluster-name)", y.Cluster)
	}
	if err := schema.ValidateClusterName(y.Cluster, 1); err != nil {
		return nil, bad(FieldCluster, "%q: lowercase letters, digits and '-', at most %d characters, starting and ending with a letter or digit", y.Cluster, schema.MaxClusterNameLength)
	}
	c.Max = identity.ClusterMax255
	if y.Max != nil {
		if *y.Max != 255 && *y.Max != 511 {
			return nil, bad(FieldMax, "%d: must be 255 or 511", *y.Max)
		}
		c.Max = identity.ClusterMax(*y.Max)
	}
	switch {
	case y.ID == nil:
		return nil, bad(FieldID, "missing")
	case *y.ID == 0:
		return nil, bad(FieldID, "0 is reserved for a cluster outside a mesh: give the cluster an ID in 1..%d (here and in its strait-apiserver --cluster-id)", c.Max)
	case *y.ID < 0 || *y.ID > int64(c.Max):
		return nil, bad(FieldID, "%d is outside 1..%d (maxConnectedClusters)", *y.ID, c.Max)
	}
	c.ID = identity.ClusterID(*y.ID)
	if len(y.Endpoints) == 0 {
		return nil, bad(FieldEndpoints, "missing: list the https://host:port URLs of the cluster's strait-apiserver")
	}
	for i, ep := range y.Endpoints {
		if err := checkEndpoint(ep); err != nil {
			return nil, bad(fmt.Sprintf("%s[%d]", FieldEndpoints, i), "%q: %v", ep, err)
		}
	}
	c.Endpoints = append([]string(nil), y.Endpoints...)
	if y.CertDir == "" {
		return nil, bad(FieldCertDir, "missing: the cluster's `strait-apiserver certs generate` directory")
	}
	c.CertDir = resolve(baseDir, y.CertDir)
	if y.ClustermeshConfigDir == "" {
		return nil, bad(FieldClustermeshConfigDir, "missing: the directory the cluster's strait-apiserver watches (--clustermesh-config)")
	}
	c.ClustermeshConfigDir = resolve(baseDir, y.ClustermeshConfigDir)
	seen := map[string]bool{}
	for i, a := range y.Agents {
		field := fmt.Sprintf("%s[%d]", FieldAgents, i)
		switch {
		case a.Node == "":
			return nil, bad(field+".node", "missing")
		case a.Socket == "":
			return nil, bad(field+".socket", "missing")
		case seen[a.Node]:
			return nil, bad(field+".node", "%q listed twice", a.Node)
		}
		seen[a.Node] = true
		c.Agents = append(c.Agents, Agent{Node: a.Node, Socket: resolve(baseDir, a.Socket)})
	}
	return c, nil
}

// checkEndpoint accepts https://host:port only.
func checkEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "https":
		return errors.New("want https://host:port")
	case u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return errors.New("want https://host:port, nothing else")
	case u.Hostname() == "" || u.Port() == "":
		return errors.New("want https://host:port")
	}
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q is not in 1-65535", u.Port())
	}
	return nil
}

func resolve(base, p string) string {
	if filepath.IsAbs(p) || base == "" {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// String is a short description for messages.
func (c *Context) String() string {
	return fmt.Sprintf("%s (id %d, %s)", c.Cluster, c.ID, strings.Join(c.Endpoints, ","))
}
