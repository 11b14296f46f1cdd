package wireguard

import (
	"errors"
	"time"
)

const (
	// DefaultDevice is the name of the WireGuard link.
	DefaultDevice = "strait-wg0"
	// DefaultPort is the UDP port every node's device listens on (Cilium's).
	DefaultPort = 51871
	// Overhead is what WireGuard adds to a packet in the worst case: 32 bytes
	// of WireGuard message, 40 of outer IPv6 header and 8 of UDP header.
	Overhead = 80
	// FirewallMark is set on the device's own encrypted UDP packets, so the
	// datapath does not encrypt them again (Cilium's MagicMarkWireGuardEncrypted).
	FirewallMark = 0x1E00
	// KeyFileName is the private key's file name inside the agent's state dir.
	KeyFileName = "wireguard.key"
	// UserspaceBinaryName is the userspace device's program (cmd/strait-wireguard).
	UserspaceBinaryName = "strait-wireguard"
	// LogFileName and PidFileName are the userspace process's files in
	// DeviceConfig.StateDir.
	LogFileName = "strait-wireguard.log"
	PidFileName = "strait-wireguard.pid"
	// SocketDir holds the userspace devices' UAPI sockets (<name>.sock); it is
	// shared by every network namespace of a mount namespace.
	SocketDir = "/var/run/wireguard"
	// PersistentKeepalive is the keepalive interval the agent gives every
	// peer. Turning it on makes the device send a keepalive at once, so the
	// handshake runs when the peer is added instead of on the first pod
	// packet, and the keepalives keep the session (and its rekeying) alive
	// while pods are idle. Without it, two nodes whose pods start sending to
	// each other at the same moment both initiate: each consumes the other's
	// initiation before the response to its own, which discards its own
	// ("Received invalid response message"), both end up responders that may
	// not send, and nothing flows until one initiates again, no sooner than
	// 5 s (REKEY_TIMEOUT) later — and again never if the traffic retries in
	// step.
	PersistentKeepalive = 25 * time.Second
)

// Exit codes of strait-wireguard that EnsureDevice maps to sentinels.
const (
	ExitFailure      = 1 // any other failure after start-up (message on stderr)
	ExitUsage        = 2 // bad flags or interface name
	ExitNoTUN        = 3 // /dev/net/tun missing or unusable
	ExitSocketInUse  = 4 // another process serves SocketDir/<name>.sock
	ExitTUNCreateErr = 5 // the TUN link could not be created (e.g. name taken)
)

// Errors returned (wrapped, with detail) by this package.
var (
	// ErrKeyFile: the private key file exists but is unusable (wrong size,
	// not a regular file, mode looser than 0600, all zero).
	ErrKeyFile = errors.New("bad wireguard key file")
	// ErrPublicKey: a public key string does not parse.
	ErrPublicKey = errors.New("bad wireguard public key")
	// ErrMTU: DeviceMTU cannot produce a usable MTU.
	ErrMTU = errors.New("bad wireguard MTU")
	// ErrInvalidConfig: a DeviceConfig field is out of range.
	ErrInvalidConfig = errors.New("invalid wireguard device config")
	// ErrInvalidPeer: a desired Peer is invalid or conflicts with another.
	ErrInvalidPeer = errors.New("invalid wireguard peer")
	// ErrNoTUN: userspace mode without a usable /dev/net/tun.
	ErrNoTUN = errors.New("/dev/net/tun missing: userspace WireGuard needs the tun module")
	// ErrPortInUse: the listen port is already bound in the network namespace.
	ErrPortInUse = errors.New("wireguard listen port in use")
	// ErrNoKernelSupport: Mode kernel but the kernel has no wireguard link type.
	ErrNoKernelSupport = errors.New("kernel has no wireguard support")
	// ErrUserspaceStart: strait-wireguard could not be started or exited
	// before its device appeared.
	ErrUserspaceStart = errors.New("userspace wireguard did not start")
	// ErrNotWireGuard: a link with the device's name exists but is not a
	// WireGuard device this network namespace can manage (or is of the other
	// Mode); it is never deleted automatically.
	ErrNotWireGuard = errors.New("link is not a usable wireguard device")
)
