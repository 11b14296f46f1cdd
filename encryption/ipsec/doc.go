// Package ipsec is strait's IPsec (XFRM, ESP tunnel mode) encryption of pod
// traffic between nodes, with per-node-pair keys and hitless key rotation.
//
// # Parts
//
//   - ParseKeyFile reads the key file (Cilium's format, see ParseKeyFile),
//     validating every field; errors read "FILE:LINE: FIELD: REASON".
//   - DeriveNodePairKey turns the file's global key into one key per ordered
//     node pair (SHA-256/512 of key, IPs and boot IDs; GCM salt derived too).
//   - DesiredState is a pure function from (local node, remote nodes, live
//     keys, current key index) to the XFRM states and policies the local node
//     must hold. AssignNodeIDs gives nodes their 16-bit IDs.
//   - Reconciler applies a Desired through a Kernel: NetlinkKernel
//     (vishvananda/netlink) or MemKernel, an in-memory twin for tests.
//   - KeySet and Manager run it on a node: the Manager watches the key file
//     (fsnotify on its directory, so a Kubernetes secret's ..data symlink
//     swap is seen), keeps the running keys, syncs the kernel and calls
//     Advertise with the key index to publish (schema.Node.EncryptionKey).
//   - CheckKernel probes for ESP + rfc4106(gcm(aes)) so the agent can refuse
//     --encryption=ipsec up front on a kernel without them (this project's
//     build machines: XFRM policies yes, ESP no).
//   - MeasureFootprint counts states and policies per node for N remotes.
//
// Fed by: the agent, with its own Node and the mesh's nodes (IP, BootID,
// pod CIDRs, advertised EncryptionKey) from clustermesh state. Consumed by:
// the kernel; the agent publishes the advertised key index.
//
// # XFRM layout
//
// For local node L and remote R (same IP family as L's IP), per live key k:
//
//	OUT state  src L  dst R  spi WireSPI(k, id(L))  key derive(k; L, R, boot(L), boot(R))
//	IN  state  src R  dst L  spi WireSPI(k, id(R))  key derive(k; R, L, boot(R), boot(L))
//
// all ESP, tunnel mode, ESN, replay window 1024, reqid ReqID, no marks. Per
// local pod CIDR lc and remote pod CIDR rc, at PolicyPriority:
//
//	OUT  lc -> rc  tmpl L->R esp tunnel spi WireSPI(OutKey(R), id(L))   (absent while R advertises no usable key)
//	IN   rc -> lc  tmpl R->L esp tunnel (required: plaintext from R's pods is refused)
//	FWD  rc -> lc  tmpl R->L esp tunnel (required; decrypted packets are forwarded to pods)
//
// plus an OUT allow policy without template (bypass) between local pod
// CIDRs, so traffic that stays on the node (pod to pod, ICMP errors from the
// node's gateway address) is never blocked; and per local pod CIDR and block
// CIDR one OUT BLOCK policy at the worse BlockPriority, so that pod traffic to
// the mesh that no specific policy covers (a peer not ready, a policy being
// replaced) is dropped, never sent in plaintext. Counts: 2 states per remote
// (4 during a rotation), 3 policies per remote pod CIDR, plus the bypass and
// block policies (see ExampleMeasureFootprint).
//
// Differences from Cilium, on purpose: Cilium's BPF datapath marks packets
// (0xE00|SPI<<12|nodeID<<16 out, 0xD00|nodeID<<16 in) and its states and
// policies match those marks. strait has no marking datapath, so its
// policies select on pod CIDRs and the sender's node ID moves from the IN
// mark into the wire SPI (WireSPI): the kernel looks IN states up by
// (destination, SPI) only, and per-pair keys need one IN state per sender.
// Ownership is by reqid (ReqID) and, for the block and bypass policies
// (no template), by BlockPriority / PolicyPriority; nothing else in the XFRM
// tables is touched. Legacy key lines with a trailing per-IP address are
// refused, not honoured.
//
// Node IDs are 16 bits (1..65535), so a mesh holds at most 65,535 nodes.
// They come from a hash of "cluster/name" with deterministic probing on
// collision (AssignNodeIDs), so every node computes the same IDs without
// coordination; during a join two nodes can briefly disagree only about
// nodes on the newcomer's collision chain.
//
// # Rotation protocol
//
// The invariant (the one Cilium's issue #44335 broke): no node sends with a
// key index before the receiving peer has the IN state for it, and no node
// drops an IN state a peer may still send with.
//
//  1. A new key file line with SPI = current+1 (15 wraps to 1) arrives at a
//     node (each node sees the secret update at its own time). KeySet.Update
//     accepts it; an SPI reused with another key, a skipped SPI or a bad line
//     is refused with an error naming the line, and the running keys stay.
//  2. On its next Sync the node installs IN and OUT states for every live key
//     (old and new) towards every peer. Only after that reconcile succeeded
//     does it call Advertise(new): the advertisement means "I can decrypt the
//     new key from all peers I know".
//  3. Each node sends to peer R with OutKey(R): R's advertised index if it is
//     a live key here, or the own current index when R is one rotation ahead
//     (R still holds the old key), and nothing (block) when R advertises
//     nothing usable. So a node switches its OUT policy (an atomic in-place
//     policy update, the state already present) to the new SPI towards R only
//     after R advertised it.
//  4. The replaced key stays live for RotationDelay (default 5 min) after the
//     node switched; then its states are removed. The delay must exceed the
//     time an advertisement takes to reach every peer, and operators must
//     give every node the new file within it.
//
// TestRotationThreeNodes and TestRotationUnevenPropagation check the
// invariant after every single kernel write on three simulated nodes; the VM
// test TestKernelESPRotationUnderTraffic rotates under a ping-like UDP
// exchange and a TCP stream and requires zero loss and zero XFRM error
// counters.
//
// Known limits: a peer reboot (new boot ID) replaces the pair's states by
// delete+add (the kernel cannot change a state's key): packets of that
// instant are dropped by the policies, never leaked. A node that joins is
// sent to as soon as it advertises, which may be before some peer has
// learnt about it and installed the peer's IN state for it: that peer drops
// until it syncs (one EncryptionKey cannot acknowledge per-peer state).
// ESN and the replay window are set on add but not read back (the netlink
// library does not parse them), so the Reconciler compares addresses, SPI,
// reqid, algorithms and keys.
//
// # Errors
//
// ErrKeyFile (with *KeyFileError), ErrNoKeys, ErrRotation: the key file or a
// new version of it is refused. ErrBootID, ErrNode, ErrTooManyNodes, ErrNoKey:
// inputs of DesiredState (a bad remote is left out and reported in
// Desired.Skipped instead). ErrNotSupported: the kernel cannot do it.
// Kernel write errors are wrapped with the object they concern.
package ipsec
