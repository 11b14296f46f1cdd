package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Log keys used by this package.
const (
	logKey    = "key"
	logID     = "id"
	logOldID  = "old_id"
	logLabels = "labels"
	logError  = "error"
	logCount  = "count"
)

// Defaults applied by NewAllocator to zero fields of AllocatorOptions.
const (
	DefaultGCGrace     = 5 * time.Minute
	DefaultMaxAttempts = 64
)

var (
	// ErrRangeFull is returned by Allocate when every identity of the
	// cluster's range is taken; the error names the cluster and the range.
	ErrRangeFull = errors.New("identity: identity range full")
	// ErrContention is returned by Allocate when the claim kept losing races
	// for MaxAttempts attempts.
	ErrContention = errors.New("identity: too much contention claiming an identity")
	// ErrNotAllocated is returned by Release for a label set this allocator
	// holds no reference to.
	ErrNotAllocated = errors.New("identity: label set not allocated by this node")
	// ErrAlreadyRunning is returned by a second call of Run.
	ErrAlreadyRunning = errors.New("identity: allocator already running")
)

// AllocatorOptions configure an Allocator.
type AllocatorOptions struct {
	// Node names this agent in value keys (…/value/<labels>/<node>); it must
	// be unique in the cluster, non-empty and free of '/'.
	Node string
	// Cluster is this cluster's ID (0 outside a mesh) and ClusterMax the
	// mesh's max-connected-clusters; together they fix the range.
	Cluster    ClusterID
	ClusterMax ClusterMax
	// Prefix defaults to KVStorePrefix.
	Prefix string
	// GCInterval, when positive, makes Run collect garbage that often.
	GCInterval time.Duration
	// GCGrace is how long an identity must stay unreferenced (seen so by two
	// collections that far apart, unchanged) before it is deleted. Default
	// DefaultGCGrace.
	GCGrace time.Duration
	// Now is the clock for GCGrace; default time.Now.
	Now func() time.Time
	// MaxAttempts bounds the retries of one claim; default DefaultMaxAttempts.
	MaxAttempts int

	// testRange, when non-zero, shrinks the allocation range (tests only).
	testRange [2]NumericIdentity
}

// Allocator hands out cluster-scoped numeric identities for label sets,
// sharing them with every other agent of the cluster through etcd the way
// Cilium's kvstore allocation mode does:
//
//	<prefix>/id/<id>                → labels   no lease, the mapping itself
//	<prefix>/value/<labels>/<node>  → id       session lease, "node uses it"
//
// Invariants, each kept by a single etcd transaction:
//   - an id key is created only if absent, so two label sets never share an ID;
//   - a reference is added only while no reference to the label set names
//     a different ID (IdentityCreate needs none, IdentityJoin needs all to
//     agree), so one label set is in use under one ID at a time;
//   - an id key is deleted only while no reference names it.
//
// Lookups read a local cache of the id keys fed by a watch, never etcd.
// Locally, references are counted per label set; only the first Allocate
// and the last Release of a set touch etcd.
type Allocator struct {
	log   *slog.Logger
	be    Backend
	opts  AllocatorOptions
	keys  Keys
	first NumericIdentity
	last  NumericIdentity

	running atomic.Bool
	cache   *cache

	mu    sync.Mutex // guards local (the map, not the entries)
	local map[string]*localRef

	gcMu   sync.Mutex
	gcSeen map[NumericIdentity]gcCandidate
}

// localRef counts this node's users of one label set.
type localRef struct {
	mu   sync.Mutex
	refs int
	id   NumericIdentity
	dead bool // removed from Allocator.local; take a fresh entry
}

type gcCandidate struct {
	rev   int64
	since time.Time
}

