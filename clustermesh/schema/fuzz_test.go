package schema

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/identity"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/. Every target checks: no
// panic; an error is an *Error naming the key; a value that decodes
// re-encodes, decodes again to the same value, and re-encodes to the same
// bytes.

func fuzzRoundTrip(t *testing.T, key string, value []byte, from Origin, decode decoder) {
	got, err := decode(key, value, from)
	if err != nil {
		e, ok := err.(*Error)
		if !ok || e.Key != key {
			t.Fatalf("error %v is not an *Error naming key %q", err, key)
		}
		return
	}
	out, err := got.Marshal()
	if err != nil {
		t.Fatalf("marshal of decoded value: %v", err)
	}
	again, err := decode(key, out, from)
	if err != nil {
		t.Fatalf("re-decode of %s: %v (first input %q)", out, err, value)
	}
	if diff := cmp.Diff(got, again, cmpOpts); diff != "" {
		t.Fatalf("round trip changed the value (-first +second):\n%s", diff)
	}
	out2, err := again.Marshal()
	if err != nil || string(out2) != string(out) {
		t.Fatalf("re-encoding is not stable: %s vs %s (%v)", out, out2, err)
	}
}

func fuzzOrigin(cluster string, id identity.ClusterID, ext bool) Origin {
	o := Origin{Cluster: cluster, ClusterID: id, Max: identity.ClusterMax255}
	if ext {
		o.Max = identity.ClusterMax511
	}
	return o
}

func FuzzDecodeNode(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		fuzzRoundTrip(t, key, value, fuzzOrigin("cluster3", 3, false), decNode)
	})
}

func FuzzDecodeIPIdentityPair(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		fuzzRoundTrip(t, key, value, fuzzOrigin("cluster3", 3, false), decIP)
	})
}

func FuzzDecodeClusterService(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		fuzzRoundTrip(t, key, value, fuzzOrigin("cluster3", 3, false), decService)
	})
}

func FuzzDecodeServiceExport(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		fuzzRoundTrip(t, key, value, fuzzOrigin("cluster1", 1, false), decServiceExport)
	})
}

func FuzzDecodeClusterConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string, value []byte, ext bool) {
		fuzzRoundTrip(t, key, value, fuzzOrigin("cluster3", 0, ext), decClusterConfig)
	})
}

func FuzzDecodeCanary(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		fuzzRoundTrip(t, key, value, fuzzOrigin("cluster3", 3, false), decCanary)
	})
}

func FuzzParseKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, key string) {
		k, err := ParseKey(key)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Key != key {
				t.Fatalf("error %v is not an *Error naming key %q", err, key)
			}
			return
		}
		if k.Kind == KindUnknown {
			t.Fatalf("ParseKey(%q) returned KindUnknown without error", key)
		}
		if s := k.String(); s != key {
			t.Fatalf("ParseKey(%q).String() = %q", key, s)
		}
		if k.Cached {
			cluster, state, err := CacheToStateKey(key)
			if err != nil {
				t.Fatalf("CacheToStateKey(%q): %v", key, err)
			}
			back, err := StateToCacheKey(cluster, state)
			if err != nil || back != key {
				t.Fatalf("StateToCacheKey(%q, %q) = %q, %v; want %q", cluster, state, back, err, key)
			}
		}
	})
}
