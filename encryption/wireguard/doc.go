// Package wireguard holds strait's WireGuard datapath pieces: the node's
// private key (LoadOrCreateKey), public keys as published in the mesh
// (ParsePublicKey), the device MTU (DeviceMTU), the device itself
// (EnsureDevice, DeleteDevice) and its peers (PeerReconciler).
//
// Who feeds it: strait-agent, with its --state-dir (the key lives in
// <state-dir>/KeyFileName, raw 32 bytes, mode 0600), its --wireguard-*
// flags and the underlay MTU; the desired peers come from the agent's view of
// local and remote nodes (schema.Node: WireguardPubKey, node IP, pod CIDRs and
// pod addresses). Duplicate public keys across nodes are the agent's to
// reject when it computes the desired set; Reconcile rejects what reaches it.
// Who consumes it: the agent publishes the public key in its Node before its
// first ipcache entry, and routes remote pod CIDRs into the device.
//
// Lifecycle. The device outlives the agent on purpose: an agent restart must
// not drop traffic. A kernel device is a netlink link (type wireguard); a
// userspace device is a separate strait-wireguard process (cmd/strait-wireguard,
// wireguard-go) started detached in its own session, serving the UAPI socket
// SocketDir/<name>.sock. Both are managed through one wgctrl code path. The
// agent calls EnsureDevice at every start: an existing device is adopted and
// only settings that differ are changed (never its peers); only DeleteDevice
// (teardown, tests) stops the process and removes the link. EnsureDevice,
// DeleteDevice and the wgctrl client for a kernel device act on the network
// namespace of the calling thread.
//
// PeerReconciler keeps no state: each Reconcile reads the device, computes
// the difference and applies it in one ConfigureDevice call, without ever
// leaving a desired allowed IP absent (see Reconcile). Stale peers go only
// when the caller says its view has synced (prune).
//
// Errors are wrapped sentinels (ErrKeyFile, ErrPublicKey, ErrMTU,
// ErrInvalidConfig, ErrInvalidPeer, ErrNoTUN, ErrPortInUse,
// ErrNoKernelSupport, ErrUserspaceStart, ErrNotWireGuard) with the file,
// device, port or peer named in the message. Package wgfake is an in-memory
// twin of the devices for unit tests; the real-kernel tests in this package
// (root) build strait-wireguard and run two namespaces through a tunnel.
package wireguard
