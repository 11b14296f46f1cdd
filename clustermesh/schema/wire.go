package schema

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// addrString is the JSON form of Go's net.IP: its String form, "" for none.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// addrField parses the net.IP string s of field; "" is no address.
func addrField(key, field, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return netip.Addr{}, errCause(key, field, ErrInvalidValue, err, err.Error())
	}
	return a, nil
}

// familyAddrField is addrField requiring IPv4 (want4) or IPv6.
func familyAddrField(key, field, s string, want4 bool) (netip.Addr, error) {
	a, err := addrField(key, field, s)
	if err != nil || !a.IsValid() {
		return a, err
	}
	if a.Is4() != want4 {
		return netip.Addr{}, errField(key, field, ErrInvalidValue, "address "+strconv.Quote(s)+" is of the wrong family")
	}
	return a, nil
}

// parseAddr parses an address the way net.ParseIP would accept it.
func parseAddr(s string) (netip.Addr, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errorString("invalid IP address " + strconv.Quote(s))
	}
	if addr.Zone() != "" {
		return netip.Addr{}, errorString("IP address " + strconv.Quote(s) + " has a zone")
	}
	return addr.Unmap(), nil
}

// wireCIDR is Cilium's cidr.CIDR, an embedded *net.IPNet: the address and
// the mask as base64 bytes, e.g. {"IP":"10.0.0.0","Mask":"////AA=="}.
type wireCIDR struct {
	IP   string `json:"IP"`
	Mask []byte `json:"Mask"`
}

func toWireCIDR(p netip.Prefix) *wireCIDR {
	if !p.IsValid() {
		return nil
	}
	return &wireCIDR{IP: p.Addr().String(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// cidrField converts a CIDR of field; nil is no CIDR. want4 selects the
// family the CIDR must have.
func cidrField(key, field string, c *wireCIDR, want4 bool) (netip.Prefix, error) {
	if c == nil {
		return netip.Prefix{}, nil
	}
	addr, err := familyAddrField(key, field, c.IP, want4)
	if err != nil {
		return netip.Prefix{}, err
	}
	if !addr.IsValid() {
		return netip.Prefix{}, errField(key, field, ErrInvalidValue, "CIDR without an IP")
	}
	bits, err := maskBits(c.Mask, addr)
	if err != nil {
		return netip.Prefix{}, errCause(key, field, ErrInvalidValue, err, err.Error())
	}
	return netip.PrefixFrom(addr, bits), nil
}

func cidrsField(key, field string, cs []*wireCIDR, want4 bool) ([]netip.Prefix, error) {
	if cs == nil {
		return nil, nil
	}
	out := make([]netip.Prefix, len(cs))
	for i, c := range cs {
		f := field + "[" + strconv.Itoa(i) + "]"
		if c == nil {
			return nil, errField(key, f, ErrInvalidValue, "null CIDR")
		}
		p, err := cidrField(key, f, c, want4)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// maskBits returns the prefix length of a net.IPMask belonging to addr. The
// mask must be canonical and as long as the address (4 bytes for IPv4, 16
// for IPv6).
func maskBits(mask []byte, addr netip.Addr) (int, error) {
	if len(mask)*8 != addr.BitLen() {
		return 0, errorString("mask of " + strconv.Itoa(len(mask)) + " bytes does not fit address " + addr.String())
	}
	ones, bits := net.IPMask(mask).Size()
	if bits == 0 {
		return 0, errorString("mask " + net.IPMask(mask).String() + " is not canonical")
	}
	return ones, nil
}

func toWireCIDRs(ps []netip.Prefix) []*wireCIDR {
	if ps == nil {
		return nil
	}
	out := make([]*wireCIDR, len(ps))
	for i, p := range ps {
		out[i] = toWireCIDR(p)
	}
	return out
}

// decodeJSON unmarshals value into dst and turns JSON errors into *Error
// naming the field where encoding/json tells it.
func decodeJSON(key string, value []byte, dst any) error {
	err := json.Unmarshal(value, dst)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		return errCause(key, field, ErrInvalidValue, err, "cannot decode JSON "+typeErr.Value+" into "+typeErr.Type.String())
	}
	return errCause(key, "", ErrInvalidValue, err, "invalid JSON: "+err.Error())
}

// checkName checks a name that is also a path element of a key.
func checkName(key, field, name string) error {
	switch {
	case name == "":
		return errField(key, field, ErrInvalidValue, "must not be empty")
	case strings.Contains(name, "/"):
		return errField(key, field, ErrInvalidValue, "value "+strconv.Quote(name)+" must not contain '/'")
	}
	return nil
}
