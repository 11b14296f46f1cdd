package demo

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/strait-net/strait/tools/lab"
)

// Defaults of Options (and of the straitctl demo flags).
const (
	DefaultClusters   = 2
	DefaultNodes      = 2
	DefaultPods       = 2
	DefaultEncryption = lab.EncryptionWireGuard
	DefaultDir        = ".strait-demo"
	DefaultTimeout    = 3 * time.Minute
	// DefaultName is the lab name when no other demo's namespaces exist.
	DefaultName = "demo"
)

// Options shape a demo. The zero value of a field means its default
// (Run fills them in); Validate checks the values as given, so a flag set
// to 0 is refused rather than replaced.
type Options struct {
	// Clusters (2..9), Nodes per cluster (1..9), Pods per node (1..9).
	Clusters, Nodes, Pods int
	// Encryption is "wireguard", "ipsec" or "none".
	Encryption string
	// Keep leaves the topology running after the summary (remove it with
	// Down).
	Keep bool
	// Dir is the work directory (certificates, etcd data, logs, contexts,
	// the lab record). It must be empty, absent, or a previous demo's.
	Dir string
	// BinDir holds strait-apiserver, strait-agent, strait-wireguard,
	// strait-cni and straitctl.
	BinDir string
	// Timeout bounds the run from the start to the proof (teardown has its
	// own bound).
	Timeout time.Duration
	// Name is the lab name, in every namespace name (sl-<name>-...):
	// [a-z0-9]{1,8}. Empty: DefaultName, or "d<pid>" when namespaces of
	// another "demo" lab exist.
	Name string
}

// Flag names, as Validate's errors give them.
const (
	FlagClusters   = "clusters"
	FlagNodes      = "nodes"
	FlagPods       = "pods"
	FlagEncryption = "encryption"
	FlagDir        = "dir"
	FlagBinDir     = "bin-dir"
	FlagTimeout    = "timeout"
	FlagName       = "name"
)

var nameRe = regexp.MustCompile(`^[a-z0-9]{1,8}$`)

// optionError names the flag at fault, as straitctl does.
func optionError(flag, format string, args ...any) error {
	return fmt.Errorf("invalid --%s: %s: %w", flag, fmt.Sprintf(format, args...), ErrOption)
}

// Validate checks the options as given (no defaults filled in) and names
// the flag of the first bad one; errors wrap ErrOption.
func (o Options) Validate() error {
	var errs []error
	if o.Clusters < 2 || o.Clusters > 9 {
		errs = append(errs, optionError(FlagClusters, "%d: want 2..9 (a mesh needs at least two clusters)", o.Clusters))
	}
	if o.Nodes < 1 || o.Nodes > 9 {
		errs = append(errs, optionError(FlagNodes, "%d: want 1..9 nodes per cluster", o.Nodes))
	}
	if o.Pods < 1 || o.Pods > 9 {
		errs = append(errs, optionError(FlagPods, "%d: want 1..9 pods per node", o.Pods))
	}
	switch o.Encryption {
	case lab.EncryptionWireGuard, lab.EncryptionIPsec, lab.EncryptionNone:
	default:
		errs = append(errs, optionError(FlagEncryption, "%q: want wireguard, ipsec or none", o.Encryption))
	}
	if o.Dir == "" {
		errs = append(errs, optionError(FlagDir, "empty: name the work directory"))
	}
	if o.BinDir == "" {
		errs = append(errs, optionError(FlagBinDir, "empty: name the directory holding the strait binaries"))
	}
	if o.Timeout <= 0 {
		errs = append(errs, optionError(FlagTimeout, "%s: must be positive", o.Timeout))
	}
	if o.Name != "" && !nameRe.MatchString(o.Name) {
		errs = append(errs, optionError(FlagName, "%q: want 1 to 8 of [a-z0-9] (it goes into namespace names)", o.Name))
	}
	return errors.Join(errs...)
}

// withDefaults fills the zero fields and makes the directories absolute.
func (o Options) withDefaults() (Options, error) {
	if o.Clusters == 0 {
		o.Clusters = DefaultClusters
	}
	if o.Nodes == 0 {
		o.Nodes = DefaultNodes
	}
	if o.Pods == 0 {
		o.Pods = DefaultPods
	}
	if o.Encryption == "" {
		o.Encryption = DefaultEncryption
	}
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	var err error
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return o, optionError(FlagDir, "%v", err)
	}
	if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
		return o, optionError(FlagBinDir, "%v", err)
	}
	return o, nil
}
