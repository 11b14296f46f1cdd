package inspect

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds one arbitrary value under every kind's local and cache
// keys: Decode never panics, and an entry is either valid (with a Value
// that is valid JSON) or listed as invalid with a reason.
// Seed corpus: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"Name":"n1","Cluster":"c-1","ClusterID":42}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		keys := map[Kind][2]string{
			KindNodes:      {"cilium/state/nodes/v1/c-1/n1", "cilium/cache/nodes/v1/cluster3/n1"},
			KindIPCache:    {"cilium/state/ip/v1/default/10.0.0.1", "cilium/cache/ip/v1/cluster3/10.0.0.1"},
			KindIdentities: {"cilium/state/identities/v1/id/2752513", "cilium/cache/identities/v1/cluster3/id/196609"},
			KindServices:   {"cilium/state/services/v1/c-1/ns/svc", "cilium/cache/services/v1/cluster3/ns/svc"},
		}
		configs := []KV{{"cilium/cluster-config/cluster3", []byte(`{"id":3,"capabilities":{}}`)}, {"cilium/cluster-config/x", value}}
		for kind, k := range keys {
			r, err := Decode(self, kind, Input{Configs: configs, Local: []KV{{k[0], value}}, Cached: []KV{{k[1], value}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Entries)+len(r.Invalid) != 2 {
				t.Fatalf("%s: %d entries, %d invalid, want 2 in all", kind, len(r.Entries), len(r.Invalid))
			}
			for _, e := range r.Entries {
				if !bytes.HasPrefix(e.Value, []byte("{")) {
					t.Fatalf("%s: value %q", kind, e.Value)
				}
			}
			for _, in := range r.Invalid {
				if in.Reason == "" {
					t.Fatalf("%s: invalid without reason", kind)
				}
			}
		}
		if _, err := Decode(self, KindClusters, Input{Configs: configs, Synced: []KV{{"cilium/synced/x/cilium/state/nodes/v1", value}}}); err != nil {
			t.Fatal(err)
		}
	})
}
