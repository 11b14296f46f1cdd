package kvstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventUpsert: Key was created or changed to Value.
	EventUpsert EventKind = iota
	// EventDelete: Key was deleted (or vanished while the watch was down).
	EventDelete
	// EventListDone: every key that existed at Revision has been reported;
	// sent once per watch, after the initial list.
	EventListDone
)

func (k EventKind) String() string {
	switch k {
	case EventUpsert:
		return "upsert"
	case EventDelete:
		return "delete"
	case EventListDone:
		return "list-done"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one change of a watched prefix. Value is nil for deletes and
// EventListDone; the consumer owns it. Revision is the etcd revision of the
// change: the key's mod revision for upserts, the revision of the delete
// (or of the re-list that found the key gone) for deletes, the list
// revision for EventListDone.
type Event struct {
	Kind     EventKind
	Key      string
	Value    []byte
	Revision int64
}

// Snapshot is what a consumer knows of a prefix: every key it holds with
// the key's mod revision (the Revision of its last upsert event), and the
// highest Revision it has seen. Cache.Snapshot builds one.
type Snapshot struct {
	Revision int64
	Keys     map[string]int64
}

// WatchOptions change how Watch starts.
type WatchOptions struct {
	// Resume continues a consumer's earlier view instead of listing from
	// scratch: the watch starts after Resume.Revision, EventListDone is sent
	// at once, and if that revision was compacted the prefix is re-listed
	// and only the differences to Resume.Keys are sent.
	Resume *Snapshot
}

// listPageSize is the number of keys fetched per list request.
const listPageSize = 5000

// eventBuffer is the capacity of the channel returned by Watch.
const eventBuffer = 256

// ListAndWatch lists every key under prefix, sends EventListDone, then sends
// every change. See Watch.
func (c *Client) ListAndWatch(ctx context.Context, prefix string) <-chan Event {
	return c.Watch(ctx, prefix, WatchOptions{})
}

// Watch reports the keys under prefix and their changes until ctx ends or
// the client is closed, then closes the channel. It never gives up: a failed list or watch is
// retried with capped backoff; a broken watch (etcd restart, lost leader)
// resumes from the last revision seen; a watch whose revision was
// compacted re-lists the prefix. After a re-list only the real differences
// are sent: upserts for keys that are new or changed, deletes for keys that
// vanished, nothing for unchanged keys. So a consumer that applies the
// events in order converges on etcd's content.
//
// The consumer must keep reading; a slow consumer slows this watch only.
func (c *Client) Watch(ctx context.Context, prefix string, opts WatchOptions) <-chan Event {
	out := make(chan Event, eventBuffer)
	w := &watcher{
		c:      c,
		log:    c.log.With(logPrefix, prefix),
		prefix: prefix,
		out:    out,
		known:  make(map[string]int64),
	}
	if opts.Resume != nil {
		w.known = maps.Clone(opts.Resume.Keys)
		if w.known == nil {
			w.known = make(map[string]int64)
		}
		w.rev = opts.Resume.Revision
	}
	go w.run(ctx, opts.Resume != nil)
	return out
}

// watcher is the state of one Watch call, owned by its goroutine.
type watcher struct {
	c      *Client
	log    *slog.Logger
	prefix string
	out    chan<- Event
	// known maps every key the consumer holds to its mod revision.
	known map[string]int64
	// rev is the revision up to which the consumer has been told
	// everything.
	rev int64
}

func (w *watcher) run(ctx context.Context, resumed bool) {
	defer close(w.out)
	// Closing the client ends the watch too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(w.c.ctx, cancel)
	defer stop()
	bo := w.c.newBackoff()
	needList := !resumed
	if resumed && !w.send(ctx, Event{Kind: EventListDone, Revision: w.rev}) {
		return
	}
	listed := resumed
	for ctx.Err() == nil {
		if needList {
			if err := w.list(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				d := bo.next()
				w.log.Warn("List failed, retrying", logBackoff, d, logError, err)
				sleep(ctx, d)
				continue
			}
			needList = false
			if !listed {
				listed = true
				if !w.send(ctx, Event{Kind: EventListDone, Revision: w.rev}) {
					return
				}
			}
		}
		err := w.watch(ctx, bo)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, rpctypes.ErrCompacted) {
			w.log.Info("Watch revision compacted, re-listing", logRevision, w.rev)
			needList = true
			continue
		}
		d := bo.next()
		w.log.Warn("Watch failed, resuming", logRevision, w.rev, logBackoff, d, logError, err)
		sleep(ctx, d)
	}
}

func (w *watcher) send(ctx context.Context, ev Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// list reads the whole prefix at one revision, page by page, and sends the
// differences to known. A page may fail after earlier pages were sent; the
// next list sends only what is still different.
func (w *watcher) list(ctx context.Context) error {
	end := clientv3.GetPrefixRangeEnd(w.prefix)
	var seen map[string]struct{}
	if len(w.known) > 0 {
		seen = make(map[string]struct{}, len(w.known))
	}
	from := w.prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := w.c.cli.Get(ctx, from, opts...)
		if err != nil {
			return fmt.Errorf("list %s at revision %d: %w", w.prefix, rev, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			key := string(kv.Key)
			if seen != nil {
				seen[key] = struct{}{}
			}
			if old, ok := w.known[key]; ok && old == kv.ModRevision {
				continue
			}
			w.known[key] = kv.ModRevision
			if !w.send(ctx, Event{Kind: EventUpsert, Key: key, Value: kv.Value, Revision: kv.ModRevision}) {
				return ctx.Err()
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if seen != nil {
		for key := range w.known {
			if _, ok := seen[key]; ok {
				continue
			}
			delete(w.known, key)
			if !w.send(ctx, Event{Kind: EventDelete, Key: key, Revision: rev}) {
				return ctx.Err()
			}
		}
	}
	w.rev = rev
	w.log.Debug("Listed prefix", logRevision, rev, logCount, len(w.known))
	return nil
}

// errWatchClosed means the etcd watch channel closed without an error.
var errWatchClosed = errors.New("watch channel closed")

// watch follows the prefix from w.rev+1 until the watch fails. It returns
// rpctypes.ErrCompacted when w.rev+1 is no longer available.
func (w *watcher) watch(ctx context.Context, bo *backoff) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := w.c.cli.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
	for resp := range ch {
		if resp.CompactRevision != 0 {
			return rpctypes.ErrCompacted
		}
		if err := resp.Err(); err != nil {
			return err
		}
		bo.reset()
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			switch ev.Type {
			case mvccpb.PUT:
				if old, ok := w.known[key]; ok && old == ev.Kv.ModRevision {
					continue
				}
				w.known[key] = ev.Kv.ModRevision
				if !w.send(ctx, Event{Kind: EventUpsert, Key: key, Value: ev.Kv.Value, Revision: ev.Kv.ModRevision}) {
					return ctx.Err()
				}
			case mvccpb.DELETE:
				if _, ok := w.known[key]; !ok {
					continue
				}
				delete(w.known, key)
				if !w.send(ctx, Event{Kind: EventDelete, Key: key, Revision: ev.Kv.ModRevision}) {
					return ctx.Err()
				}
			}
		}
		// Advance only to the last event delivered: a response's header
		// revision may run ahead of events still to come in later
		// responses of a catching-up watch.
		if n := len(resp.Events); n > 0 && resp.Events[n-1].Kv.ModRevision > w.rev {
			w.rev = resp.Events[n-1].Kv.ModRevision
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errWatchClosed
}
