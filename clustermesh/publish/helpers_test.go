package publish

import (
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
