package wireguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/encryption/wireguard"
	"github.com/strait-net/strait/encryption/wireguard/wgfake"
	"github.com/strait-net/strait/internal/testkit"
)

const dev = "swg-fake0"

func key(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

func ep(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// state is a comparable rendering of a device's peers.
type peerState struct {
	Endpoint   string
	AllowedIPs []string
	Keepalive  time.Duration
}

func deviceState(t *testing.T, f *wgfake.Fake) map[wgtypes.Key]peerState {
	t.Helper()
	d, err := f.Device(dev)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[wgtypes.Key]peerState)
	for _, p := range d.Peers {
		s := peerState{Keepalive: p.PersistentKeepaliveInterval}
		if p.Endpoint != nil {
			s.Endpoint = p.Endpoint.String()
		}
		for _, n := range p.AllowedIPs {
			s.AllowedIPs = append(s.AllowedIPs, n.String())
		}
		out[p.PublicKey] = s
	}
	return out
}

func newFake(t *testing.T, peers ...wgtypes.Peer) *wgfake.Fake {
	t.Helper()
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := wgfake.New()
	f.AddDevice(wgtypes.Device{Name: dev, PrivateKey: priv, ListenPort: wireguard.DefaultPort, Peers: peers})
	return f
}

func devPeer(k wgtypes.Key, endpoint string, ips ...string) wgtypes.Peer {
	p := wgtypes.Peer{PublicKey: k}
	if endpoint != "" {
		p.Endpoint = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(endpoint))
	}
	for _, s := range ips {
		_, n, _ := net.ParseCIDR(s)
		p.AllowedIPs = append(p.AllowedIPs, *n)
	}
	return p
}

