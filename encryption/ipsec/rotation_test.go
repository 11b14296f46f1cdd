package ipsec

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
)

// simNode is one simulated node: its key file, twin kernel and Manager.
type simNode struct {
	ref  NodeRef
	file string
	k    *MemKernel
	m    *Manager
}

type sim struct {
	t     *testing.T
	now   time.Time
	nodes []*simNode
}

func keyLine(spi uint8, fill byte) string {
	return fmt.Sprintf("%d+ rfc4106(gcm(aes)) %s 128\n", spi, strings.Repeat(fmt.Sprintf("%02x", fill), 20))
}

func newSim(t *testing.T, n int, firstKey string) *sim {
	s := &sim{t: t, now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	for i := range n {
		sn := &simNode{
			ref: NodeRef{Cluster: "cluster1", Name: fmt.Sprintf("node%d", i+1),
				IP:       netip.AddrFrom4([4]byte{198, 18, 1, byte(11 + i)}),
				BootID:   fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1),
				PodCIDRs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i + 1), 0}), 24)}},
			file: filepath.Join(t.TempDir(), "keys"),
			k:    NewMemKernel(),
		}
		if err := os.WriteFile(sn.file, []byte(firstKey), 0o600); err != nil {
			t.Fatal(err)
		}
		var err error
		sn.m, err = NewManager(ManagerConfig{
			Log: testkit.Logger(t), Kernel: sn.k, KeyFile: sn.file, RotationDelay: time.Minute,
			BlockCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			Advertise: func(_ context.Context, spi uint8) error {
				sn.ref.EncryptionKey = spi // what the agent publishes in its Node entry
				return nil
			},
			Now: func() time.Time { return s.now },
		})
		if err != nil {
			t.Fatal(err)
		}
		sn.k.OnWrite = func(op string) { s.check(sn.ref.Name + ": " + op) }
		s.nodes = append(s.nodes, sn)
	}
	return s
}

// check is the invariant of issue #44335, checked after every single kernel
// write on any node: every OUT policy of node X towards Y names an SPI for
// which X has the OUT state and Y has the IN state with the same key.
func (s *sim) check(op string) {
	byIP := map[netip.Addr]*simNode{}
	for _, n := range s.nodes {
		byIP[n.ref.IP] = n
	}
	ctx := context.Background()
	for _, x := range s.nodes {
		pols, _ := x.k.Policies(ctx)
		states, _ := x.k.States(ctx)
		out := map[stateID]State{}
		for _, st := range states {
			out[st.id()] = st
		}
		for _, p := range pols {
			if p.Dir != DirOut || p.Block || !p.TmplDst.IsValid() {
				continue
			}
			id := stateID{p.TmplDst, p.TmplSPI}
			xs, ok := out[id]
			if !ok {
				s.t.Errorf("after %s: %s: %s has no OUT state", op, x.ref.Name, p)
				continue
			}
			y := byIP[p.TmplDst]
			ystates, _ := y.k.States(ctx)
			found := false
			for _, ys := range ystates {
				if ys == xs {
					found = true
				}
			}
			if !found {
				s.t.Errorf("after %s: %s sends to %s with SPI 0x%08x but %s has no matching IN state", op, x.ref.Name, y.ref.Name, p.TmplSPI, y.ref.Name)
			}
		}
	}
}

// syncNode gives node i the current view of the others and syncs it.
func (s *sim) syncNode(i int) {
	s.t.Helper()
	var remotes []NodeRef
	for j, n := range s.nodes {
		if j != i {
			remotes = append(remotes, n.ref)
		}
	}
	n := s.nodes[i]
	n.m.SetNodes(n.ref, remotes)
	if err := n.m.Sync(context.Background()); err != nil {
		s.t.Fatalf("sync %s: %v", n.ref.Name, err)
	}
}

func (s *sim) syncAll() {
	for i := range s.nodes {
		s.syncNode(i)
	}
}

