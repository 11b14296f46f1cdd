package endpointapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/strait-net/strait/internal/testkit"
)

func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithLeakCheck(m, "strait/agent/endpointapi."))
}

// backend records what reaches it and returns the configured error.
type backend struct {
	mu    sync.Mutex
	puts  []Endpoint
	dels  []string
	err   error
	node  NodeInfo
	eps   []EndpointStatus
	stats Status
}

func (b *backend) Node(context.Context) (NodeInfo, error) { return b.node, b.err }
func (b *backend) PutEndpoint(_ context.Context, ep Endpoint) (EndpointStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.puts = append(b.puts, ep)
	if b.err != nil {
		return EndpointStatus{}, b.err
	}
	return EndpointStatus{Endpoint: ep, Identity: 4242}, nil
}
func (b *backend) DeleteEndpoint(_ context.Context, id, ifn string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dels = append(b.dels, id+"/"+ifn)
	return b.err
}
func (b *backend) Endpoints(context.Context) ([]EndpointStatus, error) { return b.eps, b.err }
func (b *backend) Status(context.Context) (Status, error)              { return b.stats, b.err }

var cmpAddr = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func goodEndpoint() Endpoint {
	return Endpoint{ContainerID: "abc123", IfName: "eth0", Netns: "/var/run/netns/p1", Namespace: "shop", PodName: "web-0",
		Labels: map[string]string{"app": "web"}, IPv4: netip.MustParseAddr("10.1.1.2"), HostIfName: "lxc0123456789a"}
}

func body(t *testing.T, ep Endpoint) string {
	b, err := json.Marshal(ep)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerPutValidation(t *testing.T) {
	good := body(t, goodEndpoint())
	tests := []struct {
		name     string
		path     string
		body     string
		wantCode int
		wantErr  string // substring of the error message
	}{
		{name: "ok", path: "/v1/endpoints/abc123/eth0", body: good, wantCode: 200},
		{name: "not JSON", path: "/v1/endpoints/abc123/eth0", body: `{"containerID":`, wantCode: 400, wantErr: "endpoint body: unexpected EOF"},
		{name: "unknown field", path: "/v1/endpoints/abc123/eth0", body: strings.Replace(good, `"ifName"`, `"ifname2":"x","ifName"`, 1), wantCode: 400, wantErr: `unknown field "ifname2"`},
		{name: "wrong type", path: "/v1/endpoints/abc123/eth0", body: strings.Replace(good, `"podName":"web-0"`, `"podName":7`, 1), wantCode: 400, wantErr: "Endpoint.podName"},
		{name: "bad ipv4", path: "/v1/endpoints/abc123/eth0", body: strings.Replace(good, `"10.1.1.2"`, `"10.1.1"`, 1), wantCode: 400, wantErr: "endpoint body"},
		{name: "ipv6", path: "/v1/endpoints/abc123/eth0", body: strings.Replace(good, `"10.1.1.2"`, `"fd00::2"`, 1), wantCode: 400, wantErr: "ipv4"},
		{name: "no ipv4", path: "/v1/endpoints/abc123/eth0", body: strings.Replace(good, `"ipv4":"10.1.1.2",`, ``, 1), wantCode: 400, wantErr: "ipv4"},
		{name: "no namespace", path: "/v1/endpoints/abc123/eth0", body: strings.Replace(good, `"namespace":"shop"`, `"namespace":""`, 1), wantCode: 400, wantErr: "namespace: empty"},
		{name: "URL mismatch", path: "/v1/endpoints/other/eth0", body: good, wantCode: 400, wantErr: "body names abc123/eth0, URL other/eth0"},
		{name: "bad container ID", path: "/v1/endpoints/-bad/eth0", body: strings.Replace(good, `"abc123"`, `"-bad"`, 1), wantCode: 400, wantErr: `containerID "-bad"`},
		{name: "bad ifName", path: "/v1/endpoints/abc123/a%20b", body: strings.Replace(good, `"eth0"`, `"a b"`, 1), wantCode: 400, wantErr: `ifName "a b"`},
		{name: "too long ifName", path: "/v1/endpoints/abc123/abcdefghijklmnop", body: strings.Replace(good, `"eth0"`, `"abcdefghijklmnop"`, 1), wantCode: 400, wantErr: "ifName"},
		{name: "empty label key", path: "/v1/endpoints/abc123/eth0", body: strings.Replace(good, `"app":"web"`, `"":"web"`, 1), wantCode: 400, wantErr: "labels:"},
		{name: "long label value", path: "/v1/endpoints/abc123/eth0", body: strings.Replace(good, `"app":"web"`, `"app":"`+strings.Repeat("v", 64)+`"`, 1), wantCode: 400, wantErr: "labels:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &backend{}
			h := Handler(b, testkit.Logger(t))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, tt.path, strings.NewReader(tt.body)))
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode == 200 {
				var st EndpointStatus
				if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(EndpointStatus{Endpoint: goodEndpoint(), Identity: 4242}, st, cmpAddr); d != "" {
					t.Errorf("reply (-want +got):\n%s", d)
				}
				return
			}
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tt.wantErr) {
				t.Fatalf("error body %s, want one containing %q", rec.Body, tt.wantErr)
			}
			if len(b.puts) != 0 {
				t.Errorf("backend called with a bad request: %v", b.puts)
			}
		})
	}
}

