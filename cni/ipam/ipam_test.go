package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/internal/testkit"
)

func owner(i int) Owner { return Owner{ContainerID: fmt.Sprintf("c%03d", i), IfName: "eth0"} }

func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithLeakCheck(m, "strait/cni/ipam."))
}

func TestAllocateNeverReserved(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	tests := []struct {
		name string
		cidr string
		want []string // every address handed out until exhaustion, in order
	}{
		{name: "slash30", cidr: "10.1.1.0/30", want: []string{"10.1.1.2"}},
		{name: "slash29", cidr: "10.1.1.8/29", want: []string{"10.1.1.10", "10.1.1.11", "10.1.1.12", "10.1.1.13", "10.1.1.14"}},
		{name: "unmasked", cidr: "10.1.1.9/29", want: []string{"10.1.1.10", "10.1.1.11", "10.1.1.12", "10.1.1.13", "10.1.1.14"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.TempDir(), "net")
			if err != nil {
				t.Fatal(err)
			}
			cidr := netip.MustParsePrefix(tt.cidr)
			var got []string
			for i := 0; ; i++ {
				a, err := s.Allocate(ctx, cidr, owner(i))
				if errors.Is(err, ErrExhausted) {
					if !strings.Contains(err.Error(), cidr.Masked().String()) {
						t.Errorf("exhaustion error %q does not name the CIDR %s", err, cidr.Masked())
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, a.String())
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("allocated (-want +got):\n%s", d)
			}
			free, err := s.Free(ctx, cidr)
			if err != nil || free != 0 {
				t.Errorf("Free = %d, %v; want 0", free, err)
			}
		})
	}
}

func TestAllocateBadCIDR(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	s, err := Open(t.TempDir(), "net")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"10.1.1.0/31", "10.1.1.1/32", "fd00::/64"} {
		_, err := s.Allocate(ctx, netip.MustParsePrefix(c), owner(1))
		if !errors.Is(err, ErrNoUsableAddress) || !strings.Contains(err.Error(), c) {
			t.Errorf("Allocate(%s) = %v, want ErrNoUsableAddress naming the CIDR", c, err)
		}
	}
	if _, err := s.Allocate(ctx, netip.MustParsePrefix("10.1.1.0/24"), Owner{ContainerID: "", IfName: "eth0"}); err == nil || !strings.Contains(err.Error(), "containerID") {
		t.Errorf("Allocate with empty containerID = %v, want error naming containerID", err)
	}
}

func TestOpenBadNetwork(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b"} {
		if _, err := Open(t.TempDir(), n); err == nil {
			t.Errorf("Open(%q) succeeded", n)
		}
	}
}

func TestIdempotentAndRelease(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	dir := t.TempDir()
	s, err := Open(dir, "net")
	if err != nil {
		t.Fatal(err)
	}
	cidr := netip.MustParsePrefix("10.2.0.0/24")
	a1, err := s.Allocate(ctx, cidr, owner(1))
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Allocate(ctx, cidr, owner(1))
	if err != nil || again != a1 {
		t.Fatalf("second Allocate = %v, %v; want %v", again, err, a1)
	}
	data, err := os.ReadFile(filepath.Join(dir, "net", a1.String()))
	if err != nil || string(data) != "c001\neth0\n" {
		t.Fatalf("record file = %q, %v", data, err)
	}
	other := Owner{ContainerID: "c001", IfName: "net1"}
	a2, err := s.Allocate(ctx, cidr, other)
	if err != nil || a2 == a1 {
		t.Fatalf("other interface of the same container got %v, %v (first %v)", a2, err, a1)
	}
	got, ok, err := s.Lookup(ctx, owner(1))
	if err != nil || !ok || got != a1 {
		t.Fatalf("Lookup = %v %v %v", got, ok, err)
	}
	rel, err := s.Release(ctx, owner(1))
	if err != nil || len(rel) != 1 || rel[0] != a1 {
		t.Fatalf("Release = %v, %v", rel, err)
	}
	if _, ok, _ := s.Lookup(ctx, owner(1)); ok {
		t.Fatal("released owner still found")
	}
	rel, err = s.Release(ctx, owner(1))
	if err != nil || len(rel) != 0 {
		t.Fatalf("second Release = %v, %v; want nothing, no error", rel, err)
	}
	// Round robin: the next allocation does not reuse the released address.
	a3, err := s.Allocate(ctx, cidr, owner(3))
	if err != nil || a3 == a1 || a3 == a2 {
		t.Fatalf("after release got %v, %v (released %v, held %v)", a3, err, a1, a2)
	}
	// CIDR change: the old allocation is reported, not silently replaced.
	_, err = s.Allocate(ctx, netip.MustParsePrefix("10.3.0.0/24"), other)
	if !errors.Is(err, ErrOutsideCIDR) {
		t.Fatalf("Allocate in a new CIDR = %v, want ErrOutsideCIDR", err)
	}
}

