package strict

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// MaxCIDRs is the most strict CIDRs one program holds (the LPM trie's
// max_entries in bpf/strict.c).
const MaxCIDRs = 4096

// Errors returned by this package. Each is wrapped with the detail (the CIDR,
// the interface); test with errors.Is.
var (
	// ErrInvalidCIDR: a strict CIDR is not a valid, canonical, non-default
	// IPv4 prefix, or appears twice.
	ErrInvalidCIDR = errors.New("strict: invalid cidr")
	// ErrTooManyCIDRs: more than MaxCIDRs prefixes.
	ErrTooManyCIDRs = errors.New("strict: too many cidrs")
	// ErrNotEthernet: the link has no Ethernet header (the program reads the
	// IPv4 header at offset 14).
	ErrNotEthernet = errors.New("strict: link is not an ethernet device")
	// ErrFilterConflict: a filter that is not strait's holds strait's fixed
	// priority and handle on the egress hook; it is never replaced.
	ErrFilterConflict = errors.New("strict: foreign filter at strait's priority and handle")
	// ErrClosed: the Program was closed or released.
	ErrClosed = errors.New("strict: program closed")
)

// ValidateCIDRs checks a strict CIDR set: at most MaxCIDRs prefixes, each a
// valid IPv4 prefix (not IPv4-mapped IPv6) in canonical form (no host bits
// set: 10.1.0.0/16, not 10.1.2.3/16), not 0.0.0.0/0 (which would drop all
// unencrypted traffic of the node, the control plane's included), and no
// prefix twice. Overlapping prefixes are allowed. Errors wrap ErrInvalidCIDR
// or ErrTooManyCIDRs and name the offending prefix.
func ValidateCIDRs(cidrs []netip.Prefix) error {
	if len(cidrs) > MaxCIDRs {
		return fmt.Errorf("%w: %d, at most %d", ErrTooManyCIDRs, len(cidrs), MaxCIDRs)
	}
	seen := make(map[netip.Prefix]struct{}, len(cidrs))
	for _, p := range cidrs {
		if err := validateCIDR(p); err != nil {
			return err
		}
		if _, dup := seen[p]; dup {
			return fmt.Errorf("%w: %s: listed twice", ErrInvalidCIDR, p)
		}
		seen[p] = struct{}{}
	}
	return nil
}

func validateCIDR(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("%w: %q: not a valid prefix", ErrInvalidCIDR, p.String())
	case !p.Addr().Is4():
		return fmt.Errorf("%w: %s: not IPv4 (strict mode covers IPv4 only)", ErrInvalidCIDR, p)
	case p != p.Masked():
		return fmt.Errorf("%w: %s: host bits set (want %s)", ErrInvalidCIDR, p, p.Masked())
	case p.Bits() == 0:
		return fmt.Errorf("%w: %s: would drop all unencrypted traffic", ErrInvalidCIDR, p)
	}
	return nil
}

// ParseCIDRs parses a comma-separated list of IPv4 prefixes, the form of the
// agent's --strict-mode-cidr flag ("10.1.0.0/16,10.2.0.0/16"). Blanks around
// elements are ignored; an empty or all-blank string is the empty set. The
// result is sorted and validated with ValidateCIDRs; errors name the element
// (1-based) and wrap ErrInvalidCIDR or ErrTooManyCIDRs.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	fields := strings.Split(s, ",")
	if len(fields) > MaxCIDRs {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyCIDRs, len(fields), MaxCIDRs)
	}
	out := make([]netip.Prefix, 0, len(fields))
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("%w: element %d: empty", ErrInvalidCIDR, i+1)
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%w: element %d: %w", ErrInvalidCIDR, i+1, err)
		}
		if err := validateCIDR(p); err != nil {
			return nil, fmt.Errorf("element %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	sortPrefixes(out)
	if err := ValidateCIDRs(out); err != nil {
		return nil, err
	}
	return out, nil
}

// sortPrefixes orders by address, then prefix length.
func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
}
