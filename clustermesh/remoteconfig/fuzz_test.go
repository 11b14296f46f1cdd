package remoteconfig

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, and what
// it accepts must satisfy its own rules and survive a round trip.
// Seed corpus: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("endpoints:\n- https://c2.mesh.cilium.io:2379\ntrusted-ca-file: /ca.crt\nkey-file: /tls.key\ncert-file: /tls.crt\n"))
	f.Add([]byte("endpoints: [http://[fd00::1]:2379]\ncilium-host-aliases:\n- {hostname: a, ips: [192.0.2.1]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if len(got.Endpoints) == 0 {
			t.Fatal("accepted a file without endpoints")
		}
		for _, ep := range got.Endpoints {
			scheme, err := validateEndpoint(ep)
			if err != nil {
				t.Fatalf("accepted endpoint %q: %v", ep, err)
			}
			if (scheme == "https") != (got.TrustedCAFile != "") {
				t.Fatalf("accepted %s endpoint with trusted-ca-file %q", scheme, got.TrustedCAFile)
			}
		}
		if (got.CertFile == "") != (got.KeyFile == "") {
			t.Fatalf("accepted cert-file %q with key-file %q", got.CertFile, got.KeyFile)
		}
		out, err := yaml.Marshal(clusterFile{
			Endpoints:     got.Endpoints,
			TrustedCAFile: got.TrustedCAFile,
			CertFile:      got.CertFile,
			KeyFile:       got.KeyFile,
			HostAliases:   got.HostAliases,
		})
		if err != nil {
			t.Fatalf("marshal accepted file: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if diff := cmp.Diff(got, again, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}
