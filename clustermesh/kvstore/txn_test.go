package kvstore

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
	"github.com/strait-net/strait/internal/etcdtest"
)

// The allocator's backend is this client.
var _ identity.Backend = (*Client)(nil)

func TestTxnPrefixMatchesSchema(t *testing.T) {
	if identity.KVStorePrefix != schema.IdentitiesPrefix {
		t.Fatalf("identity.KVStorePrefix = %q, schema.IdentitiesPrefix = %q", identity.KVStorePrefix, schema.IdentitiesPrefix)
	}
}

func txnClient(t *testing.T, srv *etcdtest.Server) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := New(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Endpoints: srv.Endpoints(), LeaseTTL: 10 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// txnDump returns every key under prefix with its value.
func txnDump(t *testing.T, c *Client, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := c.IdentityList(t.Context(), prefix, func(k string, v []byte, _ int64) { out[k] = string(v) }); err != nil {
		t.Fatalf("IdentityList: %v", err)
	}
	return out
}

const (
	txnLabels = "k8s:app=web;"
	txnID     = "cilium/state/identities/v1/id/300"
	txnRefs   = "cilium/state/identities/v1/value/k8s:app=web;/"
)

func TestTxnIdentityCreateAndJoin(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a, b := txnClient(t, srv), txnClient(t, srv)
	ctx := t.Context()

	created, other, _, err := a.IdentityCreate(ctx, txnID, txnLabels, txnRefs, txnRefs+"a", "300")
	if err != nil || !created || other != "" {
		t.Fatalf("first create = %v, %q, %v; want created", created, other, err)
	}
	// Same labels, another ID: refused, and the existing reference reported.
	created, other, val, err := b.IdentityCreate(ctx, "cilium/state/identities/v1/id/301", txnLabels, txnRefs, txnRefs+"b", "301")
	if err != nil || created || other != txnRefs+"a" || string(val) != "300" {
		t.Fatalf("racing create = %v, %q, %q, %v; want refusal naming %sa=300", created, other, val, err, txnRefs)
	}
	// Same ID, other labels: refused without a reference (ID taken).
	created, other, _, err = b.IdentityCreate(ctx, txnID, "k8s:app=db;", "cilium/state/identities/v1/value/k8s:app=db;/", "cilium/state/identities/v1/value/k8s:app=db;/b", "300")
	if err != nil || created || other != "" {
		t.Fatalf("create on taken ID = %v, %q, %v; want refusal", created, other, err)
	}
	// Joining with a wrong ID or wrong labels fails; the right one works.
	for _, tc := range []struct {
		name, labels, id string
		want             bool
	}{
		{"wrong id", txnLabels, "301", false},
		{"wrong labels", "k8s:app=db;", "300", false},
		{"matching", txnLabels, "300", true},
	} {
		joined, err := b.IdentityJoin(ctx, txnID, tc.labels, txnRefs, txnRefs+"b", tc.id)
		if err != nil || joined != tc.want {
			t.Errorf("%s: join = %v, %v; want %v", tc.name, joined, err, tc.want)
		}
	}
	want := map[string]string{
		txnID:         txnLabels,
		txnRefs + "a": "300",
		txnRefs + "b": "300",
	}
	if d := cmp.Diff(want, txnDump(t, a, "cilium/state/identities/v1/")); d != "" {
		t.Errorf("etcd content (-want +got):\n%s", d)
	}
}

func TestTxnIdentityJoinWithoutReferences(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := txnClient(t, srv)
	ctx := t.Context()
	if err := c.Put(ctx, txnID, []byte(txnLabels)); err != nil {
		t.Fatal(err)
	}
	joined, err := c.IdentityJoin(ctx, txnID, txnLabels, txnRefs, txnRefs+"a", "300")
	if err != nil || !joined {
		t.Fatalf("join of an unreferenced identity = %v, %v; want joined", joined, err)
	}
	// A reference to another ID blocks joining the orphan.
	if err := c.Put(ctx, txnRefs+"x", []byte("999")); err != nil {
		t.Fatal(err)
	}
	joined, err = c.IdentityJoin(ctx, txnID, txnLabels, txnRefs, txnRefs+"b", "300")
	if err != nil || joined {
		t.Fatalf("join while references disagree = %v, %v; want refused", joined, err)
	}
	// A missing id key blocks the join.
	joined, err = c.IdentityJoin(ctx, "cilium/state/identities/v1/id/301", txnLabels, "cilium/state/identities/v1/value/none;/", "cilium/state/identities/v1/value/none;/a", "301")
	if err != nil || joined {
		t.Fatalf("join of a missing identity = %v, %v; want refused", joined, err)
	}
}

func TestTxnIdentityCollect(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := txnClient(t, srv)
	ctx := t.Context()
	modRev := func() int64 {
		resp, err := c.Etcd().Get(ctx, txnID)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v", txnID, err)
		}
		return resp.Kvs[0].ModRevision
	}
	if err := c.Put(ctx, txnID, []byte(txnLabels)); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, txnRefs+"a", []byte("300")); err != nil {
		t.Fatal(err)
	}
	rev := modRev()
	if del, err := c.IdentityCollect(ctx, txnID, rev, txnRefs, "300"); err != nil || del {
		t.Fatalf("collect of a referenced identity = %v, %v; want kept", del, err)
	}
	// A reference to another ID (an orphan beside a live identity) does not protect it.
	if err := c.Put(ctx, txnRefs+"a", []byte("301")); err != nil {
		t.Fatal(err)
	}
	if del, err := c.IdentityCollect(ctx, txnID, rev-1, txnRefs, "300"); err != nil || del {
		t.Fatalf("collect with a stale mod revision = %v, %v; want kept", del, err)
	}
	if del, err := c.IdentityCollect(ctx, txnID, rev, txnRefs, "300"); err != nil || !del {
		t.Fatalf("collect of an orphan = %v, %v; want deleted", del, err)
	}
	// No references at all.
	if err := c.Put(ctx, txnID, []byte(txnLabels)); err != nil {
		t.Fatal(err)
	}
	if err := c.IdentityRelease(ctx, txnRefs+"a"); err != nil {
		t.Fatal(err)
	}
	if del, err := c.IdentityCollect(ctx, txnID, modRev(), txnRefs, "300"); err != nil || !del {
		t.Fatalf("collect of an unreferenced identity = %v, %v; want deleted", del, err)
	}
	if d := txnDump(t, c, "cilium/state/identities/v1/"); len(d) != 0 {
		t.Errorf("left behind: %v", d)
	}
}

