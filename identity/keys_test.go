package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKeys(t *testing.T) {
	k := Keys{Prefix: KVStorePrefix}
	if got := k.IDKey(199472); got != "cilium/state/identities/v1/id/199472" {
		t.Errorf("IDKey = %q", got)
	}
	if got := k.RefKey("k8s:app=web;", "node-1"); got != "cilium/state/identities/v1/value/k8s:app=web;/node-1" {
		t.Errorf("RefKey = %q", got)
	}
}

func TestParseIDKey(t *testing.T) {
	k := Keys{Prefix: KVStorePrefix}
	tests := []struct {
		name    string
		key     string
		want    NumericIdentity
		wantErr error
	}{
		{name: "ok", key: "cilium/state/identities/v1/id/199472", want: 199472},
		{name: "zero", key: "cilium/state/identities/v1/id/0", want: 0},
		{name: "wrong prefix", key: "cilium/state/nodes/v1/id/1", wantErr: ErrMalformedKey},
		{name: "not a number", key: "cilium/state/identities/v1/id/abc", wantErr: ErrMalformedKey},
		{name: "leading zero", key: "cilium/state/identities/v1/id/0256", wantErr: ErrMalformedKey},
		{name: "sign", key: "cilium/state/identities/v1/id/+256", wantErr: ErrMalformedKey},
		{name: "empty", key: "cilium/state/identities/v1/id/", wantErr: ErrMalformedKey},
		{name: "overflow", key: "cilium/state/identities/v1/id/99999999999", wantErr: ErrMalformedKey},
		{name: "node-local", key: "cilium/state/identities/v1/id/16777217", wantErr: ErrNodeLocal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k.ParseIDKey(tc.key)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("ParseIDKey(%q) = %d, %v; want error %v", tc.key, got, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name the key", err)
			}
			if got != tc.want {
				t.Errorf("ParseIDKey(%q) = %d, want %d", tc.key, got, tc.want)
			}
		})
	}
}

func TestParseRefKey(t *testing.T) {
	k := Keys{Prefix: KVStorePrefix}
	tests := []struct {
		name       string
		key        string
		wantLabels Labels
		wantNode   string
		wantErr    error
	}{
		{
			name:       "slash in label key",
			key:        "cilium/state/identities/v1/value/k8s:app.kubernetes.io/name=web;k8s:x=y;/10.0.0.1",
			wantLabels: Labels{{"k8s", "app.kubernetes.io/name", "web"}, {"k8s", "x", "y"}},
			wantNode:   "10.0.0.1",
		},
		{name: "no node", key: "cilium/state/identities/v1/value/k8s:a=b;/", wantErr: ErrMalformedKey},
		{name: "no slash", key: "cilium/state/identities/v1/value/k8s:a=b;", wantErr: ErrMalformedKey},
		{name: "bad labels", key: "cilium/state/identities/v1/value/a=b;/n", wantErr: ErrNoSource},
		{name: "wrong prefix", key: "cilium/state/identities/v1/id/1", wantErr: ErrMalformedKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ls, node, err := k.ParseRefKey(tc.key)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("ParseRefKey(%q) error %v, want %v", tc.key, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name the key", err)
			}
			if d := cmp.Diff(tc.wantLabels, ls); d != "" || node != tc.wantNode {
				t.Errorf("ParseRefKey(%q) node %q (-want +got):\n%s", tc.key, node, d)
			}
		})
	}
}

func TestParseIDValue(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"ok", "300", true},
		{"word", "three", false},
		{"space", " 300", false},
		{"negative", "-1", false},
		{"node-local", "33554433", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseIDValue("the/key", []byte(tc.value))
			if (err == nil) != tc.ok {
				t.Fatalf("ParseIDValue(%q) = %v", tc.value, err)
			}
			if err != nil && (!errors.Is(err, ErrMalformedValue) || !strings.Contains(err.Error(), "the/key")) {
				t.Errorf("error %q does not wrap ErrMalformedValue or name the key", err)
			}
		})
	}
}
