package datapath

import (
	"encoding/base64"
	"testing"
)

// FuzzParsePublicKey: a key either parses to a non-zero key whose base64
// form is the input, or is refused with an error; never a panic.
func FuzzParsePublicKey(f *testing.F) {
	f.Add("VRksOB6ZNds4oXWIGfSVpvc0gBhcOWFmzvTDcyvULlI=")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublicKey(s)
		if err != nil {
			return
		}
		if k == [32]byte{} {
			t.Fatalf("zero key accepted from %q", s)
		}
		if got := base64.StdEncoding.EncodeToString(k[:]); got != s {
			t.Fatalf("%q parsed to %q", s, got)
		}
	})
}
