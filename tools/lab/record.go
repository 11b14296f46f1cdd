package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// RecordFile is the lab record in the work directory: what the lab created,
// written before each creation so Destroy can clean up after a crash.
const RecordFile = "lab.json"

var (
	// ErrNoRecord: the work directory holds no lab record.
	ErrNoRecord = errors.New("lab: no lab record")
	// ErrRecord: the lab record cannot be decoded or is inconsistent.
	ErrRecord = errors.New("lab: bad lab record")
)

// record is the JSON content of RecordFile.
type record struct {
	Spec Spec `json:"spec"`
	// Netns in creation order.
	Netns []string `json:"netns"`
	// PidFiles of every process the lab (or an agent) may have started, in
	// the order they must be stopped.
	PidFiles []pidFile `json:"pidFiles"`
}

type pidFile struct {
	Path   string `json:"path"`
	Binary string `json:"binary"`
}

// recorder keeps the record file in step with the lab.
type recorder struct {
	mu   sync.Mutex
	path string
	rec  record
}

func (r *recorder) addNetns(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.rec.Netns, name) {
		r.rec.Netns = append(r.rec.Netns, name)
	}
	return r.writeLocked()
}

func (r *recorder) addPidFile(path, binary string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	pf := pidFile{Path: path, Binary: binary}
	if !slices.Contains(r.rec.PidFiles, pf) {
		r.rec.PidFiles = append(r.rec.PidFiles, pf)
	}
	return r.writeLocked()
}

func (r *recorder) writeLocked() error {
	b, err := json.MarshalIndent(r.rec, "", "  ")
	if err != nil {
		return fmt.Errorf("lab record: %w", err)
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("lab record: %w", err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		return fmt.Errorf("lab record: %w", err)
	}
	return nil
}

// decodeRecord parses and checks a lab record.
func decodeRecord(name string, b []byte) (record, error) {
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w: %v", name, ErrRecord, err)
	}
	if !labNameRe.MatchString(rec.Spec.Name) {
		return rec, fmt.Errorf("%s: spec.name %q: %w", name, rec.Spec.Name, ErrRecord)
	}
	for i, n := range rec.Netns {
		if filepath.Base(n) != n || len(n) <= len(Prefix) || n[:len(Prefix)] != Prefix {
			return rec, fmt.Errorf("%s: netns[%d] %q: not a lab namespace: %w", name, i, n, ErrRecord)
		}
	}
	for i, p := range rec.PidFiles {
		if !filepath.IsAbs(p.Path) || p.Binary == "" {
			return rec, fmt.Errorf("%s: pidFiles[%d] %q/%q: need an absolute path and a binary: %w", name, i, p.Path, p.Binary, ErrRecord)
		}
	}
	return rec, nil
}

func readRecord(workDir string) (record, error) {
	path := filepath.Join(workDir, RecordFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return record{}, fmt.Errorf("%s: %w", path, ErrNoRecord)
	}
	if err != nil {
		return record{}, fmt.Errorf("lab record: %w", err)
	}
	return decodeRecord(path, b)
}

// Destroy removes what a lab recorded in workDir: its processes (by pid
// file, only when the pid still runs the recorded binary), its network
// namespaces (and any other named "sl-<name>-*"), then the record. It is
// what `lab down` does and what to call after a crash; it does not delete
// the work directory (logs stay).
func Destroy(ctx context.Context, log *slog.Logger, workDir string) error {
	rec, err := readRecord(workDir)
	if err != nil {
		return err
	}
	if err := destroy(ctx, log, rec); err != nil {
		return err
	}
	return os.Remove(filepath.Join(workDir, RecordFile))
}

func destroy(ctx context.Context, log *slog.Logger, rec record) error {
	var errs []error
	pids := slices.Clone(rec.PidFiles)
	sortPidFiles(pids)
	for _, p := range pids {
		if err := killPidFile(p.Path, p.Binary, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	names := slices.Clone(rec.Netns)
	slices.Reverse(names)
	more, err := listNetns(Prefix + rec.Spec.Name + "-")
	if err != nil {
		errs = append(errs, err)
	}
	for _, m := range more {
		if !slices.Contains(names, m) {
			names = append([]string{m}, names...)
		}
	}
	for _, n := range names {
		if err := deleteNetns(ctx, n); err != nil {
			errs = append(errs, err)
		} else {
			log.Debug("netns deleted", "netns", n)
		}
	}
	return errors.Join(errs...)
}

// ReadSpec returns the spec recorded in workDir (defaults filled in).
func ReadSpec(workDir string) (Spec, error) {
	rec, err := readRecord(workDir)
	if err != nil {
		return Spec{}, err
	}
	return rec.Spec, nil
}

// Describe lays out the clusters and nodes a spec makes (as Up would; the
// spec must have its defaults, as ReadSpec returns it).
func Describe(spec Spec) ([]Cluster, []Node) {
	var cs []Cluster
	var ns []Node
	for c := 1; c <= spec.Clusters; c++ {
		cs = append(cs, clusterDesc(spec, c))
		for n := 1; n <= spec.NodesPerCluster; n++ {
			ns = append(ns, nodeDesc(spec, c, n))
		}
	}
	return cs, ns
}
