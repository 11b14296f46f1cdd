package wireguard_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strait-net/strait/encryption/wireguard"
	"github.com/strait-net/strait/internal/testkit"
)

// TestUserspaceHandshakeAtAdd: a peer added with the agent's keepalive
// completes its handshake without any pod traffic, on both sides. Without
// it the first handshake waits for the first packet, and when both nodes'
// pods send at the same moment both devices initiate, each discards its own
// initiation ("Received invalid response message") and nothing flows for at
// least REKEY_TIMEOUT (5 s), repeatedly when the traffic retries in step.
func TestUserspaceHandshakeAtAdd(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, time.Minute)
	a, b := twoNodes(ctx, t, wireguard.ModeUserspace)
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		self, peer := pair[0], pair[1]
		p := desiredPeer(peer)
		p.Keepalive = wireguard.PersistentKeepalive
		r := wireguard.NewPeerReconciler(self.wg, self.cfg.Name, testkit.Logger(t))
		if _, err := r.Reconcile(ctx, []wireguard.Peer{p}, true); err != nil {
			t.Fatal(err)
		}
	}
	// No traffic is sent: only the keepalive turned on at the add can start
	// the handshake. Wait (bounded by ctx) until both sides report it.
	for _, n := range []*node{a, b} {
		if err := waitHandshake(ctx, n); err != nil {
			t.Fatal(err)
		}
		d, err := n.wg.Device(n.cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Peers[0].PersistentKeepaliveInterval; got != wireguard.PersistentKeepalive {
			t.Errorf("%s: keepalive %s, want %s", n.cfg.Name, got, wireguard.PersistentKeepalive)
		}
	}
}

// waitHandshake polls n's device until its only peer has a handshake.
func waitHandshake(ctx context.Context, n *node) error {
	for {
		d, err := n.wg.Device(n.cfg.Name)
		if err != nil {
			return fmt.Errorf("read %s: %w", n.cfg.Name, err)
		}
		if len(d.Peers) != 1 {
			return fmt.Errorf("%s: %d peers, want 1", n.cfg.Name, len(d.Peers))
		}
		if !d.Peers[0].LastHandshakeTime.IsZero() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: no handshake with its peer without traffic: %w", n.cfg.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
