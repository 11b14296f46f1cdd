package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"
)

// Log keys of this package.
const (
	logCluster = "cluster"
	logRemote  = "remote"
	logError   = "error"
)

// Options of Connect and Disconnect.
type Options struct {
	// Mode is bidirectional when empty.
	Mode Mode
	// AllowMismatchingCA writes both CAs (the remote's and the local
	// one's) into the trust bundle for each remote; see doc.go.
	AllowMismatchingCA bool
	// DialTimeout bounds probing one apiserver; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
}

// Result says what Connect or Disconnect did.
type Result struct {
	// Changed are the directions written (Connect) or removed (Disconnect).
	Changed []Pair
	// Unchanged are the directions left as they were: already connected
	// with byte-identical files (Connect), or not connected (Disconnect).
	Unchanged []Pair
	// Files are the paths written or removed, in order.
	Files []string
}

// Connect joins the clusters of cs as opts.Mode says. It validates
// everything before it changes anything:
//
//  1. the contexts (unique names, unique IDs within every peer's max, the
//     same max-connected-clusters) and every directory it will write to;
//  2. each cluster's certDir (ca.crt, remote.crt/key) and the server
//     certificate its apiserver presents against the trust bundle each
//     peer will write for it (ErrCAMismatch);
//  3. each apiserver, dialled as admin: its cilium/cluster-config/<name>
//     must match the context (name, ID, max), and the pod CIDRs of its
//     nodes must not overlap another cluster's;
//  4. the files already in each clustermeshConfigDir: a pair whose files
//     are byte-identical to the wanted ones is left alone (Unchanged),
//     any other existing file is ErrAlreadyConnected.
//
// Then it writes, per direction, the CA bundle, the client certificate and
// key, and last the cluster file, each atomically. If a write fails, every
// file written so far is restored (ErrApply). It never touches etcd.
func Connect(ctx context.Context, log *slog.Logger, cs []*Context, opts Options) (*Result, error) {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Cluster
	}
	if err := validateContexts(cs); err != nil {
		return nil, err
	}
	pairs, err := Pairs(names, opts.Mode)
	if err != nil {
		return nil, err
	}
	if err := checkDirs(cs, pairs); err != nil {
		return nil, err
	}
	timeout := opts.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	infos := make([]*Info, len(cs))
	byName := map[string]*Info{}
	for i, c := range cs {
		m, err := loadMaterial(c)
		if err != nil {
			return nil, err
		}
		served, err := fetchServed(ctx, c, timeout)
		if err != nil {
			return nil, err
		}
		infos[i] = &Info{Context: c, Material: m, Served: served}
		byName[c.Cluster] = infos[i]
	}
	bundles := map[Pair][]byte{}
	for _, p := range pairs {
		b, err := trust(byName[p.Local], byName[p.Remote], opts.AllowMismatchingCA)
		if err != nil {
			return nil, err
		}
		bundles[p] = b
	}
	for _, in := range infos {
		if err := readInfo(ctx, log, in, infos, timeout); err != nil {
			return nil, err
		}
	}
	if err := validateCIDRs(infos); err != nil {
		return nil, err
	}
	if err := validatePeers(byName, pairs); err != nil {
		return nil, err
	}
	res := &Result{}
	var ops []FileOp
	for _, p := range pairs {
		pops := pairFiles(byName[p.Local], byName[p.Remote], bundles[p])
		absent, same, conflict, err := existing(pops)
		if err != nil {
			return nil, fmt.Errorf("%w: cluster %q: %w", ErrContext, p.Local, err)
		}
		switch {
		case same:
			res.Unchanged = append(res.Unchanged, p)
			continue
		case !absent:
			return nil, fmt.Errorf("%w: cluster %q is already connected to cluster %q with other settings (%s differs): run \"straitctl disconnect\" for the pair first",
				ErrAlreadyConnected, p.Local, p.Remote, conflict)
		}
		res.Changed = append(res.Changed, p)
		ops = append(ops, pops...)
	}
	if err := apply(ops); err != nil {
		return nil, err
	}
	for _, op := range ops {
		res.Files = append(res.Files, op.Path)
	}
	for _, p := range res.Changed {
		log.Info("Connected", logCluster, p.Local, logRemote, p.Remote)
	}
	return res, nil
}

