package testkit

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// logWriter sends log lines to t.Log until the test ends; later lines (from
// goroutines still unwinding) are dropped instead of panicking.
type logWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Logger returns a logger writing through tb.Log at Info level; for
// benchmarks it discards everything.
func Logger(tb testing.TB) *slog.Logger {
	if _, ok := tb.(*testing.B); ok {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w := &logWriter{tb: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// Context returns a context bounded by d (well above what the test needs,
// so a bug fails the test instead of hanging it), cancelled at cleanup.
func Context(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// RunBackground runs fn in a goroutine until the test ends, then cancels it
// and waits for it to return; an error from fn fails the test.
func RunBackground(tb testing.TB, fn func(ctx context.Context) error) {
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

// WaitClosed waits for ch or fails the test when ctx ends.
func WaitClosed(ctx context.Context, tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		tb.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
}

// Content returns key → value of everything under prefix.
func Content(ctx context.Context, tb testing.TB, raw *clientv3.Client, prefix string) map[string]string {
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

// WaitPut watches key from rev+1 until it is written, failing on ctx end.
func WaitPut(ctx context.Context, tb testing.TB, raw *clientv3.Client, key string, rev int64) {
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
