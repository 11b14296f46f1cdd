package vme2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strait-net/strait/encryption/ipsec"
	"github.com/strait-net/strait/internal/binaries"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// bin finds (STRAIT_BIN_DIR in the VM) or builds the binaries once, for
// the tests that get past their kernel check; TestMain removes a built
// directory.
var bin struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		binaries.Remove(bin.dir)
	}
	os.Exit(code)
}

// binDir returns the binary directory, failing the test when it cannot.
func binDir(t *testing.T) string {
	t.Helper()
	bin.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		bin.dir, bin.err = binaries.Dir(ctx)
		if bin.err == nil {
			bin.err = binaries.Require(bin.dir, "strait-apiserver", "strait-agent", "strait-wireguard", "strait-cni")
		}
	})
	if bin.err != nil {
		t.Fatalf("binaries: %v", bin.err)
	}
	return bin.dir
}

// guestFlag is on the kernel command line of every tools/vmtest guest.
const guestFlag = "strait.vmtest=1"

// inGuest reports whether the test runs inside the tools/vmtest VM.
func inGuest() bool {
	b, err := os.ReadFile("/proc/cmdline")
	return err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " "+guestFlag+" ")
}

// needKernel skips the test without root, and when probe reports that the
// kernel lacks a feature, unless the test runs in the VM, where the
// feature must be there and its absence fails the test.
func needKernel(t *testing.T, feature string, probe func() error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and runs agents in them")
	}
	err := inFreshNetns(probe)
	switch {
	case err == nil:
	case inGuest():
		t.Fatalf("kernel VM without %s: %v", feature, err)
	default:
		t.Skipf("needs a kernel with %s (this one: %v): run it in the kernel VM with `hack/test-vm.sh vme2e`", feature, err)
	}
}

// inFreshNetns runs fn on a thread in a new, empty network namespace that
// disappears with the thread.
func inFreshNetns(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the goroutine's exit ends the thread and with it
		// the namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("new network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// probeWireGuard adds and deletes a kernel WireGuard link.
func probeWireGuard() error {
	l := &netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: "vme2e-probe"}}
	if err := netlink.LinkAdd(l); err != nil {
		return fmt.Errorf("add a wireguard link: %w", err)
	}
	return netlink.LinkDel(l)
}

// probeIPsec is the agent's own ESP check.
func probeIPsec() error { return ipsec.CheckKernel() }

// wrapperScript replaces strait-agent in the lab's bin directory: it runs
// inside the agent's private mount namespace (the lab's `ip netns exec ...
// sh -c 'mount --bind ...'`), bind-mounts <node dir>/boot_id over the
// kernel's boot ID when that file exists (<node dir> is the parent of
// --state-dir) and runs the real agent with extra flags appended.
const wrapperScript = `#!/bin/sh
# strait-agent wrapper of tools/lab/vme2e (see doc.go).
state= prev=
for a in "$@"; do
	[ "$prev" = --state-dir ] && state=$a
	prev=$a
done
if [ -n "$state" ] && [ -f "$(dirname "$state")/boot_id" ]; then
	mount --bind "$(dirname "$state")/boot_id" /proc/sys/kernel/random/boot_id || exit 1
fi
exec %s "$@" %s
`

// wrappedBinDir makes a bin directory for lab.Spec.BinDir: the real
// binaries linked, strait-agent wrapped (wrapperScript) with extraArgs.
func wrappedBinDir(t *testing.T, extraArgs ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bins := binDir(t)
	ents, err := os.ReadDir(bins)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "strait-agent" || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := os.Symlink(filepath.Join(bins, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range extraArgs {
		if strings.ContainsAny(a, " \t\n'\"$\\`") {
			t.Fatalf("wrapper argument %q: must not need quoting", a)
		}
	}
	script := fmt.Sprintf(wrapperScript, filepath.Join(bins, "strait-agent"), strings.Join(extraArgs, " "))
	if err := os.WriteFile(filepath.Join(dir, "strait-agent"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