// readInfo dials in's apiserver as admin and fills Config and PodCIDRs.
// The admin connection trusts the cluster's own CA, or, when its server
// certificate was issued by another listed cluster's CA (allowed only with
// AllowMismatchingCA, checked before), a temporary bundle of all of them.
func readInfo(ctx context.Context, log *slog.Logger, in *Info, all []*Info, timeout time.Duration) error {
	caFile := in.Context.Files().CACert
	if verifyServed(in.Served, in.Material.CA) != nil {
		var pems [][]byte
		for _, o := range all {
			pems = append(pems, o.Material.CAPEM)
		}
		tmp, err := os.CreateTemp("", "straitctl-ca-*.crt")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.Write(bundle(pems...)); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		caFile = tmp.Name()
	}
	cc, cidrs, peers, err := readCluster(ctx, log, in.Context, caFile, timeout)
	if err != nil {
		return err
	}
	in.Config, in.PodCIDRs, in.Peers = cc, cidrs, peers
	return nil
}

// checkDirs requires every clustermeshConfigDir that gets files to be an
// existing directory, so a typo fails before anything is written.
func checkDirs(cs []*Context, pairs []Pair) error {
	need := map[string]bool{}
	for _, p := range pairs {
		need[p.Local] = true
	}
	for _, c := range cs {
		if !need[c.Cluster] {
			continue
		}
		fi, err := os.Stat(c.ClustermeshConfigDir)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s: not a directory", c.ClustermeshConfigDir)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: field %q: %w: create it, or point it at the directory the cluster's strait-apiserver watches (--clustermesh-config)",
				ErrContext, c.Name(), FieldClustermeshConfigDir, err)
		}
	}
	return nil
}

// Disconnect undoes Connect for the clusters of cs in opts.Mode: it
// removes, per direction, exactly the four files Connect writes (cluster
// file first) and nothing else. Directions without files are Unchanged.
// It needs only the context files, not the apiservers, so a dead cluster
// can be disconnected. A failed removal restores every file removed so
// far (ErrApply).
func Disconnect(ctx context.Context, log *slog.Logger, cs []*Context, opts Options) (*Result, error) {
	names := make([]string, len(cs))
	byName := map[string]*Context{}
	for i, c := range cs {
		names[i] = c.Cluster
		if byName[c.Cluster] != nil {
			return nil, fmt.Errorf("%w: %s and %s both name cluster %q: every cluster of a mesh needs its own name; fix %q in one of them",
				ErrNameClash, byName[c.Cluster].Name(), c.Name(), c.Cluster, FieldCluster)
		}
		byName[c.Cluster] = c
	}
	pairs, err := Pairs(names, opts.Mode)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	var ops []FileOp
	for _, p := range pairs {
		pops := removeFiles(byName[p.Local].ClustermeshConfigDir, p.Remote)
		found := false
		for _, op := range pops {
			if _, err := os.Lstat(op.Path); err == nil {
				found = true
				ops = append(ops, op)
			} else if !os.IsNotExist(err) && !isNotDir(err) {
				return nil, fmt.Errorf("%w: cluster %q: %w", ErrContext, p.Local, err)
			}
		}
		if found {
			res.Changed = append(res.Changed, p)
		} else {
			res.Unchanged = append(res.Unchanged, p)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := apply(ops); err != nil {
		return nil, err
	}
	for _, op := range ops {
		res.Files = append(res.Files, op.Path)
	}
	for _, p := range res.Changed {
		log.Info("Disconnected", logCluster, p.Local, logRemote, p.Remote)
	}
	return res, nil
}

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
