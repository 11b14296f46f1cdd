package vm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FileSpec is one --file SRC:DST: a host file or directory copied into the
// guest at an absolute path.
type FileSpec struct {
	Src string // host path
	Dst string // absolute guest path
}

// reservedGuestDirs are mounted over at boot or hold the runner's own
// files: nothing may be placed under them.
var reservedGuestDirs = []string{"/proc", "/sys", "/dev", "/run", "/opt/vmtest", "/init"}

// ParseFileSpec parses "SRC:DST". DST must be an absolute, clean guest
// path outside /proc, /sys, /dev, /run and /opt/vmtest; SRC must be non-empty.
// DST may be omitted ("SRC" or "SRC:") when SRC is absolute: the file
// lands at the same path in the guest.
func ParseFileSpec(s string) (FileSpec, error) {
	src, dst, hasColon := strings.Cut(s, ":")
	if src == "" {
		return FileSpec{}, fmt.Errorf("--file %q: empty source: %w", s, ErrBadFlag)
	}
	if !hasColon || dst == "" {
		dst = src
	}
	if strings.ContainsRune(s, 0) || strings.Contains(dst, ":") {
		return FileSpec{}, fmt.Errorf("--file %q: want SRC:DST: %w", s, ErrBadFlag)
	}
	if err := checkGuestDst(dst); err != nil {
		return FileSpec{}, fmt.Errorf("--file %q: %w", s, err)
	}
	return FileSpec{Src: src, Dst: dst}, nil
}

// checkGuestDst accepts an absolute, clean guest path outside the
// runner's directories.
func checkGuestDst(dst string) error {
	if !path.IsAbs(dst) || path.Clean(dst) != dst || dst == "/" || strings.ContainsRune(dst, 0) {
		return fmt.Errorf("guest path %q must be absolute and clean: %w", dst, ErrBadFlag)
	}
	for _, r := range reservedGuestDirs {
		if dst == r || strings.HasPrefix(dst, r+"/") {
			return fmt.Errorf("guest path %q is under %s, which the runner owns: %w", dst, r, ErrBadFlag)
		}
	}
	return nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseEnv checks one --env K=V.
func ParseEnv(s string) (string, error) {
	k, _, ok := strings.Cut(s, "=")
	if !ok || !envName.MatchString(k) || strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("--env %q: want NAME=VALUE with NAME a shell variable name: %w", s, ErrBadFlag)
	}
	return s, nil
}

var moduleNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ParseModules splits a comma-separated module list.
func ParseModules(s string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !moduleNameRe.MatchString(m) {
			return nil, fmt.Errorf("--modules: module name %q: %w", m, ErrBadFlag)
		}
		out = append(out, m)
	}
	return out, nil
}

// Config is one run.
type Config struct {
	CacheDir      string        // kernel and initramfs cache (DefaultCacheDir)
	KernelPackage string        // default DefaultKernelPackage
	MemMiB        int           // guest memory, default 1024
	SMP           int           // guest CPUs, default 2
	CPU           string        // qemu -cpu, default "max" (offers AES-NI and RDRAND under TCG)
	Timeout       time.Duration // whole run from qemu start, default 15m
	Binary        string        // host path of a static executable (or "#!" script)
	Args          []string
	Env           []string   // NAME=VALUE for the binary
	Files         []FileSpec // extra files and directories
	Modules       []string   // modules loaded at boot besides DefaultModules
	HostPrograms  []string   // more host programs copied with their libraries (e.g. /usr/bin/wg)
	KernelArgs    []string   // appended to the kernel command line (later ones win: loglevel=7)
	// WorkDir is the host directory the run belongs to (go test runs test
	// binaries in the package directory). The guest starts the binary in a
	// directory of the same path, holding a copy of WorkDir/testdata when
	// CopyTestdata is set.
	WorkDir      string
	CopyTestdata bool
	// Verbose shows boot and kernel messages (to Stderr).
	Verbose bool
	// InstallPackages runs apt-get for missing HostPackages (needs root).
	InstallPackages bool
	Stdout          io.Writer // the binary's output
	Stderr          io.Writer // the runner's notes, and kernel lines when Verbose
}

