package identity

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseLabels checks that the kvstore label parser never panics, and
// that whatever it accepts formats back to the exact input.
func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{
		"k8s:app=baz;k8s:io.cilium.k8s.policy.cluster=cluster3;k8s:io.kubernetes.pod.namespace=bar;",
		"reserved:host=;",
		"k8s:a=b=c;",
		"app=web;",
		"k8s:b=1;k8s:a=2;",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := ParseLabels(s)
		if err != nil {
			return
		}
		if got := ls.KVStoreString(); got != s {
			t.Fatalf("round trip %q → %q", s, got)
		}
		again, err := NewLabels(ls...)
		if err != nil || !again.Equal(ls) {
			t.Fatalf("NewLabels of parsed %q: %v", s, err)
		}
	})
}

// FuzzParseIDKey checks the id key parser: no panic, and accepted keys are
// canonical (formatting the ID gives the key back).
func FuzzParseIDKey(f *testing.F) {
	for _, s := range []string{
		"cilium/state/identities/v1/id/199472",
		"cilium/state/identities/v1/id/0256",
		"cilium/state/identities/v1/id/16777217",
		"cilium/state/identities/v1/id/x",
	} {
		f.Add(s)
	}
	k := Keys{Prefix: KVStorePrefix}
	f.Fuzz(func(t *testing.T, key string) {
		id, err := k.ParseIDKey(key)
		if err != nil {
			if q := strconv.Quote(key); len(key) <= 200 && !strings.Contains(err.Error(), q) {
				t.Fatalf("error %q does not name %q", err, key)
			}
			return
		}
		if k.IDKey(id) != key || id.IsNodeLocal() {
			t.Fatalf("accepted %q as %d", key, id)
		}
	})
}

// FuzzParseRefKey checks the value key parser: no panic, and accepted keys
// rebuild exactly from their labels and node.
func FuzzParseRefKey(f *testing.F) {
	for _, s := range []string{
		"cilium/state/identities/v1/value/k8s:app=web;/node-1",
		"cilium/state/identities/v1/value/k8s:app.kubernetes.io/name=web;/10.0.0.1",
		"cilium/state/identities/v1/value/k8s:a=b;/",
		"cilium/state/identities/v1/value//",
	} {
		f.Add(s)
	}
	k := Keys{Prefix: KVStorePrefix}
	f.Fuzz(func(t *testing.T, key string) {
		ls, node, err := k.ParseRefKey(key)
		if err != nil {
			return
		}
		if got := k.RefKey(ls.KVStoreString(), node); got != key {
			t.Fatalf("rebuilt %q as %q", key, got)
		}
		if validateNode(node) != nil {
			t.Fatalf("accepted node %q", node)
		}
	})
}
