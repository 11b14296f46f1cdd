package identity

import (
	"context"
	"errors"
	"fmt"
)

// CollectGarbage deletes identities of this cluster's range that no node
// references. An identity is deleted only when two collections at least
// GCGrace apart both found it unreferenced with the same mod revision, and
// the delete itself is a transaction that fails if a reference appeared
// meanwhile, so a referenced identity is never deleted. It returns the IDs
// deleted and the errors met (joined); malformed entries are logged and
// skipped.
func (a *Allocator) CollectGarbage(ctx context.Context) ([]NumericIdentity, error) {
	referenced := make(map[NumericIdentity]struct{})
	err := a.be.IdentityList(ctx, a.keys.ValuePrefix(), func(key string, value []byte, _ int64) {
		id, err := ParseIDValue(key, value)
		if err != nil {
			a.log.Error("Skipping invalid identity reference", logKey, key, logError, err)
			return
		}
		referenced[id] = struct{}{}
	})
	if err != nil {
		return nil, fmt.Errorf("list identity references: %w", err)
	}
	type master struct {
		id     NumericIdentity
		labels string
		rev    int64
	}
	var unreferenced []master
	err = a.be.IdentityList(ctx, a.keys.IDPrefix(), func(key string, value []byte, rev int64) {
		id, err := a.keys.ParseIDKey(key)
		if err != nil {
			a.log.Error("Skipping invalid identity key", logKey, key, logError, err)
			return
		}
		if id < a.first || id > a.last {
			return // not ours to collect
		}
		if _, ok := referenced[id]; !ok {
			unreferenced = append(unreferenced, master{id: id, labels: string(value), rev: rev})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}

	a.gcMu.Lock()
	defer a.gcMu.Unlock()
	now := a.opts.Now()
	seen := make(map[NumericIdentity]gcCandidate, len(unreferenced))
	var collected []NumericIdentity
	var errs []error
	for _, m := range unreferenced {
		c, ok := a.gcSeen[m.id]
		if !ok || c.rev != m.rev {
			c = gcCandidate{rev: m.rev, since: now}
		}
		if now.Sub(c.since) < a.opts.GCGrace || !ok {
			seen[m.id] = c
			continue
		}
		deleted, err := a.be.IdentityCollect(ctx, a.keys.IDKey(m.id), m.rev, a.keys.RefPrefix(m.labels), idString(m.id))
		if err != nil {
			errs = append(errs, fmt.Errorf("collect identity %d: %w", uint32(m.id), err))
			seen[m.id] = c
			continue
		}
		if deleted {
			a.log.Info("Collected unused identity", logID, uint32(m.id), logLabels, m.labels)
			collected = append(collected, m.id)
		}
	}
	a.gcSeen = seen
	return collected, errors.Join(errs...)
}

func (a *Allocator) gcLoop(ctx context.Context) {
	for sleepCtx(ctx, a.opts.GCInterval) {
		if _, err := a.CollectGarbage(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("Identity garbage collection failed", logError, err)
		}
	}
}
