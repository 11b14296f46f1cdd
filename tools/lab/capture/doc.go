// Package capture records and classifies every frame on a lab's underlay,
// to prove that pod traffic crosses it only encrypted.
//
// Start opens an AF_PACKET socket (ETH_P_ALL, golang.org/x/sys/unix) inside
// the underlay network namespace (tools/lab's "sl-<lab>-ul", which holds the
// bridge and every bridge port), without binding it to one interface: a
// frame forwarded between two bridge ports never reaches the bridge device
// itself, so the socket listens on all of the namespace's interfaces and
// skips the outgoing copies (each frame is counted once, on the port it
// entered). Frames are parsed (Ethernet, 802.1Q, ARP, IPv4 with UDP, TCP,
// ICMP, ESP) by ParseFrame and sorted by Config.Classify into classes:
//
//   - ClassWireGuard: UDP between two node addresses with port 51871 on
//     either side;
//   - ClassIPsec: IP protocol 50 (ESP);
//   - ClassControlPlane: TCP to or from an apiserver address;
//   - ClassPlaintextPod: any IPv4 packet with a pod-CIDR source or
//     destination (checked first: it is the one class that must never
//     appear);
//   - ClassARP, ClassOther (IPv6, other IPv4, unparsable frames).
//
// Stats counts packets and bytes per class, the time of the first
// encrypted packet, the encrypted byte count, a few sample descriptions per
// class, and how many frames contained Config.Marker (a byte string the
// tests put into their TCP payloads: it must never be seen on the wire).
//
// Lifecycle: Start → Stats (any time, a snapshot) → Stop (returns the final
// Stats; the socket is closed). The reader polls with a 100 ms receive
// timeout, so Stop returns promptly. Errors: Start fails when the namespace
// or the socket cannot be opened (needs root); a receive error other than
// a timeout ends the capture and is returned by Stop.
package capture
