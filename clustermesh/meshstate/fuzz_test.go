package meshstate

import (
	"testing"

	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/identity"
)

var fuzzOrigin = schema.Origin{Cluster: "c2", ClusterID: 2, Max: identity.ClusterMax255}

// FuzzDecodeIPEntry: any key and value either decode to an entry whose
// identity is reserved or in c2's range, or fail with an error; never a
// panic.
func FuzzDecodeIPEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		if _, err := ipKeyOf(key, "c2"); err != nil {
			return
		}
		e, err := decodeIPEntry(key, value, fuzzOrigin)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if e.ID >= identity.MinAllocatable {
			if err := identity.ValidateRemote(fuzzOrigin.Max, fuzzOrigin.ClusterID, e.ID); err != nil {
				t.Fatalf("accepted identity %d: %v", e.ID, err)
			}
		}
	})
}

// FuzzDecodeIdentity: accepted identities lie in c2's range and carry no
// other cluster's label; errors classify to a reason.
func FuzzDecodeIdentity(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		ls, err := decodeIdentity(key, value, fuzzOrigin)
		if err != nil {
			if reasonOf(err) == "" {
				t.Fatalf("no reason for %v", err)
			}
			return
		}
		id, err := identity.Keys{Prefix: schema.CacheIdentitiesPrefix + "/c2"}.ParseIDKey(key)
		if err != nil {
			t.Fatalf("accepted key %q: %v", key, err)
		}
		if err := identity.ValidateRemote(fuzzOrigin.Max, 2, id); err != nil {
			t.Fatalf("accepted out-of-range %d: %v", id, err)
		}
		if c, ok := ls.Cluster(); ok && c != "c2" {
			t.Fatalf("accepted labels of cluster %q", c)
		}
	})
}
