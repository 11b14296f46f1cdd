// Package wgfake is an in-memory twin of the WireGuard devices wgctrl
// manages, implementing wireguard.Client for unit tests of the peer
// reconciler and of the agent.
//
// It models the device semantics the reconciler relies on: an allowed IP
// belongs to at most one peer, and adding it to a peer takes it from its
// previous owner (WireGuard's routing trie); ReplaceAllowedIPs empties the
// peer first; Remove deletes a peer and its allowed IPs; UpdateOnly skips an
// absent peer; a peer with the device's own public key is ignored; Device of
// an unknown name fails with os.ErrNotExist, like wgctrl.
//
// Every ConfigureDevice call is recorded (Calls) with the device state after
// it, and every elementary step inside a call (a peer removed, its allowed
// IPs cleared, one allowed IP inserted) is recorded (Steps) with the owner of
// every allowed IP at that moment, so tests can assert that no address was
// ever absent during a change. FailNext injects a ConfigureDevice error.
// Fake is safe for concurrent use. It holds no kernel state.
package wgfake