func TestReconcile(t *testing.T) {
	a, b, c := key(t), key(t), key(t)
	tests := []struct {
		name      string
		device    []wgtypes.Peer
		desired   []wireguard.Peer
		prune     bool
		wantStats wireguard.ReconcileStats
		wantCalls int
		want      map[wgtypes.Key]peerState
	}{
		{
			name: "add to empty device",
			desired: []wireguard.Peer{
				{PublicKey: a, Endpoint: ep("198.18.1.11:51871"), AllowedIPs: pfx("10.1.1.0/24", "198.18.1.11/32")},
				{PublicKey: b, Endpoint: ep("198.18.1.12:51871"), AllowedIPs: pfx("198.18.1.12/32"), Keepalive: 25 * time.Second},
			},
			wantStats: wireguard.ReconcileStats{Added: 2},
			wantCalls: 1,
			want: map[wgtypes.Key]peerState{
				a: {Endpoint: "198.18.1.11:51871", AllowedIPs: []string{"10.1.1.0/24", "198.18.1.11/32"}},
				b: {Endpoint: "198.18.1.12:51871", AllowedIPs: []string{"198.18.1.12/32"}, Keepalive: 25 * time.Second},
			},
		},
		{
			name:   "unchanged makes no call",
			device: []wgtypes.Peer{devPeer(a, "198.18.1.11:51871", "198.18.1.11/32", "10.1.1.0/24")},
			// Different order, a duplicate and an unmasked prefix: canonically the same.
			desired:   []wireguard.Peer{{PublicKey: a, Endpoint: ep("198.18.1.11:51871"), AllowedIPs: pfx("10.1.1.7/24", "198.18.1.11/32", "10.1.1.0/24")}},
			wantStats: wireguard.ReconcileStats{Unchanged: 1},
			wantCalls: 0,
			want:      map[wgtypes.Key]peerState{a: {Endpoint: "198.18.1.11:51871", AllowedIPs: []string{"10.1.1.0/24", "198.18.1.11/32"}}},
		},
		{
			name:      "update endpoint",
			device:    []wgtypes.Peer{devPeer(a, "198.18.1.11:51871", "198.18.1.11/32")},
			desired:   []wireguard.Peer{{PublicKey: a, Endpoint: ep("198.18.1.99:51871"), AllowedIPs: pfx("198.18.1.11/32")}},
			wantStats: wireguard.ReconcileStats{Updated: 1},
			wantCalls: 1,
			want:      map[wgtypes.Key]peerState{a: {Endpoint: "198.18.1.99:51871", AllowedIPs: []string{"198.18.1.11/32"}}},
		},
		{
			name:      "unknown endpoint leaves the device's alone",
			device:    []wgtypes.Peer{devPeer(a, "198.18.1.11:51871", "198.18.1.11/32")},
			desired:   []wireguard.Peer{{PublicKey: a, AllowedIPs: pfx("198.18.1.11/32")}},
			wantStats: wireguard.ReconcileStats{Unchanged: 1},
			want:      map[wgtypes.Key]peerState{a: {Endpoint: "198.18.1.11:51871", AllowedIPs: []string{"198.18.1.11/32"}}},
		},
		{
			name:      "update allowed IPs: gain and lose",
			device:    []wgtypes.Peer{devPeer(a, "198.18.1.11:51871", "198.18.1.11/32", "10.1.1.2/32", "10.1.1.3/32")},
			desired:   []wireguard.Peer{{PublicKey: a, Endpoint: ep("198.18.1.11:51871"), AllowedIPs: pfx("198.18.1.11/32", "10.1.1.3/32", "10.1.1.4/32")}},
			wantStats: wireguard.ReconcileStats{Updated: 1},
			wantCalls: 1,
			want:      map[wgtypes.Key]peerState{a: {Endpoint: "198.18.1.11:51871", AllowedIPs: []string{"10.1.1.3/32", "10.1.1.4/32", "198.18.1.11/32"}}},
		},
		{
			name:      "keepalive turned off",
			device:    []wgtypes.Peer{{PublicKey: a, PersistentKeepaliveInterval: 25 * time.Second}},
			desired:   []wireguard.Peer{{PublicKey: a}},
			wantStats: wireguard.ReconcileStats{Updated: 1},
			wantCalls: 1,
			want:      map[wgtypes.Key]peerState{a: {}},
		},
		{
			name:      "prune=false keeps stale peers",
			device:    []wgtypes.Peer{devPeer(a, "198.18.1.11:51871", "198.18.1.11/32"), devPeer(c, "198.18.1.13:51871", "198.18.1.13/32")},
			desired:   []wireguard.Peer{{PublicKey: a, Endpoint: ep("198.18.1.11:51871"), AllowedIPs: pfx("198.18.1.11/32")}},
			wantStats: wireguard.ReconcileStats{Unchanged: 1},
			wantCalls: 0,
			want: map[wgtypes.Key]peerState{
				a: {Endpoint: "198.18.1.11:51871", AllowedIPs: []string{"198.18.1.11/32"}},
				c: {Endpoint: "198.18.1.13:51871", AllowedIPs: []string{"198.18.1.13/32"}},
			},
		},
		{
			name:      "prune=true removes stale peers",
			device:    []wgtypes.Peer{devPeer(a, "198.18.1.11:51871", "198.18.1.11/32"), devPeer(c, "198.18.1.13:51871", "198.18.1.13/32")},
			desired:   []wireguard.Peer{{PublicKey: a, Endpoint: ep("198.18.1.11:51871"), AllowedIPs: pfx("198.18.1.11/32")}},
			prune:     true,
			wantStats: wireguard.ReconcileStats{Unchanged: 1, Removed: 1},
			wantCalls: 1,
			want:      map[wgtypes.Key]peerState{a: {Endpoint: "198.18.1.11:51871", AllowedIPs: []string{"198.18.1.11/32"}}},
		},
		{
			name:      "prune with nothing desired empties the device",
			device:    []wgtypes.Peer{devPeer(a, "", "198.18.1.11/32"), devPeer(b, "", "198.18.1.12/32")},
			prune:     true,
			wantStats: wireguard.ReconcileStats{Removed: 2},
			wantCalls: 1,
			want:      map[wgtypes.Key]peerState{},
		},
		{
			name:   "allowed IP moves from a stale peer to a new one without pruning",
			device: []wgtypes.Peer{devPeer(c, "198.18.1.13:51871", "198.18.1.13/32", "10.1.3.0/24")},
			desired: []wireguard.Peer{
				{PublicKey: a, Endpoint: ep("198.18.1.11:51871"), AllowedIPs: pfx("10.1.3.0/24")},
			},
			wantStats: wireguard.ReconcileStats{Added: 1},
			wantCalls: 1,
			want: map[wgtypes.Key]peerState{
				a: {Endpoint: "198.18.1.11:51871", AllowedIPs: []string{"10.1.3.0/24"}},
				c: {Endpoint: "198.18.1.13:51871", AllowedIPs: []string{"198.18.1.13/32"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.device...)
			r := wireguard.NewPeerReconciler(f, dev, testkit.Logger(t))
			stats, err := r.Reconcile(context.Background(), tt.desired, tt.prune)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantStats, stats); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			if got := len(f.Calls()); got != tt.wantCalls {
				t.Errorf("%d ConfigureDevice calls, want %d", got, tt.wantCalls)
			}
			if diff := cmp.Diff(tt.want, deviceState(t, f)); diff != "" {
				t.Errorf("device peers (-want +got):\n%s", diff)
			}
			// Applying the same desired state again must change nothing.
			f.Reset()
			stats, err = r.Reconcile(context.Background(), tt.desired, tt.prune)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Calls()) != 0 || stats.Added+stats.Updated+stats.Removed != 0 {
				t.Errorf("second Reconcile: %+v with %d calls; want a no-op", stats, len(f.Calls()))
			}
		})
	}
}