// TestCrashBetweenAllocationAndReply: a plugin that allocated and died
// before replying leaves the address owned; another container never gets
// it, and the retry of the first gets it back.
func TestCrashBetweenAllocationAndReply(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	dir := t.TempDir()
	cidr := netip.MustParsePrefix("10.4.0.0/29")
	crashed, err := Open(dir, "net")
	if err != nil {
		t.Fatal(err)
	}
	a, err := crashed.Allocate(ctx, cidr, owner(1))
	if err != nil {
		t.Fatal(err)
	}
	// The "process" is gone: a leftover temp file of an interrupted write
	// is there too, and the next plugin process opens the store afresh.
	if err := os.WriteFile(filepath.Join(dir, "net", ".tmp-123"), []byte("c9"), 0o600); err != nil {
		t.Fatal(err)
	}
	next, err := Open(dir, "net")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]Owner{a: owner(1)}
	for i := 2; ; i++ {
		b, err := next.Allocate(ctx, cidr, owner(i))
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if o, dup := seen[b]; dup {
			t.Fatalf("%v handed to %v, already held by %v", b, owner(i), o)
		}
		seen[b] = owner(i)
	}
	retry, err := next.Allocate(ctx, cidr, owner(1))
	if err != nil || retry != a {
		t.Fatalf("retry of the crashed ADD got %v, %v; want %v", retry, err, a)
	}
	if _, err := os.Stat(filepath.Join(dir, "net", ".tmp-123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temp file not cleaned: %v", err)
	}
}

func TestConcurrentAllocate(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	dir := t.TempDir()
	cidr := netip.MustParsePrefix("10.5.0.0/24")
	const n = 40
	got := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Each goroutine its own Store, as each plugin process has.
			s, err := Open(dir, "net")
			if err != nil {
				errs[i] = err
				return
			}
			got[i], errs[i] = s.Allocate(ctx, cidr, owner(i))
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("owner %d: %v", i, errs[i])
		}
		if j, dup := seen[got[i]]; dup {
			t.Fatalf("owners %d and %d both got %v", j, i, got[i])
		}
		seen[got[i]] = i
	}
	s, _ := Open(dir, "net")
	all, err := s.Owners(ctx)
	if err != nil || len(all) != n {
		t.Fatalf("Owners = %d entries, %v; want %d", len(all), err, n)
	}
}

func TestLockHonoursContext(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, "net")
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.lock(testkit.Context(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Allocate(ctx, netip.MustParsePrefix("10.6.0.0/24"), owner(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Allocate while locked with a cancelled context = %v", err)
	}
}

func TestBadRecordNamesFile(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	dir := t.TempDir()
	s, err := Open(dir, "net")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "net", "10.7.0.5")
	if err := os.WriteFile(path, []byte("only-one-line"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.Allocate(ctx, netip.MustParsePrefix("10.7.0.0/24"), owner(1))
	if !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Allocate over a bad record = %v, want ErrBadRecord naming %s", err, path)
	}
}

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Owner
		wantErr string
	}{
		{name: "ok", in: "abc\neth0\n", want: Owner{"abc", "eth0"}},
		{name: "no newline", in: "abc\neth0", wantErr: "newline"},
		{name: "one line", in: "abc\n", wantErr: "1 lines"},
		{name: "three lines", in: "a\nb\nc\n", wantErr: "3 lines"},
		{name: "bad id", in: "-abc\neth0\n", wantErr: "containerID"},
		{name: "bad ifname", in: "abc\neth/0\n", wantErr: "ifName"},
		{name: "long", in: strings.Repeat("a", 600) + "\neth0\n", wantErr: "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRecord([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrBadRecord containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Error(d)
			}
		})
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("abc\neth0\n"))
	f.Add([]byte("abc\neth0"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseRecord(data)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		if string(FormatRecord(o)) != string(data) {
			t.Fatalf("round trip %q -> %q", data, FormatRecord(o))
		}
	})
}
