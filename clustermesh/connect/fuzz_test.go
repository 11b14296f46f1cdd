package connect

import (
	"errors"
	"testing"
)

// FuzzParseContext: any input either parses into a context that passes
// its own rules, or fails with ErrContext; never a panic.
// Seed corpus: testdata/fuzz/FuzzParseContext.
func FuzzParseContext(f *testing.F) {
	f.Add([]byte("cluster: c1\nid: 1\nendpoints: [\"https://127.0.0.1:2379\"]\ncertDir: certs\nclustermeshConfigDir: mesh\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseContext(data, "/base")
		if err != nil {
			if !errors.Is(err, ErrContext) {
				t.Fatalf("error %v does not wrap ErrContext", err)
			}
			return
		}
		if c.Cluster == "" || c.ID == 0 || uint32(c.ID) > uint32(c.Max) || len(c.Endpoints) == 0 || c.CertDir == "" || c.ClustermeshConfigDir == "" {
			t.Fatalf("accepted an incomplete context: %+v", c)
		}
		for _, ep := range c.Endpoints {
			if err := checkEndpoint(ep); err != nil {
				t.Fatalf("accepted endpoint %q: %v", ep, err)
			}
		}
	})
}