// An allowed IP that moves between peers, and the IPs a peer keeps while it
// loses others, must be present on the device after every single step of
// the change (the fake records the owner map after each PeerConfig).
func TestReconcileNoGap(t *testing.T) {
	a, b := key(t), key(t)
	moving := netip.MustParsePrefix("10.1.1.7/32")
	keptA := pfx("198.18.1.11/32", "10.1.1.2/32")
	keptB := pfx("198.18.1.12/32")
	f := newFake(t,
		devPeer(a, "198.18.1.11:51871", "198.18.1.11/32", "10.1.1.2/32", "10.1.1.7/32", "10.1.1.9/32"),
		devPeer(b, "198.18.1.12:51871", "198.18.1.12/32"))
	r := wireguard.NewPeerReconciler(f, dev, testkit.Logger(t))
	desired := []wireguard.Peer{
		// a loses 10.1.1.7 (to b) and 10.1.1.9 (to no one).
		{PublicKey: a, Endpoint: ep("198.18.1.11:51871"), AllowedIPs: keptA},
		{PublicKey: b, Endpoint: ep("198.18.1.12:51871"), AllowedIPs: append(slicesClone(keptB), moving)},
	}
	stats, err := r.Reconcile(context.Background(), desired, false)
	if err != nil {
		t.Fatal(err)
	}
	if stats != (wireguard.ReconcileStats{Updated: 2}) {
		t.Errorf("stats %+v, want 2 updated", stats)
	}
	if n := len(f.Calls()); n != 1 {
		t.Fatalf("%d ConfigureDevice calls, want 1", n)
	}
	steps := f.Steps()
	if len(steps) == 0 {
		t.Fatal("no steps recorded")
	}
	for i, s := range steps {
		if o, ok := s.Owners[moving]; !ok || (o != a && o != b) {
			t.Errorf("step %d (%s peer %s): %s owned by %v (present %v); want a or b", i, s.Op, s.Peer, moving, o, ok)
		}
		for _, p := range keptA {
			if s.Owners[p] != a {
				t.Errorf("step %d (peer %s): kept IP %s of a owned by %v", i, s.Peer, p, s.Owners[p])
			}
		}
		for _, p := range keptB {
			if s.Owners[p] != b {
				t.Errorf("step %d (peer %s): kept IP %s of b owned by %v", i, s.Peer, p, s.Owners[p])
			}
		}
	}
	want := map[wgtypes.Key]peerState{
		a: {Endpoint: "198.18.1.11:51871", AllowedIPs: []string{"10.1.1.2/32", "198.18.1.11/32"}},
		b: {Endpoint: "198.18.1.12:51871", AllowedIPs: []string{"10.1.1.7/32", "198.18.1.12/32"}},
	}
	if diff := cmp.Diff(want, deviceState(t, f)); diff != "" {
		t.Errorf("device peers (-want +got):\n%s", diff)
	}
}