func (s *sim) writeKeys(i int, content string) (bool, error) {
	s.t.Helper()
	if err := os.WriteFile(s.nodes[i].file, []byte(content), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return s.nodes[i].m.ReloadKeys()
}

// outSPIs lists, per node, the key index of each OUT policy, for assertions.
func (s *sim) outKeys() string {
	var b strings.Builder
	for _, n := range s.nodes {
		pols, _ := n.k.Policies(context.Background())
		fmt.Fprintf(&b, "%s:", n.ref.Name)
		for _, p := range pols {
			if p.Dir == DirOut && !p.Block && p.TmplDst.IsValid() {
				k, _, _ := SplitWireSPI(p.TmplSPI)
				fmt.Fprintf(&b, " %d", k)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (s *sim) stateCount(i int) int {
	st, _ := s.nodes[i].k.States(context.Background())
	return len(st)
}

func TestRotationThreeNodes(t *testing.T) {
	s := newSim(t, 3, keyLine(1, 0x11))
	// Bootstrap: no node sends before its peer advertises.
	s.syncAll()
	s.syncAll()
	if got, want := s.outKeys(), "node1: 1 1\nnode2: 1 1\nnode3: 1 1\n"; got != want {
		t.Fatalf("after bootstrap OUT keys\n%s want\n%s", got, want)
	}
	// Rotation, one node at a time, every node syncing between steps.
	rotated := keyLine(1, 0x11) + keyLine(2, 0x22)
	for i := range s.nodes {
		if changed, err := s.writeKeys(i, rotated); err != nil || !changed {
			t.Fatalf("node%d reload: changed %v err %v", i+1, changed, err)
		}
		s.syncNode(i)
		if n := s.stateCount(i); n != 8 {
			t.Errorf("node%d holds %d states mid-rotation; want 8 (4 per remote)", i+1, n)
		}
		s.syncAll()
	}
	s.syncAll()
	if got, want := s.outKeys(), "node1: 2 2\nnode2: 2 2\nnode3: 2 2\n"; got != want {
		t.Fatalf("after rotation OUT keys\n%s want\n%s", got, want)
	}
	// Retirement after the delay: back to 2 states per remote.
	s.now = s.now.Add(2 * time.Minute)
	s.syncAll()
	for i := range s.nodes {
		if n := s.stateCount(i); n != 4 {
			t.Errorf("node%d holds %d states after retirement; want 4", i+1, n)
		}
	}
	// The file drops the old line and rotates on with wrap-around rules.
	if _, err := s.writeKeys(0, keyLine(2, 0x22)); err != nil {
		t.Fatalf("dropping the old line: %v", err)
	}
}

// Nodes pick the new key up in an unlucky order: the node that rotated
// first syncs last, a node syncs before learning any advertisement.
func TestRotationUnevenPropagation(t *testing.T) {
	s := newSim(t, 3, keyLine(7, 0x77))
	s.syncAll()
	s.syncAll()
	rotated := keyLine(7, 0x77) + keyLine(8, 0x88)
	s.writeKeys(2, rotated)
	s.syncNode(2)
	s.syncNode(0) // node1 sees node3 ahead: keeps key 7 towards it
	s.writeKeys(0, rotated)
	s.syncNode(0)
	s.syncNode(1)
	s.writeKeys(1, rotated)
	s.syncNode(1)
	s.syncNode(2)
	s.syncAll()
	if got, want := s.outKeys(), "node1: 8 8\nnode2: 8 8\nnode3: 8 8\n"; got != want {
		t.Fatalf("OUT keys\n%s want\n%s", got, want)
	}
}

func TestRotationRefused(t *testing.T) {
	s := newSim(t, 2, keyLine(15, 0xf0))
	s.syncAll()
	s.syncAll()
	before := s.nodes[0].k.String()
	tests := []struct {
		name    string
		content string
		wantErr error
		wantMsg string
	}{
		{name: "skips an SPI", content: keyLine(15, 0xf0) + keyLine(2, 0x22), wantErr: ErrRotation, wantMsg: ":2: spi: 2 follows 15; the next key must have SPI 1"},
		{name: "same SPI other key", content: keyLine(15, 0xf1), wantErr: ErrRotation, wantMsg: ":1: spi: 15 is in use with another key"},
		{name: "bad ICV", content: keyLine(15, 0xf0) + "1+ rfc4106(gcm(aes)) " + strings.Repeat("01", 20) + " 64\n", wantErr: ErrKeyFile, wantMsg: `:2: icv-bits: "64"`},
		{name: "unknown algorithm", content: "1+ gcm(aes) " + strings.Repeat("01", 20) + " 128\n", wantErr: ErrKeyFile, wantMsg: ":1: algorithm: unknown AEAD algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.writeKeys(0, tt.content)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), s.nodes[0].file+tt.wantMsg) {
				t.Fatalf("error %v; want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			s.syncAll()
			if s.nodes[0].m.Current() != 15 || s.nodes[0].k.String() != before {
				t.Fatal("running keys changed after a refused file")
			}
		})
	}
	// 15 wraps to 1.
	if changed, err := s.writeKeys(0, keyLine(15, 0xf0)+keyLine(1, 0x01)); err != nil || !changed {
		t.Fatalf("wrap 15 -> 1: changed %v err %v", changed, err)
	}
	s.syncAll()
	if s.nodes[0].m.Advertised() != 1 {
		t.Errorf("advertised %d after wrap", s.nodes[0].m.Advertised())
	}
}

// Run picks up a Kubernetes-style secret update: the file is a symlink
// through ..data, which is swapped atomically to a new timestamped dir.
func TestManagerWatchesSecretVolume(t *testing.T) {
	ctx := testkit.Context(t, 30*time.Second)
	dir := t.TempDir()
	writeVersion := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "keys"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..2026_11_25_03_00_00.1", keyLine(4, 0x44))
	if err := os.Symlink("..data/keys", filepath.Join(dir, "keys")); err != nil {
		t.Fatal(err)
	}
	advertised := make(chan uint8, 10)
	k := NewMemKernel()
	m, err := NewManager(ManagerConfig{Log: testkit.Logger(t), Kernel: k, KeyFile: filepath.Join(dir, "keys"),
		Advertise: func(_ context.Context, spi uint8) error { advertised <- spi; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	local := NodeRef{Cluster: "c", Name: "a", IP: ipL, BootID: bootA, PodCIDRs: []netip.Prefix{cidL}}
	remote := NodeRef{Cluster: "c", Name: "b", IP: ipR, BootID: bootB, PodCIDRs: []netip.Prefix{cidR}, EncryptionKey: 4}
	m.SetNodes(local, []NodeRef{remote})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	wait := func(want uint8) {
		t.Helper()
		select {
		case got := <-advertised:
			if got != want {
				t.Fatalf("advertised %d; want %d", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("key %d never advertised", want)
		}
	}
	wait(4)
	writeVersion("..2026_11_25_03_05_00.2", keyLine(4, 0x44)+keyLine(5, 0x55))
	wait(5)
	if got := len(m.LastDesired().States); got != 4 {
		t.Errorf("%d states after rotation; want 4", got)
	}
}