// NewAllocator validates opts and returns an allocator that does nothing
// until Run is started. Errors: ErrInvalidNode, ErrInvalidClusterMax,
// ErrInvalidClusterID.
func NewAllocator(log *slog.Logger, be Backend, opts AllocatorOptions) (*Allocator, error) {
	if err := validateNode(opts.Node); err != nil {
		return nil, err
	}
	first, last, err := opts.ClusterMax.Range(opts.Cluster)
	if err != nil {
		return nil, fmt.Errorf("allocation range of cluster %d: %w", uint32(opts.Cluster), err)
	}
	if r := opts.testRange; r != [2]NumericIdentity{} {
		first, last = r[0], r[1]
	}
	if opts.Prefix == "" {
		opts.Prefix = KVStorePrefix
	}
	if opts.GCGrace <= 0 {
		opts.GCGrace = DefaultGCGrace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	a := &Allocator{
		log:    log.With("node", opts.Node, "cluster", uint32(opts.Cluster)),
		be:     be,
		opts:   opts,
		keys:   Keys{Prefix: opts.Prefix},
		first:  first,
		last:   last,
		local:  make(map[string]*localRef),
		gcSeen: make(map[NumericIdentity]gcCandidate),
	}
	a.cache = newCache(a.log, a.keys, opts.ClusterMax, opts.Cluster)
	return a, nil
}

// Range is the first and last identity this allocator hands out.
func (a *Allocator) Range() (first, last NumericIdentity) { return a.first, a.last }

// Run feeds the cache from a watch of the id keys, re-creates this node's
// references when the session lease is lost, and collects garbage every
// GCInterval if set. It returns when ctx ends (nil), or ErrAlreadyRunning.
func (a *Allocator) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	var wg sync.WaitGroup
	wg.Go(func() { a.be.IdentityWatch(ctx, a.keys.IDPrefix(), a.cache.apply, a.cache.markSynced) })
	wg.Go(func() { a.resyncLoop(ctx) })
	if a.opts.GCInterval > 0 {
		wg.Go(func() { a.gcLoop(ctx) })
	}
	wg.Wait()
	return nil
}