func slicesClone(p []netip.Prefix) []netip.Prefix { return append([]netip.Prefix(nil), p...) }

func TestReconcileRejectsInvalid(t *testing.T) {
	a, b := key(t), key(t)
	tests := []struct {
		name    string
		desired []wireguard.Peer
	}{
		{name: "zero key", desired: []wireguard.Peer{{}}},
		{name: "duplicate key", desired: []wireguard.Peer{{PublicKey: a}, {PublicKey: a}}},
		{name: "allowed IP claimed twice", desired: []wireguard.Peer{
			{PublicKey: a, AllowedIPs: pfx("10.1.1.0/24")}, {PublicKey: b, AllowedIPs: pfx("10.1.1.5/24")}}},
		{name: "endpoint without port", desired: []wireguard.Peer{{PublicKey: a, Endpoint: ep("198.18.1.1:0")}}},
		{name: "unspecified endpoint", desired: []wireguard.Peer{{PublicKey: a, Endpoint: ep("0.0.0.0:51871")}}},
		{name: "negative keepalive", desired: []wireguard.Peer{{PublicKey: a, Keepalive: -time.Second}}},
		{name: "invalid prefix", desired: []wireguard.Peer{{PublicKey: a, AllowedIPs: []netip.Prefix{{}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			_, err := wireguard.NewPeerReconciler(f, dev, testkit.Logger(t)).Reconcile(context.Background(), tt.desired, true)
			if !errors.Is(err, wireguard.ErrInvalidPeer) {
				t.Fatalf("Reconcile = %v, want ErrInvalidPeer", err)
			}
			if len(f.Calls()) != 0 {
				t.Fatal("invalid desired state was applied")
			}
		})
	}
}

func TestReconcileErrors(t *testing.T) {
	a := key(t)
	t.Run("missing device", func(t *testing.T) {
		_, err := wireguard.NewPeerReconciler(wgfake.New(), "nope0", testkit.Logger(t)).Reconcile(context.Background(), nil, false)
		if err == nil {
			t.Fatal("want an error for a missing device")
		}
	})
	t.Run("configure fails, retry succeeds", func(t *testing.T) {
		f := newFake(t)
		r := wireguard.NewPeerReconciler(f, dev, testkit.Logger(t))
		boom := errors.New("boom")
		f.FailNext(boom)
		desired := []wireguard.Peer{{PublicKey: a, AllowedIPs: pfx("10.9.0.0/16")}}
		if _, err := r.Reconcile(context.Background(), desired, false); !errors.Is(err, boom) {
			t.Fatalf("Reconcile = %v, want boom", err)
		}
		stats, err := r.Reconcile(context.Background(), desired, false)
		if err != nil || stats.Added != 1 {
			t.Fatalf("retry = %+v, %v", stats, err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		f := newFake(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := wireguard.NewPeerReconciler(f, dev, testkit.Logger(t)).Reconcile(ctx, []wireguard.Peer{{PublicKey: a}}, false)
		if !errors.Is(err, context.Canceled) || len(f.Calls()) != 0 {
			t.Fatalf("Reconcile = %v with %d calls; want context.Canceled and no call", err, len(f.Calls()))
		}
	})
}
