package ipsec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Log    *slog.Logger
	Kernel Kernel
	// KeyFile is the key file path (a Kubernetes secret volume works: its
	// ..data symlink swap is seen).
	KeyFile string
	// RotationDelay is how long a replaced key stays live; default
	// DefaultRotationDelay. It must exceed the time an advertisement needs
	// to reach every peer.
	RotationDelay time.Duration
	// BlockCIDRs: see Input.BlockCIDRs.
	BlockCIDRs []netip.Prefix
	// Advertise publishes the node's key index (schema.Node.EncryptionKey).
	// Called only after the IN states of that index exist for every peer.
	Advertise func(ctx context.Context, spi uint8) error
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Resume is the key index this node advertised before the agent
	// restarted within the same boot (the kernel still holds its states);
	// when it is a live key of the file it counts as advertised from the
	// start, so the node never publishes 0 ("no key") in between. 0: none.
	Resume uint8
}

// Manager runs IPsec on one node: it holds the running keys, watches the key
// file, computes DesiredState from the nodes it is given, reconciles the
// kernel, and advertises the current key index once it is safe to. See the
// package documentation for the rotation protocol.
type Manager struct {
	cfg  ManagerConfig
	rec  *Reconciler
	kick chan struct{}

	mu         sync.Mutex
	keys       *KeySet
	lastFile   []byte
	local      NodeRef
	remotes    []NodeRef
	haveNodes  bool
	advertised uint8
	last       Desired
}

// NewManager reads and parses cfg.KeyFile (a bad file is an error naming the
// line: the agent refuses to start) and returns a Manager that has not
// touched the kernel yet.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.RotationDelay <= 0 {
		cfg.RotationDelay = DefaultRotationDelay
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Advertise == nil {
		cfg.Advertise = func(context.Context, uint8) error { return nil }
	}
	data, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("ipsec key file: %w", err)
	}
	file, err := ParseKeyFile(bytes.NewReader(data), cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	ks, err := NewKeySet(file, cfg.RotationDelay, cfg.Now())
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, rec: NewReconciler(cfg.Kernel, cfg.Log), kick: make(chan struct{}, 1), keys: ks, lastFile: data}
	for _, k := range ks.Live() {
		if cfg.Resume != 0 && k.SPI == cfg.Resume {
			m.advertised = cfg.Resume
		}
	}
	return m, nil
}

// Current is the current key index (what the node advertises once synced).
func (m *Manager) Current() uint8 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys.Current()
}

// Advertised is the key index last advertised (0 before the first Sync).
func (m *Manager) Advertised() uint8 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.advertised
}

// LastDesired is the Desired of the last Sync.
func (m *Manager) LastDesired() Desired {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// SetNodes gives the local node and every remote node of the mesh (with
// their advertised EncryptionKey); Run syncs soon after.
func (m *Manager) SetNodes(local NodeRef, remotes []NodeRef) {
	m.mu.Lock()
	m.local, m.remotes, m.haveNodes = local, slices.Clone(remotes), true
	m.mu.Unlock()
	m.trigger()
}

func (m *Manager) trigger() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// ReloadKeys re-reads the key file. An unchanged file does nothing. A file
// that does not parse or breaks the rotation rules is refused with an error
// naming the line (errors.Is ErrKeyFile or ErrRotation); the running keys
// stay. Reports whether the keys changed (Run then syncs).
func (m *Manager) ReloadKeys() (bool, error) {
	data, err := os.ReadFile(m.cfg.KeyFile)
	if err != nil {
		return false, fmt.Errorf("ipsec key file: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if bytes.Equal(data, m.lastFile) {
		return false, nil
	}
	file, err := ParseKeyFile(bytes.NewReader(data), m.cfg.KeyFile)
	if err != nil {
		return false, err
	}
	changed, err := m.keys.Update(file, m.cfg.KeyFile, m.cfg.Now())
	if err != nil {
		return false, err
	}
	m.lastFile = data
	if changed {
		m.cfg.Log.Info("ipsec key rotated", "spi", m.keys.Current())
		m.trigger()
	}
	return changed, nil
}

// Sync retires expired keys, computes the desired state, reconciles the
// kernel and, when that succeeded and the current key index is not yet
// advertised, advertises it. Before SetNodes it does nothing.
func (m *Manager) Sync(ctx context.Context) error {
	m.mu.Lock()
	if !m.haveNodes {
		m.mu.Unlock()
		return nil
	}
	if m.keys.Expire(m.cfg.Now()) {
		m.cfg.Log.Info("ipsec old keys retired", "live", len(m.keys.Live()))
	}
	in := Input{Local: m.local, Remotes: m.remotes, Keys: m.keys.Live(), Current: m.keys.Current(), BlockCIDRs: m.cfg.BlockCIDRs}
	m.mu.Unlock()

	d, err := DesiredState(in)
	if err != nil {
		return fmt.Errorf("ipsec desired state: %w", err)
	}
	for _, s := range d.Skipped {
		m.cfg.Log.Warn("ipsec peer left out", "node", s.Node.String(), "reason", s.Reason)
	}
	if _, err := m.rec.Reconcile(ctx, d); err != nil {
		return fmt.Errorf("ipsec reconcile: %w", err)
	}
	m.mu.Lock()
	m.last = d
	need := m.advertised != in.Current
	m.mu.Unlock()
	if need {
		if err := m.cfg.Advertise(ctx, in.Current); err != nil {
			return fmt.Errorf("ipsec advertise key %d: %w", in.Current, err)
		}
		m.mu.Lock()
		m.advertised = in.Current
		m.mu.Unlock()
		m.cfg.Log.Info("ipsec key advertised", "spi", in.Current)
	}
	return nil
}

// Run watches the key file's directory with fsnotify (a rename or a
// Kubernetes ..data symlink swap both show up there), retires old keys when
// due, and syncs after every change, until ctx ends. Refused key files and
// failed syncs are logged and retried on the next change (syncs also every
// retry interval); Run returns only ctx's error or a watcher setup error.
func (m *Manager) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch ipsec key file: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(m.cfg.KeyFile)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch ipsec key file directory %s: %w", dir, err)
	}
	const retry = 10 * time.Second
	m.trigger()
	timer := time.NewTimer(retry)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("ipsec key file watcher closed")
			}
			m.cfg.Log.Debug("ipsec key file event", "event", ev.String())
			if _, err := m.ReloadKeys(); err != nil {
				m.cfg.Log.Error("ipsec key file refused; running keys stay", "error", err)
			}
			continue
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("ipsec key file watcher closed")
			}
			m.cfg.Log.Error("ipsec key file watcher", "error", err)
			continue
		case <-m.kick:
		case <-timer.C:
			// Periodic: pick up a missed file event and due retirements.
			if _, err := m.ReloadKeys(); err != nil {
				m.cfg.Log.Error("ipsec key file refused; running keys stay", "error", err)
			}
		}
		if err := m.Sync(ctx); err != nil && ctx.Err() == nil {
			m.cfg.Log.Error("ipsec sync", "error", err)
		}
		wait := retry
		m.mu.Lock()
		if at, ok := m.keys.NextExpiry(); ok {
			if d := at.Sub(m.cfg.Now()); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		m.mu.Unlock()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}