func TestTxnIdentityListPages(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := txnClient(t, srv)
	ctx := t.Context()
	want := map[string]string{}
	for i := range identityListPage + 7 {
		k := "cilium/state/identities/v1/id/" + string(rune('a'+i%26)) + "/" + time.Duration(i).String()
		want[k] = "v"
		if err := c.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Put(ctx, "cilium/state/identities/v10", []byte("outside")); err != nil {
		t.Fatal(err)
	}
	var last string
	got := map[string]string{}
	err := c.IdentityList(ctx, "cilium/state/identities/v1/", func(k string, v []byte, _ int64) {
		if k <= last {
			t.Errorf("key %q after %q: not in order", k, last)
		}
		last = k
		got[k] = string(v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("list (-want +got):\n%s", d)
	}
}

func TestTxnIdentityCreateLeased(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	c := txnClient(t, srv)
	ctx := t.Context()
	if created, _, _, err := c.IdentityCreate(ctx, txnID, txnLabels, txnRefs, txnRefs+"a", "300"); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	lease, err := c.LeaseID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for key, wantLease := range map[string]int64{txnID: 0, txnRefs + "a": int64(lease)} {
		resp, err := c.Etcd().Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v", key, err)
		}
		if resp.Kvs[0].Lease != wantLease {
			t.Errorf("%s has lease %x, want %x", key, resp.Kvs[0].Lease, wantLease)
		}
	}
}
