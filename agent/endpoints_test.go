package agent

import (
	"strings"
	"testing"
)

func TestDecodeEndpoints(t *testing.T) {
	ep := func(id, ip string) string {
		return `{"containerID":"` + id + `","ifName":"eth0","netns":"","namespace":"default","podName":"p","ipv4":"` + ip + `","hostIfName":"lxc1","identity":1}`
	}
	tests := []struct {
		name string
		in   string
		want string // error substring; "" = ok
		n    int
	}{
		{name: "empty list", in: `{"version":1,"endpoints":[]}`},
		{name: "two", in: `{"version":1,"endpoints":[` + ep("a", "10.1.1.2") + `,` + ep("b", "10.1.1.3") + `]}`, n: 2},
		{name: "not JSON", in: `{`, want: "endpoints.json: unexpected EOF"},
		{name: "trailing data", in: `{"version":1,"endpoints":[]} {}`, want: "data after the JSON document"},
		{name: "unknown field", in: `{"version":1,"endpoints":[],"x":1}`, want: `unknown field "x"`},
		{name: "wrong version", in: `{"version":2,"endpoints":[]}`, want: "version 2, want 1"},
		{name: "bad ip", in: `{"version":1,"endpoints":[` + ep("a", "fd00::1") + `]}`, want: "endpoint 0: ipv4"},
		{name: "bad id", in: `{"version":1,"endpoints":[` + ep("-a", "10.1.1.2") + `]}`, want: "endpoint 0: containerID"},
		{name: "duplicate id", in: `{"version":1,"endpoints":[` + ep("a", "10.1.1.2") + `,` + ep("a", "10.1.1.3") + `]}`, want: "endpoint 1: a/eth0 already is endpoint 0"},
		{name: "duplicate ip", in: `{"version":1,"endpoints":[` + ep("a", "10.1.1.2") + `,` + ep("b", "10.1.1.2") + `]}`, want: "endpoint 1: ipv4 10.1.1.2 already used by endpoint 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps, err := DecodeEndpoints("endpoints.json", []byte(tt.in))
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want one containing %q", err, tt.want)
				}
				return
			}
			if err != nil || len(eps) != tt.n {
				t.Fatalf("got %d endpoints, %v; want %d", len(eps), err, tt.n)
			}
		})
	}
}
