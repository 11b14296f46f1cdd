package remoteconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Snapshot is the state of a config directory at one moment.
type Snapshot struct {
	// Clusters holds every valid cluster file by cluster name.
	Clusters map[string]RemoteCluster
	// Invalid holds, by file name, the error of every file that looks
	// like a cluster file but failed Load. Files that are not cluster
	// files (ErrNotClusterFile) are in neither map.
	Invalid map[string]error
}

// Scan loads every cluster file in dir once, for tools that need no
// updates. The error is non-nil only when dir cannot be listed.
func Scan(dir string) (Snapshot, error) {
	results, err := scanDir(dir)
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Clusters: map[string]RemoteCluster{}, Invalid: map[string]error{}}
	for _, r := range results {
		switch {
		case r.err == nil:
			s.Clusters[r.name] = r.rc
		case !errors.Is(r.err, ErrNotClusterFile):
			s.Invalid[r.name] = r.err
		}
	}
	return s, nil
}

// result is the outcome of loading one directory entry.
type result struct {
	name string
	rc   RemoteCluster
	err  error
	// tlsPaths are the resolved TLS paths the file references, known even
	// when loading failed after parsing, so their directories get watched.
	tlsPaths []string
}

// scanDir loads every candidate entry of dir, sorted by name. Skipped:
// names starting with "." (dotfiles and Kubernetes' "..data" and
// "..<timestamp>" projection entries), directories (also through
// symlinks) and entries that vanish or dangle while scanning.
func scanDir(dir string) ([]result, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []result
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err == nil && fi.IsDir():
			continue
		}
		rc, paths, err := load(dir, name)
		if errors.Is(err, errVanished) {
			continue
		}
		out = append(out, result{name: name, rc: rc, err: err, tlsPaths: paths})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}
