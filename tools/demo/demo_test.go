package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
	"github.com/strait-net/strait/tools/lab"
)

func netipOf(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the demo builds network namespaces and runs agents in them")
	}
}

// testName is a lab name unique to this test process.
func testName(suffix string) string {
	return fmt.Sprintf("t%d%s", os.Getpid()%100000, suffix)
}

// checkNothingLeft fails the test if namespaces or processes of the demo
// are still there, or its work directory.
func checkNothingLeft(t *testing.T, name, dir string) {
	t.Helper()
	netns, procs, err := Leftovers(name, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(netns) > 0 || len(procs) > 0 {
		t.Errorf("left behind: namespaces %v, processes %v", netns, procs)
	}
	if exists(dir) {
		t.Errorf("work directory %s left behind", dir)
	}
}

// cleanupDemo removes whatever a failed test left (and says so).
func cleanupDemo(t *testing.T, dir string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := Down(ctx, testkit.Logger(t), dir); err != nil && !errors.Is(err, ErrNoDemo) {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// TestRunDefaults is issue 7's demo with its defaults (2 clusters × 2
// nodes × 2 pods, WireGuard): every pair reached, nothing in plaintext,
// encrypted bytes counted, every node with every other as its peer, and
// nothing left afterwards.
func TestRunDefaults(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 5*time.Minute)
	dir := filepath.Join(t.TempDir(), "demo")
	name := testName("d")
	cleanupDemo(t, dir)
	var out bytes.Buffer
	sum, err := Run(ctx, testkit.Logger(t), Options{Dir: dir, BinDir: binDir(t), Name: name}, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	const nodes, pods = 2 * 2, 2 * 2 * 2
	if want := pods * (pods - 4); sum.Pairs != want || sum.TCPReached != want || sum.ICMPReached != want {
		t.Errorf("pairs %d, reached TCP %d ICMP %d; want %d each", sum.Pairs, sum.TCPReached, sum.ICMPReached, want)
	}
	if sum.PlaintextPackets != 0 || sum.MarkerHits != 0 || sum.OtherPackets != 0 {
		t.Errorf("plaintext %d, marker %d, other %d: want 0", sum.PlaintextPackets, sum.MarkerHits, sum.OtherPackets)
	}
	if sum.EncryptedBytes == 0 || sum.EncryptedPackets == 0 {
		t.Errorf("encrypted %d bytes in %d packets: want some", sum.EncryptedBytes, sum.EncryptedPackets)
	}
	if sum.ExpectedPeers != nodes-1 || len(sum.Peers) != nodes {
		t.Errorf("expected peers %d over %d nodes, want %d over %d", sum.ExpectedPeers, len(sum.Peers), nodes-1, nodes)
	}
	for n, p := range sum.Peers {
		if p != nodes-1 {
			t.Errorf("node %s: %d peers, want %d", n, p, nodes-1)
		}
	}
	if sum.FirstEncrypted <= 0 {
		t.Errorf("no first encrypted cross-cluster packet measured")
	}
	if sum.Kept || sum.Times.Teardown <= 0 {
		t.Errorf("kept %v, teardown %v: want torn down", sum.Kept, sum.Times.Teardown)
	}
	for _, want := range []string{"first encrypted cross-cluster packet", "32/32", "everything torn down"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	t.Logf("total %v (build %v, connect %v, ready %v, traffic %v, teardown %v); first encrypted cross-cluster packet %v after connect",
		sum.Times.Total, sum.Times.Build, sum.Times.Connect, sum.Times.Ready, sum.Times.Traffic, sum.Times.Teardown, sum.FirstEncrypted)
	checkNothingLeft(t, name, dir)
}

// TestKeepThenDown: --keep leaves the topology (namespaces, agents,
// apiservers) running; Down removes all of it.
func TestKeepThenDown(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 5*time.Minute)
	dir := filepath.Join(t.TempDir(), "demo")
	name := testName("k")
	cleanupDemo(t, dir)
	var out bytes.Buffer
	sum, err := Run(ctx, testkit.Logger(t), Options{Dir: dir, BinDir: binDir(t), Name: name, Nodes: 1, Pods: 1, Keep: true}, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Kept || sum.Pairs != 2 || sum.TCPReached != 2 || sum.ICMPReached != 2 {
		t.Fatalf("summary %+v: want kept with 2 pairs reached", sum)
	}
	if !strings.Contains(out.String(), "demo down --dir "+dir) {
		t.Errorf("output does not say how to remove the demo")
	}
	netns, procs, err := Leftovers(name, dir)
	if err != nil {
		t.Fatal(err)
	}
	// underlay, 2 apiservers, 2 nodes, 2 pods; 2 apiservers and 2 agents
	// (and their WireGuard processes).
	if len(netns) != 7 || len(procs) < 4 {
		t.Fatalf("kept demo: namespaces %v, processes %v; want 7 namespaces and at least 4 processes", netns, procs)
	}
	// The kept mesh still works: a pod reaches a pod of the other cluster.
	c1p, c2p := lab.Prefix+name+"-c1n1p1", netipOf(t, sum.ExampleRemoteIP)
	if err := lab.Ping(ctx, c1p, c2p, 0x4242, 1, []byte("kept")); err != nil {
		t.Errorf("ping across the kept mesh: %v", err)
	}
	if err := Down(ctx, testkit.Logger(t), dir); err != nil {
		t.Fatal(err)
	}
	checkNothingLeft(t, name, dir)
}

// TestDownAfterCrash: the demo's process dies (SIGKILL) while its
// clusters come up; Down, from the lab record alone, removes every
// namespace and process it had started.
func TestDownAfterCrash(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 3*time.Minute)
	dir := filepath.Join(t.TempDir(), "demo")
	name := testName("c")
	cleanupDemo(t, dir)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run=^$")
	child.Env = append(os.Environ(), envChildDir+"="+dir, envChildName+"="+name, envChildBin+"="+binDir(t))
	var childOut bytes.Buffer
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the first apiserver runs: namespaces exist, processes
	// run detached, the lab is half built.
	pidFile := filepath.Join(dir, "cluster1", "apiserver.pid")
	for {
		if _, procs, _ := Leftovers(name, dir); len(procs) > 0 && exists(pidFile) {
			break
		}
		if ctx.Err() != nil {
			child.Process.Kill()
			child.Wait()
			t.Fatalf("the child never started an apiserver; its output:\n%s", childOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	netns, procs, err := Leftovers(name, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(netns) == 0 || len(procs) == 0 {
		t.Fatalf("after the crash: namespaces %v, processes %v; want both (the crash must leave something)", netns, procs)
	}
	t.Logf("after the crash: %d namespaces, processes %v", len(netns), procs)
	if err := Down(ctx, testkit.Logger(t), dir); err != nil {
		t.Fatal(err)
	}
	checkNothingLeft(t, name, dir)
	// A second Down has nothing to do.
	if err := Down(ctx, testkit.Logger(t), dir); !errors.Is(err, ErrNoDemo) {
		t.Errorf("second Down: %v, want ErrNoDemo", err)
	}
}

// TestIPsecMode: on a kernel without ESP the agents refuse ipsec mode and
// the demo fails in "build clusters" with their message, leaving nothing;
// on a kernel with ESP it proves ESP on the underlay.
func TestIPsecMode(t *testing.T) {
	needRoot(t)
	ctx := testkit.Context(t, 4*time.Minute)
	dir := filepath.Join(t.TempDir(), "demo")
	name := testName("i")
	cleanupDemo(t, dir)
	var out bytes.Buffer
	sum, err := Run(ctx, testkit.Logger(t), Options{Dir: dir, BinDir: binDir(t), Name: name, Nodes: 1, Pods: 1, Encryption: "ipsec"}, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		var se *StepError
		if !errors.As(err, &se) || se.Step != StepClusters || !strings.Contains(err.Error(), "ipsec") {
			t.Fatalf("error %v: want a failure of step %q mentioning ipsec", err, StepClusters)
		}
		t.Logf("ipsec refused as expected on this kernel: %v", err)
		netns, procs, lerr := Leftovers(name, dir)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if len(netns) > 0 || len(procs) > 0 {
			t.Errorf("left behind after the failure: namespaces %v, processes %v", netns, procs)
		}
		return
	}
	if sum.EncryptedPackets == 0 || sum.PlaintextPackets != 0 {
		t.Errorf("ipsec: %d encrypted, %d plaintext packets", sum.EncryptedPackets, sum.PlaintextPackets)
	}
	checkNothingLeft(t, name, dir)
}
