package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/internal/testkit"
)

// buildBinaries returns a directory with strait-agent, strait-wireguard
// and strait-apiserver: $STRAIT_BIN_DIR when set, else a fresh build of
// just those three.
func buildBinaries(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("STRAIT_BIN_DIR"); d != "" {
		return d
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/strait-net/strait/cmd/strait-agent",
		"github.com/strait-net/strait/cmd/strait-wireguard", "github.com/strait-net/strait/cmd/strait-apiserver")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// process is a background process whose output goes to a log file.
type process struct {
	cmd *exec.Cmd
	log string
}

func startProcess(t *testing.T, log string, args ...string) *process {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", args[0], err)
	}
	p := &process{cmd: cmd, log: log}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and waits.
func (p *process) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop on SIGTERM; log:\n%s", p.cmd.Path, readFile(p.log))
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// inNetns runs fn on a thread inside the named network namespace.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.GetFromName(name)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// TestTwoNodes runs the real binaries: a cluster's strait-apiserver and two
// agents (userspace WireGuard, strict mode), each node a network namespace
// of its own on a veth pair. Pod addresses on the nodes' loopbacks reach
// each other over TCP through the WireGuard peers the agents programmed; an
// agent restart (SIGTERM) leaves the connection working and the restarted
// agent adopts the device, peers and routes.
func TestTwoNodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and WireGuard devices")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun for the userspace WireGuard device")
	}
	ctx := testkit.Context(t, 2*time.Minute)
	bin := buildBinaries(t)
	work := t.TempDir()
	pid := os.Getpid()
	nsName := func(n int) string { return fmt.Sprintf("sag-%d-n%d", pid, n) }
	for n := 1; n <= 2; n++ {
		sh(t, "ip", "netns", "add", nsName(n))
		name := nsName(n)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	}
	va, vb := fmt.Sprintf("sag%da", pid), fmt.Sprintf("sag%db", pid)
	sh(t, "ip", "link", "add", va, "type", "veth", "peer", "name", vb)
	sh(t, "ip", "link", "set", va, "netns", nsName(1), "name", "eth0")
	sh(t, "ip", "link", "set", vb, "netns", nsName(2), "name", "eth0")
	for n := 1; n <= 2; n++ {
		sh(t, "ip", "-n", nsName(n), "addr", "add", fmt.Sprintf("198.18.1.1%d/24", n), "dev", "eth0")
		sh(t, "ip", "-n", nsName(n), "link", "set", "eth0", "up")
		sh(t, "ip", "-n", nsName(n), "link", "set", "lo", "up")
		sh(t, "ip", "-n", nsName(n), "addr", "add", fmt.Sprintf("10.1.%d.1/32", n), "dev", "lo")
		if err := os.MkdirAll(filepath.Join(work, fmt.Sprint("n", n), "run-wireguard"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	certs := filepath.Join(work, "certs")
	sh(t, filepath.Join(bin, "strait-apiserver"), "certs", "generate", "--cluster-name", "cluster1", "--out", certs, "--hosts", "198.18.1.11")
	startProcess(t, filepath.Join(work, "apiserver.log"), "ip", "netns", "exec", nsName(1), filepath.Join(bin, "strait-apiserver"), "run",
		"--cluster-name", "cluster1", "--cluster-id", "1", "--cert-dir", certs, "--data-dir", filepath.Join(work, "etcd"),
		"--listen-client-urls", "https://198.18.1.11:2379", "--listen-peer-url", "http://127.0.0.1:2380")
	agents := make([]*process, 3)
	startAgent := func(n int, log string) {
		dir := filepath.Join(work, fmt.Sprint("n", n))
		script := fmt.Sprintf("mount --make-rprivate / && mount --bind %s /run/wireguard && exec %s "+
			"--cluster-name cluster1 --cluster-id 1 --node-name node%d --node-ip 198.18.1.1%d --pod-cidr 10.1.%d.0/24 "+
			"--kvstore-endpoints https://198.18.1.11:2379 --kvstore-ca-file %s/ca.crt --kvstore-cert-file %s/admin.crt "+
			"--kvstore-key-file %s/admin.key --state-dir %s --socket %s/agent.sock --wireguard-mode userspace "+
			"--strict-mode-cidr 10.1.0.0/16 --log-level debug",
			filepath.Join(dir, "run-wireguard"), filepath.Join(bin, "strait-agent"), n, n, n, certs, certs, certs, dir, dir)
		agents[n] = startProcess(t, filepath.Join(work, log), "ip", "netns", "exec", nsName(n), "unshare", "-m", "sh", "-c", script)
		t.Cleanup(func() {
			// The userspace device outlives the agent by design: stop it.
			if b, err := os.ReadFile(filepath.Join(dir, "strait-wireguard.pid")); err == nil {
				var p int
				if _, err := fmt.Sscan(string(b), &p); err == nil && p > 1 {
					_ = syscall.Kill(p, syscall.SIGTERM)
				}
			}
		})
	}
	startAgent(1, "agent1.log")
	startAgent(2, "agent2.log")

	// Wait for each agent to have the other as a peer.
	status := func(n int) (endpointapi.Status, error) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return endpointapi.NewClient(filepath.Join(work, fmt.Sprint("n", n), "agent.sock")).Status(sctx)
	}
	for n := 1; n <= 2; n++ {
		for {
			st, err := status(n)
			if err == nil && len(st.Peers) == 1 && st.MeshSynced {
				if st.DeviceType != "userspace" || len(st.Problems) != 0 {
					t.Fatalf("agent %d status %+v", n, st)
				}
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("agent %d has no peer: %v, %+v\nlog:\n%s", n, err, st, readFile(agents[n].log))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	// A TCP connection from pod address 10.1.1.1 (node 1) to 10.1.2.1
	// (node 2), through strait-wg0 on both sides.
	var ln net.Listener
	if err := inNetns(nsName(2), func() (err error) { ln, err = net.Listen("tcp", "10.1.2.1:7777"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	var conn net.Conn
	if err := inNetns(nsName(1), func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(10, 1, 1, 1)}, Timeout: 10 * time.Second}
		conn, err = d.DialContext(ctx, "tcp", "10.1.2.1:7777")
		return err
	}); err != nil {
		t.Fatalf("dial through WireGuard: %v\nagent1:\n%s", err, readFile(agents[1].log))
	}
	defer conn.Close()
	echo := func(msg string) {
		t.Helper()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatalf("write: %v", err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: got %q, %v", msg, buf, err)
		}
	}
	echo("before restart")
	st, err := status(1)
	if err != nil || st.Peers[0].LastHandshake.IsZero() || st.Peers[0].RxBytes == 0 {
		t.Fatalf("agent 1 peer after traffic: %+v, %v", st.Peers, err)
	}

	// Restart agent 1: the connection keeps working meanwhile, and the new
	// agent changes nothing.
	agents[1].stop(t)
	echo("while the agent is down")
	startAgent(1, "agent1-restart.log")
	for {
		st, err := status(1)
		if err == nil && st.MeshSynced && len(st.Peers) == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("restarted agent: %v\n%s", err, readFile(filepath.Join(work, "agent1-restart.log")))
		case <-time.After(100 * time.Millisecond):
		}
	}
	echo("after restart")
	log := readFile(filepath.Join(work, "agent1-restart.log"))
	if !strings.Contains(log, "wireguard device adopted") {
		t.Errorf("restarted agent did not adopt the device:\n%s", log)
	}
	if strings.Contains(log, "Datapath reconciled") {
		t.Errorf("restarted agent changed peers or routes:\n%s", log)
	}

	// Strict mode: with strait's route replaced by a plaintext route over
	// the underlay (a foreign route the agent leaves alone), a new
	// connection to the remote pod must not get through: its packets to
	// 10.1.0.0/16 leave eth0 unencrypted and the filter drops them. The
	// agent is stopped first (the filter outlives it), or its next resync
	// would put its own route back between the del and the add.
	agents[1].stop(t)
	sh(t, "ip", "-n", nsName(1), "route", "del", "10.1.2.0/24")
	sh(t, "ip", "-n", nsName(1), "route", "add", "10.1.2.0/24", "via", "198.18.1.12", "dev", "eth0", "proto", "boot")
	if err := inNetns(nsName(1), func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(10, 1, 1, 1)}, Timeout: 3 * time.Second}
		c, err := d.DialContext(ctx, "tcp", "10.1.2.1:7777")
		if err == nil {
			c.Close()
			return errors.New("plaintext connection to a remote pod got through strict mode")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
