package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
)

// These tests boot the real guest: Debian's cloud kernel under qemu's
// software emulation, 5-40 s each on two cores.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: installs qemu-system-x86, busybox-static, kmod and cpio with apt-get")
	}
}

func bootConfig(t *testing.T, binary string, args ...string) Config {
	return Config{
		Binary:          binary,
		Args:            args,
		InstallPackages: true,
		WorkDir:         t.TempDir(),
		Stdout:          &testWriter{t: t},
		Stderr:          &testWriter{t: t, prefix: "stderr: "},
	}
}

// testWriter logs each line through t.Log and keeps a copy.
type testWriter struct {
	t      *testing.T
	prefix string
	all    strings.Builder
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.all.Write(p)
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}

// TestBootSelfCheck proves the guest provides what the IPsec and WireGuard
// suites need (guestcheck: kernel WireGuard tunnel, ESP rfc4106(gcm(aes))
// transport, veth between namespaces) and that the runner's plumbing
// (arguments, environment, working directory, testdata, --file) works.
func TestBootSelfCheck(t *testing.T) {
	needRoot(t)
	bin := filepath.Join(t.TempDir(), "selfcheck")
	buildStatic(t, "github.com/strait-net/strait/tools/vmtest/internal/selfcheck", bin)
	cfg := bootConfig(t, bin)
	if err := os.MkdirAll(filepath.Join(cfg.WorkDir, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.WorkDir, "testdata", "in.txt"), []byte("from testdata\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(t.TempDir(), "extra")
	if err := os.MkdirAll(filepath.Join(extra, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(extra, "sub", "f"), []byte("extra file"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Files = []FileSpec{{Src: extra, Dst: "/opt/strait/extra"}}
	cfg.Env = []string{"STRAIT_BIN_DIR=/opt/strait/bin", "QUOTED=it's a $test"}
	cfg.CopyTestdata = true
	cfg.Args = []string{
		"-want-env", "STRAIT_BIN_DIR=/opt/strait/bin", "-want-env", "QUOTED=it's a $test", "-want-env", "STRAIT_VMTEST=1",
		"-want-file", "/opt/strait/extra/sub/f=extra file",
		"-want-file", filepath.Join(cfg.WorkDir, "testdata", "in.txt") + "=from testdata",
		"-want-dir", cfg.WorkDir,
		"-want-arg", "with space", "--", "with space",
	}
	ctx := testkit.Context(t, 10*time.Minute)
	res, err := Run(ctx, testkit.Logger(t), cfg)
	t.Logf("prepare %s, boot %s, run %s, total %s, initrd %d MiB", res.Prepare, res.Boot, res.Run, res.Total, res.InitrdLen>>20)
	if err != nil {
		t.Fatal(err)
	}
	out := cfg.Stdout.(*testWriter).all.String()
	if res.Status != 0 {
		t.Fatalf("selfcheck exited %d:\n%s", res.Status, out)
	}
	for _, want := range []string{"selfcheck: ok kernel wireguard tunnel", "selfcheck: ok esp rfc4106(gcm(aes)) transport", "selfcheck: all checks passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestBootExitStatus: the binary's status comes back, with its output.
func TestBootExitStatus(t *testing.T) {
	needRoot(t)
	bin := filepath.Join(t.TempDir(), "selfcheck")
	buildStatic(t, "github.com/strait-net/strait/tools/vmtest/internal/selfcheck", bin)
	cfg := bootConfig(t, bin, "-plumbing-only", "-exit", "7")
	res, err := Run(testkit.Context(t, 10*time.Minute), testkit.Logger(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 7 {
		t.Fatalf("status %d, want 7", res.Status)
	}
	if out := cfg.Stdout.(*testWriter).all.String(); !strings.Contains(out, "selfcheck: all checks passed\n") {
		t.Fatalf("output:\n%s", out)
	}
}

// TestBootNoMarker: a guest that powers off while the binary runs is a
// failure, not a status.
func TestBootNoMarker(t *testing.T) {
	needRoot(t)
	script := filepath.Join(t.TempDir(), "halt.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho going down\npoweroff -f\nsleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := bootConfig(t, script)
	_, err := Run(testkit.Context(t, 10*time.Minute), testkit.Logger(t), cfg)
	if !errors.Is(err, ErrNoMarker) || !strings.Contains(err.Error(), "the binary was running") {
		t.Fatalf("error %v, want ErrNoMarker while the binary was running", err)
	}
	if out := cfg.Stdout.(*testWriter).all.String(); out != "going down\n" {
		t.Fatalf("output %q", out)
	}
}

// TestBootTimeout: a binary that never ends is stopped at the timeout.
func TestBootTimeout(t *testing.T) {
	needRoot(t)
	script := filepath.Join(t.TempDir(), "hang.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsleep 100000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := bootConfig(t, script)
	cfg.Timeout = 2 * time.Second
	ctx := testkit.Context(t, 10*time.Minute)
	_, err := Run(ctx, testkit.Logger(t), cfg)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("test context ended: %v", context.Cause(ctx))
	}
}
