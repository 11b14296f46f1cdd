package agent

import (
	"encoding/json"
	"testing"

	"github.com/strait-net/strait/clustermesh/kvstore"
)

// FuzzDecodeEndpoints: any input either decodes to endpoints that each
// pass validation and re-encode to an equal set, or fails with an error;
// never a panic.
func FuzzDecodeEndpoints(f *testing.F) {
	f.Add([]byte(`{"version":1,"endpoints":[]}`))
	f.Add([]byte(`{"version":1,"endpoints":[{"containerID":"c1","ifName":"eth0","netns":"/proc/1/ns/net","namespace":"default","podName":"p","ipv4":"10.1.1.2","hostIfName":"lxc1","identity":65537}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		eps, err := DecodeEndpoints("endpoints.json", data)
		if err != nil {
			return
		}
		for i := range eps {
			if err := eps[i].Validate(); err != nil {
				t.Fatalf("decoded endpoint %d fails validation: %v", i, err)
			}
		}
		b, err := json.Marshal(endpointsState{Version: endpointsFileVersion, Endpoints: eps})
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeEndpoints("endpoints.json", b)
		if err != nil || len(again) != len(eps) {
			t.Fatalf("re-decoding %s: %v (%d endpoints, want %d)", b, err, len(again), len(eps))
		}
	})
}

// FuzzCheckRemoteNode: the diagnostic decoder of cached remote nodes never
// panics and names a node for every problem.
func FuzzCheckRemoteNode(f *testing.F) {
	f.Add("cilium/cache/nodes/v1/c2/n1", []byte(`{"Name":"n1","Cluster":"c2","WireguardPubKey":"xyz"}`))
	f.Add("cilium/cache/nodes/v1/c2/n1", []byte(`{"WireguardPubKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Add("cilium/cache/nodes/v1/c2", []byte(`{`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		p, bad := checkRemoteNode(kvstore.Event{Kind: kvstore.EventUpsert, Key: key, Value: value})
		if bad && (p.Node == "" || p.Reason == "") {
			t.Fatalf("problem without node or reason: %+v", p)
		}
	})
}
