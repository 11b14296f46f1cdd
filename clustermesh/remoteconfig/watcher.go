package remoteconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Errors returned by New and Run.
var (
	// ErrNotDirectory: the config path exists but is not a directory.
	ErrNotDirectory = errors.New("remoteconfig: not a directory")
	// ErrRunning: Run was called a second time on the same Watcher.
	ErrRunning = errors.New("remoteconfig: watcher already ran")
)

// Defaults of Options.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultMaxDelay = time.Second
	DefaultRescan   = time.Minute
)

// Log keys.
const (
	logKeyCluster = "cluster"
	logKeyDir     = "dir"
	logKeyEvent   = "event"
	logKeyError   = "error"
	logKeyPath    = "path"
)

// Handler receives the lifecycle of the cluster files in a directory.
//
// Calls come one at a time, in order, from the goroutine running
// Watcher.Run, with Run's ctx; a Handler must not block for long (hand the
// connection work to another goroutine). Per cluster name the calls follow
//
//	(absent) --Add--> valid --Update--> valid --Remove--> (absent)
//	valid --Invalid--> invalid-but-last-good-kept --Update--> valid
//	(absent) --Invalid--> invalid-never-valid --Add--> valid
//	any state --Remove--> (absent)
type Handler interface {
	// Add reports a cluster file seen valid for the first time: connect.
	Add(ctx context.Context, rc RemoteCluster)
	// Update reports a new valid config for a cluster that had one: its
	// file or a TLS file it references changed. Reconnect. After Invalid,
	// the next valid config always comes as Update, even when its Hash
	// equals the last good one, so a status can be cleared.
	Update(ctx context.Context, rc RemoteCluster)
	// Invalid reports that a cluster file is invalid; err names the file
	// and field. A cluster that had a valid config keeps it: Invalid is
	// never followed by Remove unless the file itself is deleted, so a bad
	// edit does not disconnect a working cluster. The same error is not
	// reported twice in a row.
	Invalid(ctx context.Context, name string, err error)
	// Remove reports that a cluster file is gone: disconnect. It follows
	// every name earlier given to Add or Invalid (a name only ever seen
	// invalid has no connection to tear down; clear its status).
	Remove(ctx context.Context, name string)
}

// Options tunes a Watcher. Zero values take the defaults.
type Options struct {
	// Debounce is the quiet period after a file system event before the
	// directory is rescanned; default 100 ms.
	Debounce time.Duration
	// MaxDelay bounds how long a continuous stream of events can hold
	// off a rescan; default 1 s.
	MaxDelay time.Duration
	// Rescan is the period of the fallback full rescan that catches
	// changes fsnotify did not report; default 1 min, negative disables.
	Rescan time.Duration
}

func (o Options) withDefaults() Options {
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.MaxDelay < o.Debounce {
		o.MaxDelay = o.Debounce
	}
	if o.Rescan == 0 {
		o.Rescan = DefaultRescan
	}
	return o
}

// Watcher follows a config directory and reports each cluster file's
// lifecycle to a Handler. Build it with New, run it once with Run.
type Watcher struct {
	log    *slog.Logger
	dir    string
	h      Handler
	opts   Options
	synced chan struct{}
	ran    atomic.Bool

	// Owned by Run's goroutine.
	clusters map[string]*tracked
	// dirInfo identifies the directory inode being watched, to notice a
	// directory replaced behind fsnotify's back (e.g. a swapped symlink).
	dirInfo os.FileInfo
	// afterScan, when set by tests, is called after every scan.
	afterScan func()
}

// tracked is what the Watcher last told the Handler about one name.
type tracked struct {
	good    RemoteCluster // last config given to Add or Update
	hasGood bool
	invalid string // text of the last Invalid error; "" when valid
}

// New returns a Watcher of dir. dir must exist and be a directory when
// New is called (in Kubernetes it is a volume mount that exists before the
// container starts): a missing dir gives an error wrapping fs.ErrNotExist,
// a file ErrNotDirectory. If dir disappears later, Run keeps the last
// state, logs, and picks the directory up again on a rescan.
func New(log *slog.Logger, dir string, h Handler, opts Options) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("remoteconfig: config directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s", ErrNotDirectory, dir)
	}
	return &Watcher{
		log:      log.With(logKeyDir, dir),
		dir:      dir,
		h:        h,
		opts:     opts.withDefaults(),
		synced:   make(chan struct{}),
		clusters: map[string]*tracked{},
	}, nil
}

// Synced is closed once Run's initial scan has reported every file that
// existed at start (its Handler calls have returned). It stays open if Run
// fails before.
func (w *Watcher) Synced() <-chan struct{} { return w.synced }

