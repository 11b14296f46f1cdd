package main

import (
	"context"
	"io"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strait-net/strait/internal/binaries"
)

func TestSummarize(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	got := summarize(s)
	want := RTT{Mean: 50500 * time.Microsecond, P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, N: 100}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("summarize (-want +got):\n%s", d)
	}
	if got := summarize(nil); got != (RTT{}) {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

// TestMeasureLoopback runs both measurements over loopback in the test's
// own namespace (no root needed) to check they complete and report.
func TestMeasureLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := netip.MustParseAddrPort("127.0.0.1:0")
	ln, err := listen("", addr)
	if err != nil {
		t.Fatal(err)
	}
	// A port that was free a moment ago.
	free := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	bps, err := throughput(ctx, "", "", free, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if bps <= 0 {
		t.Errorf("throughput %v", bps)
	}
	r, err := rtt(ctx, "", "", free, 200)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 200 || r.P50 <= 0 || r.P99 < r.P50 {
		t.Errorf("rtt %+v", r)
	}
}

// TestHandPair builds the wireguard-go baselines and measures briefly over
// the tunnel, the veth and the routed tunnel.
func TestHandPair(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and TUN devices")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := os.Getenv(binaries.EnvDir)
	if bin == "" {
		root, err := binaries.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		bin = t.TempDir()
		if err := binaries.Build(ctx, root, bin, "./cmd/strait-wireguard"); err != nil {
			t.Fatal(err)
		}
	}
	p, err := newHandPair(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	r, err := newRoutedPair(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	for _, c := range []struct {
		src, dst string
		addr     netip.Addr
	}{
		{p.a, p.b, p.wgB}, {p.a, p.b, p.vethB}, {r.podA, r.podB, r.dst},
	} {
		bps, err := throughput(ctx, c.src, c.dst, netip.AddrPortFrom(c.addr, 5201), time.Second)
		if err != nil {
			t.Fatalf("%s: %v", c.addr, err)
		}
		rt, err := rtt(ctx, c.src, c.dst, netip.AddrPortFrom(c.addr, 5202), 500)
		if err != nil {
			t.Fatalf("%s: %v", c.addr, err)
		}
		t.Logf("%s: %.2f Gbit/s, RTT p50 %v", c.addr, bps*8/1e9, rt.P50)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{name: "defaults", args: nil},
		{name: "set", args: []string{"-duration", "3s", "-rtt-iterations", "1000", "-rounds", "3"}},
		{name: "rounds too short", args: []string{"-duration", "2s", "-rounds", "5"}, wantErr: true},
		{name: "short duration", args: []string{"-duration", "10ms"}, wantErr: true},
		{name: "few iterations", args: []string{"-rtt-iterations", "5"}, wantErr: true},
		{name: "unknown flag", args: []string{"-x"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Errorf("parseFlags(%q) err = %v, wantErr %v", tt.args, err, tt.wantErr)
			}
		})
	}
}