// Result describes a finished run.
type Result struct {
	Status    int           // the binary's exit status (128+n: killed by signal n)
	Prepare   time.Duration // packages, kernel and initramfs
	Boot      time.Duration // qemu start to the start marker
	Run       time.Duration // start marker to exit marker: the binary's run
	Total     time.Duration // qemu start to qemu exit
	InitrdLen int64         // bytes of the initramfs handed to qemu
}

// DefaultCacheDir is $STRAIT_VMTEST_CACHE, else <user cache>/strait/vmtest.
func DefaultCacheDir() string {
	if d := os.Getenv("STRAIT_VMTEST_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "strait", "vmtest")
	}
	return filepath.Join(os.TempDir(), "strait-vmtest-cache")
}

// maxTestdata bounds the testdata copied into the guest.
const maxTestdata = 256 << 20

// fill sets the defaults of unset fields.
func (c *Config) fill() error {
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	if c.KernelPackage == "" {
		c.KernelPackage = DefaultKernelPackage
	}
	if c.MemMiB == 0 {
		c.MemMiB = 1024
	}
	if c.SMP == 0 {
		c.SMP = 2
	}
	if c.CPU == "" {
		c.CPU = "max"
	}
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Minute
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		c.WorkDir = wd
	}
	wd, err := filepath.Abs(c.WorkDir)
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	c.WorkDir = wd
	return nil
}

// validate checks a filled Config for a run.
func (c *Config) validate() error {
	if c.MemMiB < 256 || c.SMP < 1 || c.SMP > 64 || c.Timeout < 0 {
		return fmt.Errorf("mem %d MiB (min 256), smp %d (1..64), timeout %s: %w", c.MemMiB, c.SMP, c.Timeout, ErrBadFlag)
	}
	if c.Binary == "" {
		return fmt.Errorf("no binary to run: %w", ErrBadFlag)
	}
	for _, kv := range c.Env {
		if _, err := ParseEnv(kv); err != nil {
			return err
		}
	}
	for _, f := range c.Files {
		if f.Src == "" {
			return fmt.Errorf("file for %s: empty source: %w", f.Dst, ErrBadFlag)
		}
		if err := checkGuestDst(f.Dst); err != nil {
			return fmt.Errorf("file %s: %w", f.Src, err)
		}
	}
	for _, m := range c.Modules {
		if _, err := ParseModules(m); err != nil {
			return err
		}
	}
	return nil
}

// guestWorkDir is where the binary starts: the host WorkDir's path unless
// that is somewhere the runner owns.
func guestWorkDir(host string) string {
	p := filepath.ToSlash(host)
	for _, r := range reservedGuestDirs {
		if p == r || strings.HasPrefix(p, r+"/") || p == "/" {
			return "/root"
		}
	}
	return p
}

