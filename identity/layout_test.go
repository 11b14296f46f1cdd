package identity

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestLayoutRanges(t *testing.T) {
	tests := []struct {
		name        string
		max         ClusterMax
		cluster     ClusterID
		first, last NumericIdentity
		shift       uint32
	}{
		{"255 cluster 0", ClusterMax255, 0, 256, 65535, 16},
		{"255 cluster 1", ClusterMax255, 1, 65536, 131071, 16},
		{"255 cluster 3", ClusterMax255, 3, 196608, 262143, 16},
		{"255 cluster 255", ClusterMax255, 255, 255 << 16, 1<<24 - 1, 16},
		{"511 cluster 0", ClusterMax511, 0, 256, 32767, 15},
		{"511 cluster 1", ClusterMax511, 1, 32768, 65535, 15},
		{"511 cluster 511", ClusterMax511, 511, 511 << 15, 1<<24 - 1, 15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, last, err := tc.max.Range(tc.cluster)
			if err != nil || first != tc.first || last != tc.last {
				t.Fatalf("Range(%d) = [%d, %d], %v; want [%d, %d]", tc.cluster, first, last, err, tc.first, tc.last)
			}
			if s := tc.max.Shift(); s != tc.shift {
				t.Errorf("Shift = %d, want %d", s, tc.shift)
			}
		})
	}
	if _, _, err := ClusterMax255.Range(256); !errors.Is(err, ErrInvalidClusterID) {
		t.Errorf("Range(256) with max 255: %v", err)
	}
	if _, _, err := ClusterMax(300).Range(1); !errors.Is(err, ErrInvalidClusterMax) {
		t.Errorf("Range with max 300: %v", err)
	}
	// Cilium's example: 199472 = 3<<16 | 2864 is cluster 3's.
	if c, err := ClusterMax255.ClusterOf(199472); err != nil || c != 3 {
		t.Errorf("ClusterOf(199472) = %d, %v", c, err)
	}
	if _, err := ClusterMax255.ClusterOf(ScopeLocal | 5); !errors.Is(err, ErrNodeLocal) {
		t.Errorf("ClusterOf(node-local): %v", err)
	}
}

// TestLayoutProperties checks, for both layouts and many random values,
// that every identity maps back to the one cluster whose range holds it,
// that ranges never overlap and tile [256, 2^24), and that reserved and
// node-local identities belong to no range.
func TestLayoutProperties(t *testing.T) {
	for _, max := range []ClusterMax{ClusterMax255, ClusterMax511} {
		t.Run(fmt.Sprintf("max%d", uint32(max)), func(t *testing.T) {
			// Ranges are contiguous, ordered and disjoint.
			next := MinAllocatable
			for c := ClusterID(0); uint32(c) <= uint32(max); c++ {
				first, last, err := max.Range(c)
				if err != nil {
					t.Fatalf("Range(%d): %v", c, err)
				}
				if first != next || last < first {
					t.Fatalf("cluster %d range [%d, %d] does not follow %d", c, first, last, next)
				}
				next = last + 1
			}
			if next != 1<<NumericIdentityBits {
				t.Fatalf("ranges end at %d, want 2^24", next)
			}
			rng := rand.New(rand.NewPCG(uint64(max), 42))
			for range 200000 {
				id := NumericIdentity(rng.Uint32N(1 << 26)) // includes node-local scopes
				c, err := max.ClusterOf(id)
				inAny := false
				for _, cand := range []ClusterID{c, c - 1, c + 1} {
					if uint32(cand) > uint32(max) {
						continue
					}
					first, last, _ := max.Range(cand)
					if id >= first && id <= last {
						if cand != c {
							t.Fatalf("id %d lies in cluster %d's range but maps to %d", id, cand, c)
						}
						inAny = true
					}
				}
				switch {
				case id.IsNodeLocal():
					if err == nil || inAny {
						t.Fatalf("node-local id %d: cluster %d, err %v, in a range %v", id, c, err, inAny)
					}
				case id < MinAllocatable:
					if inAny {
						t.Fatalf("reserved id %d lies in a range", id)
					}
				default:
					if err != nil || !inAny {
						t.Fatalf("id %d: cluster %d, err %v, in its range %v", id, c, err, inAny)
					}
					if ValidateRemote(max, c, id) != nil && c != 0 {
						t.Fatalf("ValidateRemote(%d, %d) rejected its own identity", c, id)
					}
				}
			}
		})
	}
}

func TestValidateRemote(t *testing.T) {
	tests := []struct {
		name    string
		max     ClusterMax
		cluster ClusterID
		id      NumericIdentity
		wantErr error
	}{
		{"inside", ClusterMax255, 3, 199472, nil},
		{"first", ClusterMax255, 3, 3 << 16, nil},
		{"last", ClusterMax511, 3, 4<<15 - 1, nil},
		{"other cluster", ClusterMax255, 2, 199472, ErrOutOfRange},
		{"reserved", ClusterMax255, 1, ReservedWorld, ErrOutOfRange},
		{"well-known", ClusterMax255, 1, WellKnownKubeDNS, ErrOutOfRange},
		{"node-local", ClusterMax255, 1, ScopeRemoteNode | 3<<16, ErrNodeLocal},
		{"cluster 0 is not remote", ClusterMax255, 0, 300, ErrInvalidClusterID},
		{"cluster over max", ClusterMax255, 256, 256 << 16, ErrInvalidClusterID},
		{"511 layout, 255 id", ClusterMax511, 3, 3<<16 + 5, ErrOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRemote(tc.max, tc.cluster, tc.id)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("ValidateRemote(%d, %d, %d) = %v, want %v", tc.max, tc.cluster, tc.id, err, tc.wantErr)
			}
		})
	}
}

func TestReserved(t *testing.T) {
	for id := IdentityUnknown; id <= MaxReservedIdentity; id++ {
		name, ok := id.ReservedName()
		if !ok || name == "" {
			t.Errorf("reserved id %d has no name", id)
		}
	}
	if id, ok := LookupReserved(MustLabels("reserved:host")); !ok || id != ReservedHost {
		t.Errorf("LookupReserved(host) = %d, %v", id, ok)
	}
	if _, ok := LookupReserved(MustLabels("reserved:host", "k8s:a=b")); ok {
		t.Error("LookupReserved matched a mixed set")
	}
	if !WellKnownKubeDNS.IsWellKnown() || MaxWellKnown != 115 || NumericIdentity(116).IsWellKnown() {
		t.Error("well-known block is not 100–115")
	}
}
