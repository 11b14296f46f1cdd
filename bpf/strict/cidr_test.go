package strict

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestValidateCIDRs(t *testing.T) {
	many := make([]netip.Prefix, MaxCIDRs+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	tests := []struct {
		name    string
		in      []netip.Prefix
		wantErr error
		wantMsg string
	}{
		{name: "empty", in: nil},
		{name: "one", in: prefixes("10.99.0.0/16")},
		{name: "overlapping allowed", in: prefixes("10.0.0.0/8", "10.99.0.0/16", "10.99.1.1/32")},
		{name: "exactly max", in: many[:MaxCIDRs]},
		{name: "too many", in: many, wantErr: ErrTooManyCIDRs, wantMsg: "4097, at most 4096"},
		{name: "zero prefix", in: []netip.Prefix{{}}, wantErr: ErrInvalidCIDR, wantMsg: "not a valid prefix"},
		{name: "ipv6", in: prefixes("fd00::/64"), wantErr: ErrInvalidCIDR, wantMsg: "fd00::/64: not IPv4"},
		{name: "ipv4-mapped ipv6", in: prefixes("::ffff:10.0.0.0/104"), wantErr: ErrInvalidCIDR, wantMsg: "not IPv4"},
		{name: "host bits", in: prefixes("10.99.1.2/16"), wantErr: ErrInvalidCIDR, wantMsg: "10.99.1.2/16: host bits set (want 10.99.0.0/16)"},
		{name: "default route", in: prefixes("0.0.0.0/0"), wantErr: ErrInvalidCIDR, wantMsg: "would drop all"},
		{name: "duplicate", in: prefixes("10.1.0.0/16", "10.2.0.0/16", "10.1.0.0/16"), wantErr: ErrInvalidCIDR, wantMsg: "10.1.0.0/16: listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateCIDRs(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ValidateCIDRs = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestParseCIDRs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []netip.Prefix
		wantErr error
		wantMsg string
	}{
		{name: "empty", in: "", want: nil},
		{name: "blank", in: "  ", want: nil},
		{name: "one", in: "10.99.0.0/16", want: prefixes("10.99.0.0/16")},
		{name: "sorted, blanks trimmed", in: " 10.2.0.0/16 ,10.1.0.0/24,10.1.0.0/16", want: prefixes("10.1.0.0/16", "10.1.0.0/24", "10.2.0.0/16")},
		{name: "empty element", in: "10.1.0.0/16,,10.2.0.0/16", wantErr: ErrInvalidCIDR, wantMsg: "element 2: empty"},
		{name: "trailing comma", in: "10.1.0.0/16,", wantErr: ErrInvalidCIDR, wantMsg: "element 2: empty"},
		{name: "no length", in: "10.1.0.0", wantErr: ErrInvalidCIDR, wantMsg: "element 1:"},
		{name: "garbage", in: "10.1.0.0/16,pods", wantErr: ErrInvalidCIDR, wantMsg: `element 2: netip.ParsePrefix("pods")`},
		{name: "ipv6", in: "fd00::/8", wantErr: ErrInvalidCIDR, wantMsg: "element 1: strict: invalid cidr: fd00::/8: not IPv4"},
		{name: "host bits", in: "10.1.0.0/16,10.2.3.4/16", wantErr: ErrInvalidCIDR, wantMsg: "element 2: strict: invalid cidr: 10.2.3.4/16: host bits set"},
		{name: "duplicate", in: "10.1.0.0/16,10.1.0.0/16", wantErr: ErrInvalidCIDR, wantMsg: "listed twice"},
		{name: "too many", in: strings.Repeat("10.1.0.0/16,", MaxCIDRs) + "10.2.0.0/16", wantErr: ErrTooManyCIDRs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCIDRs(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ParseCIDRs(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q does not contain %q", err, tt.wantMsg)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ParseCIDRs(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestReasonString(t *testing.T) {
	var got []string
	for _, r := range Reasons() {
		got = append(got, r.String())
	}
	got = append(got, Reason(numReasons).String())
	want := []string{"drop_strict", "drop_malformed", "pass_no_match", "pass_encrypted", "pass_not_ipv4", fmt.Sprintf("Reason(%d)", numReasons)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reason names (-want +got):\n%s", diff)
	}
	if len(Reasons()) != numReasons {
		t.Errorf("Reasons() lists %d reasons, want %d", len(Reasons()), numReasons)
	}
}

func TestCountersSums(t *testing.T) {
	c := Counters{ReasonDropStrict: 1, ReasonDropMalformed: 2, ReasonPassNoMatch: 4, ReasonPassEncrypted: 8, ReasonPassNotIPv4: 16}
	if got := c.Drops(); got != 3 {
		t.Errorf("Drops = %d, want 3", got)
	}
	if got := c.Passes(); got != 28 {
		t.Errorf("Passes = %d, want 28", got)
	}
}

// FuzzParseCIDRs checks that ParseCIDRs never panics, that every accepted set
// passes ValidateCIDRs and is sorted, and that it round-trips through its
// canonical comma-separated form.
func FuzzParseCIDRs(f *testing.F) {
	for _, s := range []string{"", "10.99.0.0/16", "10.1.0.0/16, 10.2.0.0/16", "10.1.2.3/8", "fd00::/8", "0.0.0.0/0", ",", "10.1.0.0/16,10.1.0.0/16"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseCIDRs(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidCIDR) && !errors.Is(err, ErrTooManyCIDRs) {
				t.Fatalf("ParseCIDRs(%q) error %v wraps neither sentinel", s, err)
			}
			return
		}
		if err := ValidateCIDRs(got); err != nil {
			t.Fatalf("ParseCIDRs(%q) accepted an invalid set: %v", s, err)
		}
		parts := make([]string, len(got))
		for i, p := range got {
			parts[i] = p.String()
		}
		again, err := ParseCIDRs(strings.Join(parts, ","))
		if err != nil {
			t.Fatalf("canonical form of %q rejected: %v", s, err)
		}
		if !slices.Equal(got, again) {
			t.Fatalf("round trip of %q: %v != %v", s, got, again)
		}
	})
}
