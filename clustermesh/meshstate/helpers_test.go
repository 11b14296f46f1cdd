package meshstate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/internal/etcdtest"
)

func newClient(tb testing.TB, srv *etcdtest.Server) *kvstore.Client {
	return newClientTTL(tb, srv, 0)
}

// newClientTTL connects with a session lease of ttl (0: the default);
// a short TTL makes the keep-alive notice a revoked lease quickly.
func newClientTTL(tb testing.TB, srv *etcdtest.Server, ttl time.Duration) *kvstore.Client {
	tb.Helper()
	c, err := kvstore.New(testkit.Context(tb, 2*time.Minute), testkit.Logger(tb), kvstore.Config{Endpoints: srv.Endpoints(), LeaseTTL: ttl, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		tb.Fatalf("kvstore.New: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// recorder collects events of one kind; its callback never blocks.
type recorder[K comparable, V any] struct {
	mu     sync.Mutex
	events []Event[K, V]
	notify chan struct{}
}

func newRecorder[K comparable, V any]() *recorder[K, V] {
	return &recorder[K, V]{notify: make(chan struct{}, 1)}
}

func (r *recorder[K, V]) fn(ev Event[K, V]) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder[K, V]) all() []Event[K, V] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event[K, V](nil), r.events...)
}

// waitFor waits until cond holds for the events so far.
func (r *recorder[K, V]) waitFor(ctx context.Context, tb testing.TB, what string, cond func([]Event[K, V]) bool) []Event[K, V] {
	tb.Helper()
	for {
		evs := r.all()
		if cond(evs) {
			return evs
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			tb.Fatalf("waiting for %s: %v; events: %v", what, ctx.Err(), evs)
		}
	}
}
