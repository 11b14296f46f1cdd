package plugin

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"
)

func TestParseNetConf(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantCode uint
		wantMsg  string
		check    func(t *testing.T, c *NetConf)
	}{
		{
			name: "defaults",
			in:   `{"cniVersion":"1.0.0","name":"strait","type":"strait-cni"}`,
			check: func(t *testing.T, c *NetConf) {
				if c.AgentSocket != "/var/run/strait/agent.sock" || c.IPAMDataDir != "/var/lib/strait/ipam" || c.Labels != nil {
					t.Errorf("defaults: %+v", c)
				}
			},
		},
		{
			name: "labels and runtime fields",
			in: `{"cniVersion":"1.0.0","name":"strait","type":"strait-cni","agentSocket":"/run/a.sock","ipamDataDir":"/d",
				"runtimeConfig":{"portMappings":[]},"capabilities":{"portMappings":true},"dns":{"nameservers":["10.0.0.10"]},
				"args":{"cni":{"labels":[{"key":"app","value":"web"},{"key":"tier","value":""}],"ips":["10.1.1.9"]},"other":{}}}`,
			check: func(t *testing.T, c *NetConf) {
				if d := cmp.Diff(map[string]string{"app": "web", "tier": ""}, c.Labels); d != "" {
					t.Error(d)
				}
				if c.AgentSocket != "/run/a.sock" || c.IPAMDataDir != "/d" || len(c.DNS.Nameservers) != 1 {
					t.Errorf("%+v", c)
				}
			},
		},
		{name: "truncated", in: `{"name":`, wantCode: types.ErrDecodingFailure, wantMsg: "netconf: invalid JSON: unexpected end"},
		{name: "syntax", in: `{"name" "a"}`, wantCode: types.ErrDecodingFailure, wantMsg: "netconf: invalid JSON at byte 9"},
		{name: "trailing", in: `{"name":"a"} {}`, wantCode: types.ErrDecodingFailure, wantMsg: "trailing data"},
		{name: "unknown field", in: `{"name":"a","agentSockett":"/x"}`, wantCode: types.ErrUnsupportedField, wantMsg: `netconf field "agentSockett": unknown field`},
		{name: "wrong type", in: `{"name":"a","agentSocket":5}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: `netconf field "agentSocket": JSON number where string is expected`},
		{name: "wrong type nested", in: `{"name":"a","dns":{"nameservers":"x"}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: `"dns.nameservers"`},
		{name: "no name", in: `{"cniVersion":"1.0.0"}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: `"name": missing`},
		{name: "relative dir", in: `{"name":"a","ipamDataDir":"ipam"}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: `"ipamDataDir"`},
		{name: "ipam plugin", in: `{"name":"a","ipam":{"type":"host-local"}}`, wantCode: types.ErrUnsupportedField, wantMsg: `"ipam"`},
		{name: "labels not a list", in: `{"name":"a","args":{"cni":{"labels":{}}}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "args.cni.labels"},
		{name: "label unknown field", in: `{"name":"a","args":{"cni":{"labels":[{"key":"a","val":"b"}]}}}`, wantCode: types.ErrUnsupportedField, wantMsg: `args.cni.labels field "val"`},
		{name: "label empty key", in: `{"name":"a","args":{"cni":{"labels":[{"key":"","value":"b"}]}}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: `"args.cni.labels[0].key": empty`},
		{name: "label twice", in: `{"name":"a","args":{"cni":{"labels":[{"key":"a"},{"key":"a"}]}}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: `"args.cni.labels[1].key": "a" given twice`},
		{name: "args.cni not object", in: `{"name":"a","args":{"cni":[]}}`, wantCode: types.ErrInvalidNetworkConfig, wantMsg: "args.cni"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseNetConf([]byte(tt.in))
			if tt.wantMsg != "" {
				var te *types.Error
				if !errors.As(err, &te) || te.Code != tt.wantCode || !strings.Contains(te.Msg, tt.wantMsg) {
					t.Fatalf("err = %v, want code %d containing %q", err, tt.wantCode, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		ns, pod string
		wantErr string
	}{
		{name: "empty", in: "", ns: "default"},
		{name: "kubelet", in: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u", ns: "shop", pod: "web-0"},
		{name: "unknown ignored", in: "IgnoreUnknown=true;FOO=bar;K8S_POD_NAME=p", ns: "default", pod: "p"},
		{name: "unknown", in: "FOO=bar", wantErr: "CNI_ARGS"},
		{name: "no value", in: "K8S_POD_NAME", wantErr: "CNI_ARGS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseArgs(tt.in)
			if tt.wantErr != "" {
				var te *types.Error
				if !errors.As(err, &te) || te.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(te.Msg, tt.wantErr) {
					t.Fatalf("err = %v, want code 4 containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(a.K8S_POD_NAMESPACE) != tt.ns || string(a.K8S_POD_NAME) != tt.pod {
				t.Errorf("got %q/%q, want %q/%q", a.K8S_POD_NAMESPACE, a.K8S_POD_NAME, tt.ns, tt.pod)
			}
		})
	}
}

func TestHostVethName(t *testing.T) {
	// sha256("abc/eth0") = 9b6f3f5c3a...; the name is lxc + 11 hex digits.
	tests := []struct{ id, ifn string }{{"abc", "eth0"}, {"abc", "eth1"}, {"abd", "eth0"}}
	seen := map[string]bool{}
	for _, tt := range tests {
		n := HostVethName(tt.id, tt.ifn)
		if len(n) != 14 || !strings.HasPrefix(n, "lxc") || strings.Trim(n[3:], "0123456789abcdef") != "" {
			t.Errorf("HostVethName(%q, %q) = %q", tt.id, tt.ifn, n)
		}
		if seen[n] {
			t.Errorf("HostVethName(%q, %q) = %q repeats", tt.id, tt.ifn, n)
		}
		seen[n] = true
		if HostVethName(tt.id, tt.ifn) != n {
			t.Error("not deterministic")
		}
	}
}

func FuzzParseNetConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"strait","type":"strait-cni","args":{"cni":{"labels":[{"key":"app","value":"web"}]}}}`))
	f.Add([]byte(`{"name":"a","agentSocket":5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseNetConf(data)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) || te.Msg == "" {
				t.Fatalf("error %v is not a CNI error with a message", err)
			}
			return
		}
		if c.Name == "" || !strings.HasPrefix(c.AgentSocket, "/") || !strings.HasPrefix(c.IPAMDataDir, "/") {
			t.Fatalf("accepted invalid config %+v", c)
		}
	})
}

func FuzzParseArgs(f *testing.F) {
	f.Add("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0")
	f.Add("K8S_POD_NAME")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(s)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) || te.Code != types.ErrInvalidEnvironmentVariables {
				t.Fatalf("error %v is not a code-4 CNI error", err)
			}
			return
		}
		if a.K8S_POD_NAMESPACE == "" {
			t.Fatal("empty namespace accepted")
		}
	})
}