// lockCache takes an exclusive lock on the cache directory (other runs
// share it); the returned func releases it.
func lockCache(ctx context.Context, dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("cache lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("cache lock: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Prepared is a kernel and base initramfs ready to boot.
type Prepared struct {
	Kernel  *Kernel
	Base    string   // gzip cpio with busybox, iproute2 and modules
	Modules []string // loaded at boot
}

// Prepare installs missing packages (when cfg.InstallPackages), fetches the
// kernel and builds the base initramfs, under the cache lock.
func Prepare(ctx context.Context, log *slog.Logger, cfg Config) (*Prepared, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	unlock, err := lockCache(ctx, cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if cfg.InstallPackages {
		if err := EnsurePackages(ctx, log, HostPackages); err != nil {
			return nil, err
		}
	}
	k, err := FetchKernel(ctx, log, cfg.CacheDir, cfg.KernelPackage)
	if err != nil {
		return nil, err
	}
	load := append(append([]string(nil), DefaultModules...), cfg.Modules...)
	spec, err := planBase(ctx, k, load)
	if err != nil {
		return nil, err
	}
	base, err := ensureBase(ctx, log, cfg.CacheDir, spec)
	if err != nil {
		return nil, err
	}
	return &Prepared{Kernel: k, Base: base, Modules: load}, nil
}

func newNonce() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// runTree is the per-run part of the initramfs.
func runTree(ctx context.Context, cfg Config, p *Prepared, nonce string) (*Tree, error) {
	t := NewTree()
	guestBin := "/opt/vmtest/bin/" + filepath.Base(cfg.Binary)
	if err := t.AddHostFile(guestBin, cfg.Binary); err != nil {
		return nil, err
	}
	for _, hp := range cfg.HostPrograms {
		abs, err := exec.LookPath(hp)
		if err != nil {
			return nil, fmt.Errorf("host program %s: %w", hp, err)
		}
		if abs, err = filepath.Abs(abs); err != nil {
			return nil, fmt.Errorf("host program %s: %w", hp, err)
		}
		if err := t.AddHostProgram(ctx, abs, abs); err != nil {
			return nil, err
		}
	}
	dir := guestWorkDir(cfg.WorkDir)
	if err := t.AddDir(dir, 0o755); err != nil {
		return nil, err
	}
	if cfg.CopyTestdata {
		td := filepath.Join(cfg.WorkDir, "testdata")
		if fi, err := os.Stat(td); err == nil && fi.IsDir() {
			size, err := dirSize(td)
			if err != nil {
				return nil, err
			}
			if size > maxTestdata {
				return nil, fmt.Errorf("%s holds %d MiB, more than the %d MiB copied into the guest: %w", td, size>>20, maxTestdata>>20, ErrBadFlag)
			}
			if err := t.AddHostTree(path.Join(dir, "testdata"), td); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range cfg.Files {
		if err := t.AddHostTree(f.Dst, f.Src); err != nil {
			return nil, fmt.Errorf("--file %s:%s: %w", f.Src, f.Dst, err)
		}
	}
	script := initScript{
		Nonce:   nonce,
		Modules: p.Modules,
		Env:     cfg.Env,
		Dir:     dir,
		Argv:    append([]string{guestBin}, cfg.Args...),
	}
	if err := t.AddBytes("/init", []byte(script.render()), 0o755); err != nil {
		return nil, err
	}
	return t, nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("testdata: %w", err)
	}
	return n, nil
}

// writeInitrd writes base followed by the per-run archive into a new file
// in dir. The per-run part (mostly the binaries) is not compressed:
// gzip-compressing 80 MiB of binaries cost 0.6-0.7 s per run here and did
// not make the boot measurably faster (the kernel unpacks either).
func writeInitrd(dir, base string, run *Tree) (string, int64, error) {
	out, err := os.CreateTemp(dir, "initrd-*.cpio")
	if err != nil {
		return "", 0, fmt.Errorf("initrd: %w", err)
	}
	defer out.Close()
	in, err := os.Open(base)
	if err != nil {
		return "", 0, fmt.Errorf("initrd: %w", err)
	}
	defer in.Close()
	n, err := io.Copy(out, in)
	if err != nil {
		return "", 0, fmt.Errorf("initrd: %w", err)
	}
	// The kernel skips zero padding between archives; align the next one.
	if pad := (4 - n%4) % 4; pad != 0 {
		if _, err := out.Write(make([]byte, pad)); err != nil {
			return "", 0, fmt.Errorf("initrd: %w", err)
		}
	}
	if err := run.WriteCPIO(out); err != nil {
		return "", 0, fmt.Errorf("initrd: %w", err)
	}
	fi, err := out.Stat()
	if err != nil {
		return "", 0, fmt.Errorf("initrd: %w", err)
	}
	return out.Name(), fi.Size(), out.Close()
}

// poweroffGrace is how long qemu may take to end after the exit marker.
const poweroffGrace = 30 * time.Second

// kernelCmdline is passed to the guest kernel: serial console, quiet, and
// panic=-1 so that a panic ends qemu at once (with -no-reboot).
// strait.vmtest=1 lets code tell it runs in the guest (see
// tools/vmtest/internal/guestcheck.InGuest).
const kernelCmdline = "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic random.trust_cpu=on mitigations=off strait.vmtest=1"

// Run boots the guest with cfg.Binary, streams its output and returns its
// exit status. A guest that ends without the exit marker (kernel panic,
// timeout, qemu failure) is an error; Result then still holds the timings.
func Run(ctx context.Context, log *slog.Logger, cfg Config) (Result, error) {
	var res Result
	if err := cfg.fill(); err != nil {
		return res, err
	}
	if err := cfg.validate(); err != nil {
		return res, err
	}
	abs, err := filepath.Abs(cfg.Binary)
	if err != nil {
		return res, fmt.Errorf("binary: %w", err)
	}
	cfg.Binary = abs
	if err := CheckStatic(cfg.Binary); err != nil {
		return res, err
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil && !cfg.InstallPackages {
		return res, fmt.Errorf("qemu-system-x86_64 (package qemu-system-x86): %w", err)
	}
	start := time.Now()
	p, err := Prepare(ctx, log, cfg)
	if err != nil {
		return res, err
	}
	if qemu == "" {
		if qemu, err = exec.LookPath("qemu-system-x86_64"); err != nil {
			return res, fmt.Errorf("qemu-system-x86_64 (package qemu-system-x86): %w", err)
		}
	}
	nonce, err := newNonce()
	if err != nil {
		return res, err
	}
	rt, err := runTree(ctx, cfg, p, nonce)
	if err != nil {
		return res, err
	}
	tmp, err := os.MkdirTemp("", "strait-vmtest-")
	if err != nil {
		return res, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	initrd, n, err := writeInitrd(tmp, p.Base, rt)
	if err != nil {
		return res, err
	}
	res.InitrdLen = n
	res.Prepare = time.Since(start)

	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	args := []string{
		"-accel", "tcg,thread=multi", "-cpu", cfg.CPU,
		"-smp", strconv.Itoa(cfg.SMP), "-m", strconv.Itoa(cfg.MemMiB),
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", p.Kernel.Vmlinuz, "-initrd", initrd,
		"-append", strings.Join(append([]string{kernelCmdline}, cfg.KernelArgs...), " "),
	}
	cmd := exec.CommandContext(rctx, qemu, args...)
	cmd.Stdin = nil
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, fmt.Errorf("qemu: %w", err)
	}
	var qerr strings.Builder
	cmd.Stderr = &limitedWriter{w: &qerr, n: 16 << 10}
	console := &Console{Nonce: nonce, Out: cfg.Stdout, Diag: cfg.Stderr}
	if cfg.Verbose {
		console.Kernel = cfg.Stderr
	}
	// The guest powers itself off after the exit marker; if it does not,
	// qemu is stopped after a grace period rather than at the timeout.
	var stopTimer *time.Timer
	console.OnExit = func(int) {
		stopTimer = time.AfterFunc(poweroffGrace, func() { _ = cmd.Process.Kill() })
	}
	defer func() {
		if stopTimer != nil {
			stopTimer.Stop()
		}
	}()
	log.Debug("booting", "kernel", p.Kernel.Release, "initrd_bytes", n, "binary", cfg.Binary)
	bootStart := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("qemu: %w", err)
	}
	cres, cerr := console.Copy(stdout)
	if cerr != nil {
		// The output cannot be delivered: stop the guest.
		_ = cmd.Process.Kill()
		go io.Copy(io.Discard, stdout)
	}
	werr := cmd.Wait()
	res.Total = time.Since(bootStart)
	if cres.Started {
		res.Boot = cres.StartedAt.Sub(bootStart)
	}
	if cres.Exited {
		res.Run = cres.ExitedAt.Sub(cres.StartedAt)
		res.Status = cres.Status
	}
	switch {
	case cerr != nil:
		return res, fmt.Errorf("guest console: %w", cerr)
	case cres.Exited:
		return res, nil
	}
	why := guestFailure(cres, qerr.String(), werr)
	if errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return res, fmt.Errorf("no exit status after %s (%s): %w%s", cfg.Timeout, stage(cres), ErrTimeout, why)
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("guest stopped: %w", ctx.Err())
	}
	return res, fmt.Errorf("%s: %w%s", stage(cres), ErrNoMarker, why)
}

func stage(c ConsoleResult) string {
	if c.Started {
		return "the binary was running"
	}
	return "the guest did not reach the binary"
}

// guestFailure describes what the console and qemu said.
func guestFailure(c ConsoleResult, qemuErr string, waitErr error) string {
	var b strings.Builder
	if c.Panic != "" {
		fmt.Fprintf(&b, "\n  kernel: %s", c.Panic)
	}
	if waitErr != nil {
		fmt.Fprintf(&b, "\n  qemu: %v", waitErr)
	}
	if q := strings.TrimSpace(qemuErr); q != "" {
		fmt.Fprintf(&b, "\n  qemu stderr: %s", tail(q, 10))
	}
	if len(c.Tail) > 0 {
		fmt.Fprintf(&b, "\n  last console lines:\n    %s", strings.Join(c.Tail, "\n    "))
	}
	return b.String()
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
