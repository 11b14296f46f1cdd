package meshstate

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/internal/etcdtest"
)

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(tb testing.TB) *slog.Logger {
	if _, ok := tb.(*testing.B); ok {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w := &testWriter{t: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testCtx bounds a test well above what it needs, so a bug fails instead
// of hanging.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

func newClient(tb testing.TB, srv *etcdtest.Server) *kvstore.Client {
	return newClientTTL(tb, srv, 0)
}

// newClientTTL connects with a session lease of ttl (0: the default);
// a short TTL makes the keep-alive notice a revoked lease quickly.
func newClientTTL(tb testing.TB, srv *etcdtest.Server, ttl time.Duration) *kvstore.Client {
	tb.Helper()
	c, err := kvstore.New(testCtx(tb), testLogger(tb), kvstore.Config{Endpoints: srv.Endpoints(), LeaseTTL: ttl, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		tb.Fatalf("kvstore.New: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// runBg runs fn in a goroutine until the test ends, then cancels it and
// waits for it to return.
func runBg(tb testing.TB, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("run: %v", err)
		}
	})
}

// waitClosed waits for ch or fails the test when ctx ends.
func waitClosed(ctx context.Context, tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		tb.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
}

// content returns key → value under prefix.
func content(ctx context.Context, tb testing.TB, raw *clientv3.Client, prefix string) map[string]string {
	tb.Helper()
	resp, err := raw.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		tb.Fatalf("get %s: %v", prefix, err)
	}
	m := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m
}

// waitPut watches key from rev+1 until it is written, failing on ctx end.
func waitPut(ctx context.Context, tb testing.TB, raw *clientv3.Client, key string, rev int64) {
	tb.Helper()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range raw.Watch(wctx, key, clientv3.WithRev(rev+1)) {
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypePut {
				return
			}
		}
	}
	tb.Fatalf("waiting for put of %s: %v", key, ctx.Err())
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
