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
	type path struct {
		src, dst string
		addr     netip.Addr
	}
	paths := []path{{p.a, p.b, p.wgB}, {p.a, p.b, p.vethB}}
	for _, v := range []routedVariant{
		{tag: "a", fwmark: true, nodeIP: true, routeMTU: true, cniPods: true, noIPv6: true},
		{tag: "s", sharedSession: true, noqueue: true},
		{tag: "p", plaintext: true},
	} {
		r, err := newRoutedPair(ctx, bin, t.TempDir(), v)
		if err != nil {
			t.Fatalf("routed pair %+v: %v", v, err)
		}
		defer r.close()
		if want := map[bool]int{true: 0, false: 2}[v.plaintext]; len(r.pids()) != want {
			t.Errorf("routed pair %+v: %d wireguard-go processes, want %d", v, len(r.pids()), want)
		}
		paths = append(paths, path{r.podA, r.podB, r.dst})
	}
	for _, c := range paths {
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
		{name: "set", args: []string{"-duration", "3s", "-rtt-iterations", "1000", "-rounds", "3", "-differences"}},
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

func TestRoundRatiosAndMedian(t *testing.T) {
	tests := []struct {
		name       string
		a, b       []float64
		want       []float64
		wantMedian float64
	}{
		{name: "odd", a: []float64{2, 3, 9}, b: []float64{1, 3, 3}, want: []float64{2, 1, 3}, wantMedian: 2},
		{name: "even", a: []float64{1, 2, 3, 4}, b: []float64{1, 1, 1, 1}, want: []float64{1, 2, 3, 4}, wantMedian: 2.5},
		{name: "zero base and ragged", a: []float64{1, 2, 5}, b: []float64{0, 4}, want: []float64{0.5}, wantMedian: 0.5},
		{name: "empty", want: nil, wantMedian: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := roundRatios(tt.a, tt.b)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("roundRatios (-want +got):\n%s", d)
			}
			if m := median(got); m != tt.wantMedian {
				t.Errorf("median(%v) = %v, want %v", got, m, tt.wantMedian)
			}
		})
	}
}

// TestCPUTime burns CPU in this process until its accounted CPU time
// grows, and checks that unreadable pids count as zero.
func TestCPUTime(t *testing.T) {
	if got := cpuTime([]int{-1}); got != 0 {
		t.Errorf("cpuTime(-1) = %v, want 0", got)
	}
	self := []int{os.Getpid()}
	start := cpuTime(self)
	deadline := time.Now().Add(20 * time.Second)
	x := 0
	for cpuTime(self) <= start {
		if time.Now().After(deadline) {
			t.Fatalf("CPU time of this process stayed at %v while spinning", start)
		}
		for i := range 1_000_000 {
			x += i
		}
	}
	_ = x
}
