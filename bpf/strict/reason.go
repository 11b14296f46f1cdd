package strict

import "fmt"

// Reason is why the program let a packet pass or dropped it: the index of its
// counter in the strict_counters map. The values mirror enum strict_reason in
// bpf/strict.c.
type Reason uint32

// Verdict reasons.
const (
	// ReasonDropStrict: IPv4 to a strict CIDR without the encryption mark.
	ReasonDropStrict Reason = 0
	// ReasonDropMalformed: IPv4 ethertype, but the header is short or not IPv4.
	ReasonDropMalformed Reason = 1
	// ReasonPassNoMatch: IPv4 outside every strict CIDR.
	ReasonPassNoMatch Reason = 2
	// ReasonPassEncrypted: IPv4 to a strict CIDR carrying the mark WireGuard
	// (0x1E00) or IPsec (0x0E00) sets on packets it emitted (mark&0x0F00 == 0x0E00).
	ReasonPassEncrypted Reason = 3
	// ReasonPassNotIPv4: IPv6, ARP and every other protocol.
	ReasonPassNotIPv4 Reason = 4

	numReasons = 5
)

// String returns the reason's metric label.
func (r Reason) String() string {
	switch r {
	case ReasonDropStrict:
		return "drop_strict"
	case ReasonDropMalformed:
		return "drop_malformed"
	case ReasonPassNoMatch:
		return "pass_no_match"
	case ReasonPassEncrypted:
		return "pass_encrypted"
	case ReasonPassNotIPv4:
		return "pass_not_ipv4"
	}
	return fmt.Sprintf("Reason(%d)", uint32(r))
}

// Reasons lists every reason in counter order.
func Reasons() []Reason {
	return []Reason{ReasonDropStrict, ReasonDropMalformed, ReasonPassNoMatch, ReasonPassEncrypted, ReasonPassNotIPv4}
}

// Counters holds the packet count per reason, summed over CPUs, indexed by
// Reason. They carry on across Attach calls that replace strait's filter (an
// agent restart) and restart from zero only when the filter was detached or
// the map layout changed between strait versions (Prometheus counters tolerate
// that reset).
type Counters [numReasons]uint64

// Drops is the number of packets dropped for any reason.
func (c Counters) Drops() uint64 {
	return c[ReasonDropStrict] + c[ReasonDropMalformed]
}

// Passes is the number of packets let through for any reason.
func (c Counters) Passes() uint64 {
	return c[ReasonPassNoMatch] + c[ReasonPassEncrypted] + c[ReasonPassNotIPv4]
}
