package wgfake_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/encryption/wireguard/wgfake"
)

func ipnet(s string) net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return *n
}

// The fake must behave like WireGuard's allowed-IPs trie and UAPI set, or
// tests built on it prove nothing.
func TestSemantics(t *testing.T) {
	priv, _ := wgtypes.GeneratePrivateKey()
	k1, _ := wgtypes.GeneratePrivateKey()
	k2, _ := wgtypes.GeneratePrivateKey()
	a, b := k1.PublicKey(), k2.PublicKey()
	f := wgfake.New()
	if _, err := f.Device("wg0"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Device of unknown name = %v, want os.ErrNotExist", err)
	}
	if err := f.ConfigureDevice("wg0", wgtypes.Config{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ConfigureDevice of unknown name = %v, want os.ErrNotExist", err)
	}
	f.AddDevice(wgtypes.Device{Name: "wg0", PrivateKey: priv})
	p := 51871
	steps := []struct {
		name string
		cfg  wgtypes.Config
		want map[netip.Prefix]wgtypes.Key
	}{
		{"add a", wgtypes.Config{ListenPort: &p, Peers: []wgtypes.PeerConfig{{PublicKey: a, AllowedIPs: []net.IPNet{ipnet("10.0.0.0/24"), ipnet("10.0.1.1/32")}}}},
			map[netip.Prefix]wgtypes.Key{netip.MustParsePrefix("10.0.0.0/24"): a, netip.MustParsePrefix("10.0.1.1/32"): a}},
		{"b takes one from a", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: b, AllowedIPs: []net.IPNet{ipnet("10.0.1.1/32")}}}},
			map[netip.Prefix]wgtypes.Key{netip.MustParsePrefix("10.0.0.0/24"): a, netip.MustParsePrefix("10.0.1.1/32"): b}},
		{"replace empties a first", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: a, ReplaceAllowedIPs: true, AllowedIPs: []net.IPNet{ipnet("10.0.2.0/24")}}}},
			map[netip.Prefix]wgtypes.Key{netip.MustParsePrefix("10.0.2.0/24"): a, netip.MustParsePrefix("10.0.1.1/32"): b}},
		{"update-only of an absent peer does nothing", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: priv.PublicKey(), AllowedIPs: []net.IPNet{ipnet("10.9.0.0/16")}}, {PublicKey: k1.PublicKey(), UpdateOnly: true}, {PublicKey: wgtypes.Key{1}, UpdateOnly: true, AllowedIPs: []net.IPNet{ipnet("10.8.0.0/16")}}}},
			map[netip.Prefix]wgtypes.Key{netip.MustParsePrefix("10.0.2.0/24"): a, netip.MustParsePrefix("10.0.1.1/32"): b}},
		{"remove b drops its IPs", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: b, Remove: true}}},
			map[netip.Prefix]wgtypes.Key{netip.MustParsePrefix("10.0.2.0/24"): a}},
	}
	for _, s := range steps {
		if err := f.ConfigureDevice("wg0", s.cfg); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if diff := cmp.Diff(s.want, f.Owners("wg0")); diff != "" {
			t.Fatalf("%s: owners (-want +got):\n%s", s.name, diff)
		}
	}
	d, _ := f.Device("wg0")
	if d.ListenPort != 51871 || len(d.Peers) != 1 || d.Peers[0].PublicKey != a {
		t.Fatalf("device %+v", d)
	}
	calls := f.Calls()
	if len(calls) != len(steps)+1 || calls[1].After.ListenPort != 51871 {
		t.Fatalf("%d calls recorded, want %d", len(calls), len(steps)+1)
	}
	// The replace step is recorded with a's IPs gone before the new one is in.
	var sawEmpty bool
	for _, s := range f.Steps() {
		if s.Op == "replace-allowed-ips" && s.Peer == a {
			_, has := s.Owners[netip.MustParsePrefix("10.0.0.0/24")]
			sawEmpty = !has
		}
	}
	if !sawEmpty {
		t.Fatal("replace-allowed-ips step did not show the peer emptied")
	}
	boom := errors.New("boom")
	f.FailNext(boom)
	if err := f.ConfigureDevice("wg0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: a, Remove: true}}}); !errors.Is(err, boom) {
		t.Fatalf("FailNext: %v", err)
	}
	if d, _ := f.Device("wg0"); len(d.Peers) != 1 {
		t.Fatal("a failed call was applied")
	}
}
