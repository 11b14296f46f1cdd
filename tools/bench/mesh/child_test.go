package mesh

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// childEnv, when set to a directory, turns the test binary into a single
// embedded etcd (data in that directory) that prints its client URL on
// stdout and exits when stdin is closed. BenchmarkWatchesOnEtcd runs the
// observed etcd this way so that etcd's process-global metrics are its own.
const childEnv = "STRAIT_BENCH_ETCD_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := runChildEtcd(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child etcd:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// runChildEtcd serves one etcd (configured as internal/etcdtest does) until
// stdin reaches EOF.
func runChildEtcd(dir string) error {
	ca, err := freePort()
	if err != nil {
		return err
	}
	pa, err := freePort()
	if err != nil {
		return err
	}
	client, peer := url.URL{Scheme: "http", Host: ca}, url.URL{Scheme: "http", Host: pa}
	cfg := embed.NewConfig()
	cfg.Name = "observed"
	cfg.Dir = dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		return fmt.Errorf("not ready after 30s")
	case err := <-e.Err():
		return err
	}
	fmt.Println(client.String())
	_, _ = io.Copy(io.Discard, os.Stdin) // parent closed stdin or died
	return nil
}

// childEtcd is the observed etcd in its own process.
type childEtcd struct {
	endpoint string
	port     int
}

// startChildEtcd re-executes the test binary as an etcd and returns its
// endpoint; Cleanup stops it by closing its stdin (then kills it by pid).
func startChildEtcd(tb testing.TB) *childEtcd {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+tb.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start child etcd: %v", err)
	}
	exited := make(chan struct{})
	tb.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	if err != nil {
		tb.Fatalf("child etcd gave no URL: %v", err)
	}
	ep := strings.TrimSpace(line)
	u, err := url.Parse(ep)
	if err != nil {
		tb.Fatalf("child etcd URL %q: %v", ep, err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		tb.Fatalf("child etcd URL %q: %v", ep, err)
	}
	return &childEtcd{endpoint: ep, port: port}
}

// watchCounts is what the observed etcd reports about watches.
type watchCounts struct {
	watchers int // etcd_debugging_mvcc_watcher_total: open watches
	streams  int // etcd_debugging_mvcc_watch_stream_total: gRPC watch streams
	conns    int // established TCP connections to its client port
}

// counts scrapes the child's /metrics and counts its server-side
// connections in /proc/net/tcp.
func (c *childEtcd) counts(tb testing.TB) watchCounts {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+"/metrics", nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("scrape %s/metrics: %v", c.endpoint, err)
	}
	defer resp.Body.Close()
	var wc watchCounts
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		var dst *int
		switch f[0] {
		case "etcd_debugging_mvcc_watcher_total":
			dst = &wc.watchers
		case "etcd_debugging_mvcc_watch_stream_total":
			dst = &wc.streams
		default:
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			tb.Fatalf("metric %s: %v", f[0], err)
		}
		*dst = int(v)
		found++
	}
	if found != 2 {
		tb.Fatalf("scrape %s/metrics: watcher gauges not found", c.endpoint)
	}
	wc.conns = establishedTo(tb, c.port)
	return wc
}

// establishedTo counts ESTABLISHED IPv4 TCP sockets whose local port is
// port, i.e. the server side of connections to the observed etcd.
func establishedTo(tb testing.TB, port int) int {
	tb.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		tb.Fatalf("read /proc/net/tcp: %v", err)
	}
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, l := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "01" {
			n++
		}
	}
	return n
}