// Run watches the directory until ctx ends, then returns nil. It first
// scans the directory and reports every existing file, then rescans after
// every burst of file system events (debounced) and every Options.Rescan.
// Each scan compares the whole directory with what the Handler was last
// told, so no final state is lost however events are merged. Besides the
// directory, Run watches the directories of the TLS files the cluster
// files reference, so a replaced certificate triggers an Update.
//
// Errors: ErrRunning on a second call; an error naming dir when the
// fsnotify watch cannot be set up or its channels close unexpectedly.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.ran.CompareAndSwap(false, true) {
		return ErrRunning
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("remoteconfig: create fsnotify watcher: %w", err)
	}
	defer fsw.Close()
	if err := w.watchDir(fsw); err != nil {
		return fmt.Errorf("remoteconfig: watch %s: %w", w.dir, err)
	}
	w.log.Debug("watching config directory")

	w.scan(ctx, fsw)
	close(w.synced)

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var (
		pending      bool
		pendingSince time.Time
	)
	schedule := func() {
		now := time.Now()
		if !pending {
			pending, pendingSince = true, now
		}
		d := min(w.opts.Debounce, pendingSince.Add(w.opts.MaxDelay).Sub(now))
		debounce.Reset(max(d, 0))
	}
	var rescan <-chan time.Time
	if w.opts.Rescan > 0 {
		t := time.NewTicker(w.opts.Rescan)
		defer t.Stop()
		rescan = t.C
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fsw.Events:
			if !ok {
				return fmt.Errorf("remoteconfig: watch %s: event channel closed", w.dir)
			}
			w.log.Debug("file system event", logKeyEvent, ev.String())
			schedule()
		case err, ok := <-fsw.Errors:
			if !ok {
				return fmt.Errorf("remoteconfig: watch %s: error channel closed", w.dir)
			}
			// An overflow means lost events: rescan to catch up.
			w.log.Warn("fsnotify error, rescanning", logKeyError, err)
			schedule()
		case <-debounce.C:
			pending = false
			w.scan(ctx, fsw)
		case <-rescan:
			w.scan(ctx, fsw)
		}
	}
}

// scan reads the whole directory, tells the Handler what changed and
// updates the set of watched directories. Watches are set up before the
// reads they cover: when a scan adds a watch, it scans once more so that
// a change made between its read and the new watch is not missed.
func (w *Watcher) scan(ctx context.Context, fsw *fsnotify.Watcher) {
	if w.afterScan != nil {
		defer w.afterScan()
	}
	if err := w.watchDir(fsw); err != nil {
		w.log.Warn("cannot watch config directory, relying on rescans", logKeyError, err)
	}
	for range 2 {
		results, err := scanDir(w.dir)
		if err != nil {
			// Keep every cluster: a directory that cannot be listed is
			// more likely a transient problem than a wish to disconnect
			// them all.
			w.log.Warn("cannot list config directory, keeping last state", logKeyError, err)
			return
		}
		w.applyAll(ctx, results)
		if ctx.Err() != nil || !w.syncWatches(fsw, results) {
			return
		}
	}
}

// applyAll reports every result and every tracked name now gone.
func (w *Watcher) applyAll(ctx context.Context, results []result) {
	seen := make(map[string]bool, len(results))
	for _, r := range results {
		if ctx.Err() != nil {
			return
		}
		seen[r.name] = true
		w.apply(ctx, r)
	}
	var gone []string
	for name := range w.clusters {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		if ctx.Err() != nil {
			return
		}
		delete(w.clusters, name)
		w.log.Info("remote cluster config removed", logKeyCluster, name)
		w.h.Remove(ctx, name)
	}
}

// apply compares one file's result with what the Handler knows.
func (w *Watcher) apply(ctx context.Context, r result) {
	t := w.clusters[r.name]
	log := w.log.With(logKeyCluster, r.name)
	if r.err != nil {
		if t == nil && errors.Is(r.err, ErrNotClusterFile) {
			return // a certificate, key or other file sharing the directory
		}
		if t == nil {
			t = &tracked{}
			w.clusters[r.name] = t
		}
		msg := r.err.Error()
		if t.invalid == msg {
			return
		}
		t.invalid = msg
		if t.hasGood {
			log.Warn("remote cluster config invalid, keeping the last good one", logKeyError, r.err)
		} else {
			log.Warn("remote cluster config invalid", logKeyError, r.err)
		}
		w.h.Invalid(ctx, r.name, r.err)
		return
	}
	switch {
	case t == nil || !t.hasGood:
		w.clusters[r.name] = &tracked{good: r.rc, hasGood: true}
		log.Info("remote cluster config added")
		w.h.Add(ctx, r.rc)
	case t.good.Hash != r.rc.Hash || t.invalid != "":
		t.good, t.invalid = r.rc, ""
		log.Info("remote cluster config updated")
		w.h.Update(ctx, r.rc)
	}
}

// watchDir (re)establishes the watch on the config directory when it is
// missing from fsw or the directory was replaced.
func (w *Watcher) watchDir(fsw *fsnotify.Watcher) error {
	fi, err := os.Stat(w.dir)
	if err != nil {
		return err
	}
	watched := slices.Contains(fsw.WatchList(), w.dir)
	if watched && w.dirInfo != nil && os.SameFile(fi, w.dirInfo) {
		return nil
	}
	if watched {
		_ = fsw.Remove(w.dir) // the old inode; it may already be gone
	}
	if err := fsw.Add(w.dir); err != nil {
		return err
	}
	w.dirInfo = fi
	return nil
}

// syncWatches watches the directories of every referenced TLS file and
// drops watches no longer needed. A directory that cannot be watched
// (e.g. it does not exist yet) is left to the periodic rescan. It reports
// whether a watch was added.
func (w *Watcher) syncWatches(fsw *fsnotify.Watcher, results []result) bool {
	want := map[string]bool{w.dir: true}
	for _, r := range results {
		for _, p := range r.tlsPaths {
			want[filepath.Dir(p)] = true
		}
	}
	have := map[string]bool{}
	for _, p := range fsw.WatchList() {
		have[p] = true
		if !want[p] {
			if err := fsw.Remove(p); err != nil {
				w.log.Debug("unwatch directory", logKeyPath, p, logKeyError, err)
			}
		}
	}
	added := false
	for p := range want {
		if have[p] || p == w.dir {
			continue
		}
		if err := fsw.Add(p); err != nil {
			w.log.Debug("cannot watch directory, relying on rescans", logKeyPath, p, logKeyError, err)
			continue
		}
		added = true
	}
	return added
}
