package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// FuzzFlags: any command line (arguments separated by NUL) is parsed and
// validated without a panic; a validated one has a usable config.
func FuzzFlags(f *testing.F) {
	f.Add("--cluster-name=cluster1\x00--cluster-id=1\x00--node-name=n1\x00--node-ip=198.18.1.11\x00--pod-cidr=10.1.1.0/24")
	f.Add("--strict-mode-cidr=10.0.0.0/8,,\x00--metrics-addr=:0\x00--kvstore-endpoints=https://[::1]:2379")
	f.Fuzz(func(t *testing.T, line string) {
		fl := &flags{}
		fs := pflag.NewFlagSet("strait-agent", pflag.ContinueOnError)
		fs.SetOutput(discard{})
		fl.register(fs)
		if err := fs.Parse(strings.Split(line, "\x00")); err != nil {
			return
		}
		s, err := fl.validate()
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid --") {
				t.Fatalf("error does not name a flag: %v", err)
			}
			return
		}
		if !s.cfg.NodeIP.Is4() || !s.cfg.PodCIDR.IsValid() || s.cfg.ClusterID == 0 {
			t.Fatalf("validated settings incomplete: %+v", s)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