func TestHandlerErrorsAndMethods(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		path     string
		err      error
		wantCode int
		wantBody string
	}{
		{name: "bad request from backend", method: "DELETE", path: "/v1/endpoints/abc/eth0", err: &BadRequest{errors.New("no such pod")}, wantCode: 400, wantBody: `{"error":"no such pod"}`},
		{name: "backend failure", method: "GET", path: "/v1/node", err: errors.New("kvstore down"), wantCode: 500, wantBody: `{"error":"kvstore down"}`},
		{name: "delete ok", method: "DELETE", path: "/v1/endpoints/abc/eth0", wantCode: 204},
		{name: "delete bad id", method: "DELETE", path: "/v1/endpoints/..abc%2Fx/eth0", wantCode: 400, wantBody: "containerID"},
		{name: "empty list", method: "GET", path: "/v1/endpoints", wantCode: 200, wantBody: "[]"},
		{name: "wrong method", method: "POST", path: "/v1/node", wantCode: 405},
		{name: "unknown path", method: "GET", path: "/v2/node", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &backend{err: tt.err}
			rec := httptest.NewRecorder()
			Handler(b, testkit.Logger(t)).ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body %q, want it to contain %q", rec.Body, tt.wantBody)
			}
		})
	}
}

// serve runs Serve for b on a fresh socket and returns its path once it answers.
func serve(t *testing.T, b Backend) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "scn-api-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "sub", "agent.sock")
	// A stale socket file from a previous run is replaced.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.RunBackground(t, func(ctx context.Context) error { return Serve(ctx, testkit.Logger(t), path, b) })
	ctx := testkit.Context(t, time.Minute)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return path
		}
		select {
		case <-ctx.Done():
			t.Fatal("socket never answered")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestClientRoundTrip(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	b := &backend{
		node:  NodeInfo{Cluster: "c1", ClusterID: 1, Node: "n1", NodeIP: netip.MustParseAddr("198.18.1.11"), PodCIDRv4: netip.MustParsePrefix("10.1.1.0/24"), PodMTU: 1420},
		eps:   []EndpointStatus{{Endpoint: goodEndpoint(), Identity: 7}},
		stats: Status{Cluster: "c1", Encryption: "wireguard", KVStore: "ok", Peers: []PeerStatus{{Node: "c2/n1", AllowedIPs: []string{"10.2.1.0/24"}}}},
	}
	path := serve(t, b)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %s: %v %v", path, fi.Mode(), err)
	}
	c := NewClient(path)
	n, err := c.Node(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(b.node, n, cmpAddr); d != "" {
		t.Errorf("Node (-want +got):\n%s", d)
	}
	st, err := c.PutEndpoint(ctx, goodEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(EndpointStatus{Endpoint: goodEndpoint(), Identity: 4242}, st, cmpAddr); d != "" {
		t.Errorf("PutEndpoint (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]Endpoint{goodEndpoint()}, b.puts, cmpAddr); d != "" {
		t.Errorf("backend got (-want +got):\n%s", d)
	}
	if err := c.DeleteEndpoint(ctx, "abc123", "eth0"); err != nil {
		t.Fatal(err)
	}
	eps, err := c.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(b.eps, eps, cmpAddr); d != "" {
		t.Errorf("Endpoints (-want +got):\n%s", d)
	}
	s, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(b.stats, s); d != "" {
		t.Errorf("Status (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"abc123/eth0"}, b.dels); d != "" {
		t.Errorf("deletes (-want +got):\n%s", d)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := testkit.Context(t, time.Minute)
	t.Run("4xx and 5xx become *Error", func(t *testing.T) {
		b := &backend{err: &BadRequest{errors.New(`labels: "x"`)}}
		c := NewClient(serve(t, b))
		_, err := c.PutEndpoint(ctx, goodEndpoint())
		var e *Error
		if !errors.As(err, &e) || e.Status != 400 || e.Message != `labels: "x"` {
			t.Fatalf("err = %#v", err)
		}
		if err.Error() != `agent: labels: "x" (HTTP 400)` {
			t.Errorf("message %q", err)
		}
		b.err = errors.New("not ready")
		_, err = c.Node(ctx)
		if !errors.As(err, &e) || e.Status != 500 || e.Message != "not ready" {
			t.Fatalf("err = %#v", err)
		}
		// The client validates nothing itself: a bad endpoint is the server's 400.
		bad := goodEndpoint()
		bad.Namespace = ""
		_, err = c.PutEndpoint(ctx, bad)
		if !errors.As(err, &e) || e.Status != 400 || e.Message != "namespace: empty" {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("unreachable names the socket", func(t *testing.T) {
		_, err := NewClient("/nonexistent/scn/agent.sock").Node(ctx)
		var e *Error
		if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), "agent socket /nonexistent/scn/agent.sock") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("non-JSON error and reply", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "scn-api-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		path := filepath.Join(dir, "s.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/node" {
				http.Error(w, "proxy says no", http.StatusBadGateway)
				return
			}
			fmt.Fprint(w, "{not json")
		})}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(l) }()
		t.Cleanup(func() { srv.Close(); <-done })
		c := NewClient(path)
		_, err = c.Node(ctx)
		var e *Error
		if !errors.As(err, &e) || e.Status != 502 || e.Message != "proxy says no" {
			t.Fatalf("err = %#v", err)
		}
		_, err = c.Status(ctx)
		if err == nil || !strings.Contains(err.Error(), "decoding GET /v1/status") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestValidate(t *testing.T) {
	many := map[string]string{}
	for i := range 65 {
		many[fmt.Sprint("k", i)] = "v"
	}
	tests := []struct {
		name    string
		mod     func(*Endpoint)
		wantErr string
	}{
		{name: "ok", mod: func(*Endpoint) {}},
		{name: "no labels", mod: func(e *Endpoint) { e.Labels = nil }},
		{name: "too many labels", mod: func(e *Endpoint) { e.Labels = many }, wantErr: "labels: 65 labels"},
		{name: "container ID too long", mod: func(e *Endpoint) { e.ContainerID = strings.Repeat("a", 257) }, wantErr: "containerID"},
		{name: "ifName dot", mod: func(e *Endpoint) { e.IfName = "." }, wantErr: "ifName"},
		{name: "ifName colon", mod: func(e *Endpoint) { e.IfName = "eth0:1" }, wantErr: "ifName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := goodEndpoint()
			tt.mod(&e)
			err := e.Validate()
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzPutBody feeds arbitrary bodies to the PUT handler: it never panics,
// answers 200 or 400 with a JSON error, and the backend only ever sees
// endpoints that validate and match the URL.
func FuzzPutBody(f *testing.F) {
	good, _ := json.Marshal(goodEndpoint())
	f.Add(string(good))
	f.Add(`{"containerID":"abc123","ifName":"eth0","namespace":"x","ipv4":"1.2.3.4"}`)
	f.Add(`{"containerID":"abc123","ifName":"eth0","namespace":"x","ipv4":"::1"}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, in string) {
		b := &backend{}
		h := Handler(b, testkit.Logger(t))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/v1/endpoints/abc123/eth0", strings.NewReader(in)))
		switch rec.Code {
		case 200:
			if len(b.puts) != 1 {
				t.Fatalf("200 with %d backend calls", len(b.puts))
			}
			ep := b.puts[0]
			if err := ep.Validate(); err != nil || ep.ContainerID != "abc123" || ep.IfName != "eth0" {
				t.Fatalf("backend got %+v (%v)", ep, err)
			}
		case 400:
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || len(b.puts) != 0 {
				t.Fatalf("400 body %q, backend calls %d", rec.Body, len(b.puts))
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, in)
		}
	})
}