// WaitSynced blocks until the cache holds every identity that existed when
// Run started, or ctx ends (returning ctx.Err()).
func (a *Allocator) WaitSynced(ctx context.Context) error {
	select {
	case <-a.cache.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LookupByID returns the labels of id from the cache (reserved identities
// included) without touching etcd. The result must not be modified.
func (a *Allocator) LookupByID(id NumericIdentity) (Labels, bool) {
	if name, ok := id.ReservedName(); ok && id != IdentityUnknown {
		return Labels{{Source: SourceReserved, Key: name}}, true
	}
	return a.cache.byID(id)
}

// LookupByLabels returns the identity of ls from the cache (reserved
// identities included) without touching etcd.
func (a *Allocator) LookupByLabels(ls Labels) (NumericIdentity, bool) {
	if id, ok := LookupReserved(ls); ok {
		return id, true
	}
	return a.cache.byLabels(ls.KVStoreString())
}

// Allocate returns the identity of ls, claiming one in etcd if no agent of
// the cluster uses ls yet (isNew), and takes a reference on it for this
// node; pair every successful Allocate with a Release. Reserved label sets
// map to their fixed identity without a reference. It waits for the
// initial cache sync (so Run must be running). Errors: ErrNoLabels,
// ErrMalformedLabel, ErrNoSource, ErrDuplicateKey, ErrNotCanonical,
// ErrLabelsTooLarge (all naming the labels), ErrRangeFull (naming cluster
// and range), ErrContention, a malformed or out-of-range ID found in etcd
// (naming the key), or the backend's error.
func (a *Allocator) Allocate(ctx context.Context, ls Labels) (id NumericIdentity, isNew bool, err error) {
	if id, ok := LookupReserved(ls); ok {
		return id, false, nil
	}
	key, err := a.labelsKey(ls)
	if err != nil {
		return 0, false, err
	}
	if err := a.WaitSynced(ctx); err != nil {
		return 0, false, fmt.Errorf("allocate %q: wait for identity cache: %w", abbrev(key), err)
	}
	e := a.lockRef(key)
	defer e.mu.Unlock()
	if e.refs > 0 {
		e.refs++
		return e.id, false, nil
	}
	id, isNew, err = a.claim(ctx, key)
	if err != nil {
		a.dropRef(key, e)
		return 0, false, fmt.Errorf("allocate %q: %w", abbrev(key), err)
	}
	e.id, e.refs = id, 1
	return id, isNew, nil
}

// Release drops one reference of this node to ls. The last one deletes
// the node's value key, after which the identity is garbage once no other
// node uses it (released reports that). Errors: ErrNotAllocated, or the
// backend's error, in which case the reference is kept and Release may be
// retried.
func (a *Allocator) Release(ctx context.Context, ls Labels) (released bool, err error) {
	if _, ok := LookupReserved(ls); ok {
		return false, nil
	}
	key := ls.KVStoreString()
	a.mu.Lock()
	e := a.local[key]
	a.mu.Unlock()
	if e == nil {
		return false, fmt.Errorf("%w: %q", ErrNotAllocated, abbrev(key))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead || e.refs == 0 {
		return false, fmt.Errorf("%w: %q", ErrNotAllocated, abbrev(key))
	}
	if e.refs > 1 {
		e.refs--
		return false, nil
	}
	if err := a.be.IdentityRelease(ctx, a.keys.RefKey(key, a.opts.Node)); err != nil {
		return false, fmt.Errorf("release %q: %w", abbrev(key), err)
	}
	e.refs = 0
	a.dropRef(key, e)
	return true, nil
}

// labelsKey validates ls and returns its kvstore form.
func (a *Allocator) labelsKey(ls Labels) (string, error) {
	if len(ls) == 0 {
		return "", ErrNoLabels
	}
	key := ls.KVStoreString()
	if len(key) > MaxLabelsBytes {
		return "", fmt.Errorf("%w: %q is %d bytes, limit %d", ErrLabelsTooLarge, abbrev(key), len(key), MaxLabelsBytes)
	}
	for i, l := range ls {
		if err := l.Validate(); err != nil {
			return "", err
		}
		if i > 0 && ls[i-1].Key >= l.Key {
			return "", fmt.Errorf("%w: %q (build label sets with NewLabels)", ErrNotCanonical, abbrev(key))
		}
	}
	return key, nil
}

// lockRef returns the live local entry of key, locked.
func (a *Allocator) lockRef(key string) *localRef {
	for {
		a.mu.Lock()
		e := a.local[key]
		if e == nil {
			e = &localRef{}
			a.local[key] = e
		}
		a.mu.Unlock()
		e.mu.Lock()
		if !e.dead {
			return e
		}
		e.mu.Unlock()
	}
}

// dropRef retires e (whose mu is held) from the local map.
func (a *Allocator) dropRef(key string, e *localRef) {
	e.dead = true
	a.mu.Lock()
	if a.local[key] == e {
		delete(a.local, key)
	}
	a.mu.Unlock()
}

func idString(id NumericIdentity) string { return strconv.FormatUint(uint64(id), 10) }

// claim finds or creates the identity of the label set key and adds this
// node's reference, retrying lost races.
func (a *Allocator) claim(ctx context.Context, key string) (NumericIdentity, bool, error) {
	refPrefix := a.keys.RefPrefix(key)
	refKey := a.keys.RefKey(key, a.opts.Node)
	tried := make(map[NumericIdentity]struct{})
	for attempt := 0; attempt < a.opts.MaxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, false, err
		}
		// Known to the cache: join it, unless the references disagree.
		if id, ok := a.cache.byLabels(key); ok {
			if _, done := tried[id]; !done {
				joined, err := a.be.IdentityJoin(ctx, a.keys.IDKey(id), key, refPrefix, refKey, idString(id))
				if err != nil {
					return 0, false, err
				}
				if joined {
					return id, false, nil
				}
				tried[id] = struct{}{}
			}
		}
		id, err := a.pickFree(tried)
		if err != nil {
			return 0, false, err
		}
		created, otherKey, otherValue, err := a.be.IdentityCreate(ctx, a.keys.IDKey(id), key, refPrefix, refKey, idString(id))
		if err != nil {
			return 0, false, err
		}
		if created {
			a.log.Debug("Created identity", logID, uint32(id), logLabels, key)
			return id, true, nil
		}
		if otherKey == "" {
			tried[id] = struct{}{} // taken by another label set
			continue
		}
		// Another node uses the label set already: join its identity.
		other, err := ParseIDValue(otherKey, otherValue)
		if err != nil {
			return 0, false, err
		}
		if err := a.opts.ClusterMax.validateIn(a.opts.Cluster, other); err != nil {
			return 0, false, fmt.Errorf("reference %q: %w", abbrev(otherKey), err)
		}
		joined, err := a.be.IdentityJoin(ctx, a.keys.IDKey(other), key, refPrefix, refKey, idString(other))
		if err != nil {
			return 0, false, err
		}
		if joined {
			return other, false, nil
		}
	}
	return 0, false, fmt.Errorf("%w: gave up after %d attempts", ErrContention, a.opts.MaxAttempts)
}

// pickFree returns a random identity of the range that is neither in the
// cache nor in tried.
func (a *Allocator) pickFree(tried map[NumericIdentity]struct{}) (NumericIdentity, error) {
	size := uint32(a.last - a.first + 1)
	a.cache.mu.RLock()
	defer a.cache.mu.RUnlock()
	free := func(id NumericIdentity) bool {
		if _, ok := a.cache.ids[id]; ok {
			return false
		}
		_, ok := tried[id]
		return !ok
	}
	for range 32 {
		if id := a.first + NumericIdentity(rand.Uint32N(size)); free(id) {
			return id, nil
		}
	}
	start := rand.Uint32N(size)
	for i := range size {
		if id := a.first + NumericIdentity((start+i)%size); free(id) {
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: cluster %d range [%d, %d] holds %d identities, none free", ErrRangeFull,
		uint32(a.opts.Cluster), uint32(a.first), uint32(a.last), size)
}

// resyncLoop re-creates this node's references whenever the session lease
// is lost (etcd unreachable for longer than the TTL).
func (a *Allocator) resyncLoop(ctx context.Context) {
	delay := 100 * time.Millisecond
	for {
		lost, err := a.be.IdentityLeaseLost(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Error("Cannot watch the session lease", logError, err)
			if !sleepCtx(ctx, delay) {
				return
			}
			delay = min(2*delay, 30*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		select {
		case <-ctx.Done():
			return
		case <-lost:
		}
		a.resync(ctx)
	}
}

// resync re-adds the reference of every locally used label set. When the
// identity was collected meanwhile (its old references expired), the label
// set is claimed again and may get a new ID, which is logged.
func (a *Allocator) resync(ctx context.Context) {
	a.mu.Lock()
	entries := make(map[string]*localRef, len(a.local))
	for k, e := range a.local {
		entries[k] = e
	}
	a.mu.Unlock()
	n := 0
	for key, e := range entries {
		e.mu.Lock()
		if !e.dead && e.refs > 0 {
			joined, err := a.be.IdentityJoin(ctx, a.keys.IDKey(e.id), key, a.keys.RefPrefix(key), a.keys.RefKey(key, a.opts.Node), idString(e.id))
			switch {
			case err != nil:
				a.log.Error("Cannot restore identity reference", logLabels, key, logID, uint32(e.id), logError, err)
			case joined:
				n++
			default:
				id, _, err := a.claim(ctx, key)
				if err != nil {
					a.log.Error("Cannot restore identity reference", logLabels, key, logID, uint32(e.id), logError, err)
				} else {
					a.log.Warn("Identity changed after lease loss", logLabels, key, logOldID, uint32(e.id), logID, uint32(id))
					e.id = id
					n++
				}
			}
		}
		e.mu.Unlock()
	}
	a.log.Info("Restored identity references after lease loss", logCount, n)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
