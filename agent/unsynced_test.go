package agent

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/encryption/wireguard"
)

func TestKeepUnsynced(t *testing.T) {
	ka, kb, kc := wgtypes.Key{1}, wgtypes.Key{2}, wgtypes.Key{3}
	p := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name     string
		peers    []wireguard.Peer
		onDevice map[wgtypes.Key][]netip.Prefix
		want     []wireguard.Peer
	}{
		{
			name:  "device unreadable: unchanged",
			peers: []wireguard.Peer{{PublicKey: ka, AllowedIPs: p("10.2.1.0/24")}},
			want:  []wireguard.Peer{{PublicKey: ka, AllowedIPs: p("10.2.1.0/24")}},
		},
		{
			name:  "extra address kept until sync",
			peers: []wireguard.Peer{{PublicKey: ka, AllowedIPs: p("10.2.1.0/24")}},
			onDevice: map[wgtypes.Key][]netip.Prefix{
				ka: p("10.2.1.0/24", "10.77.0.5/32"),
			},
			want: []wireguard.Peer{{PublicKey: ka, AllowedIPs: p("10.2.1.0/24", "10.77.0.5/32")}},
		},
		{
			name:  "a newcomer takes no address another key holds on the device",
			peers: []wireguard.Peer{{PublicKey: kb, AllowedIPs: p("10.3.1.0/25", "198.18.2.11/32")}},
			onDevice: map[wgtypes.Key][]netip.Prefix{
				ka: p("10.3.1.0/24", "198.18.3.11/32"),
			},
			want: []wireguard.Peer{{PublicKey: kb, AllowedIPs: p("198.18.2.11/32")}},
		},
		{
			name: "before the sync an address stays with its device peer",
			peers: []wireguard.Peer{
				{PublicKey: ka, AllowedIPs: p("10.2.1.0/24")},
				{PublicKey: kb, AllowedIPs: p("10.77.0.0/24", "10.5.0.0/16")},
			},
			onDevice: map[wgtypes.Key][]netip.Prefix{ka: p("10.77.0.5/32"), kc: p("10.9.0.0/16")},
			want: []wireguard.Peer{
				{PublicKey: ka, AllowedIPs: p("10.2.1.0/24", "10.77.0.5/32")},
				{PublicKey: kb, AllowedIPs: p("10.5.0.0/16")},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keepUnsynced(tt.peers, tt.onDevice)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
