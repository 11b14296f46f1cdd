package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/strait-net/strait/tools/vmtest/vm"
)

// exitRunnerFailed is vmtest's own failure (bad flags, setup, a guest that
// never reported a status); any other status is the binary's.
const exitRunnerFailed = 125

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(argv []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vmtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      vm.Config
		files    listFlag
		envs     listFlag
		programs listFlag
		kargs    listFlag
		modules  string
		noInst   bool
		noTD     bool
		stats    bool
	)
	fs.StringVar(&cfg.CacheDir, "kernel-cache", vm.DefaultCacheDir(), "cache `dir` for the kernel and the base initramfs ($STRAIT_VMTEST_CACHE)")
	fs.StringVar(&cfg.KernelPackage, "kernel-package", vm.DefaultKernelPackage, "Debian kernel `package` (metapackage or linux-image-<abi>-cloud-amd64)")
	fs.IntVar(&cfg.MemMiB, "mem", 1024, "guest memory in `MiB`")
	fs.IntVar(&cfg.SMP, "smp", 2, "guest CPUs")
	fs.StringVar(&cfg.CPU, "cpu", "max", "qemu CPU `model`")
	fs.DurationVar(&cfg.Timeout, "timeout", 15*time.Minute, "limit for the guest's whole run")
	fs.Var(&files, "file", "`SRC:DST` host file or directory copied to guest path DST (repeatable)")
	fs.Var(&envs, "env", "`NAME=VALUE` set for the binary (repeatable)")
	fs.Var(&programs, "host-program", "host `program` copied to the same path with its libraries, e.g. /usr/bin/wg (repeatable)")
	fs.Var(&kargs, "append", "`arg` appended to the kernel command line, e.g. loglevel=7 (repeatable)")
	fs.StringVar(&modules, "modules", "", "comma-separated kernel `modules` to load besides the defaults")
	fs.StringVar(&cfg.WorkDir, "workdir", "", "host `dir` whose testdata/ is copied; the binary starts in the same path in the guest (default: current directory)")
	fs.BoolVar(&noTD, "no-testdata", false, "do not copy WORKDIR/testdata")
	fs.BoolVar(&noInst, "no-install", false, "do not apt-get install missing packages")
	fs.BoolVar(&cfg.Verbose, "verbose", false, "show boot and kernel messages and the runner's steps")
	fs.BoolVar(&stats, "stats", false, "print boot and run times to stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: vmtest [flags] -- BINARY|PACKAGE [ARGS...]\n\n"+
			"Runs a static binary (or builds a Go package with CGO_ENABLED=0) inside qemu with\n"+
			"Debian's cloud kernel and returns its exit status. As go test -exec:\n"+
			"  CGO_ENABLED=0 go test -exec 'go run github.com/strait-net/strait/tools/vmtest --' ./encryption/ipsec/ -run Kernel\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "vmtest: no binary to run")
		fs.Usage()
		return 2
	}
	for _, f := range files {
		spec, err := vm.ParseFileSpec(f)
		if err != nil {
			fmt.Fprintf(stderr, "vmtest: %v\n", err)
			return 2
		}
		cfg.Files = append(cfg.Files, spec)
	}
	for _, e := range envs {
		if _, err := vm.ParseEnv(e); err != nil {
			fmt.Fprintf(stderr, "vmtest: %v\n", err)
			return 2
		}
	}
	mods, err := vm.ParseModules(modules)
	if err != nil {
		fmt.Fprintf(stderr, "vmtest: %v\n", err)
		return 2
	}
	cfg.Env, cfg.Modules, cfg.HostPrograms, cfg.KernelArgs = envs, mods, programs, kargs
	cfg.CopyTestdata, cfg.InstallPackages = !noTD, !noInst
	cfg.Stdout, cfg.Stderr = stdout, stderr

	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime})).With("prog", "vmtest")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bin, cleanup, err := binaryPath(ctx, rest[0])
	if err != nil {
		fmt.Fprintf(stderr, "vmtest: %v\n", err)
		return exitRunnerFailed
	}
	defer cleanup()
	cfg.Binary, cfg.Args = bin, rest[1:]

	res, err := vm.Run(ctx, log, cfg)
	if stats || cfg.Verbose {
		fmt.Fprintf(stderr, "vmtest: prepare %s, boot %s, run %s, total %s, initrd %d MiB\n",
			res.Prepare.Round(time.Millisecond), res.Boot.Round(time.Millisecond),
			res.Run.Round(time.Millisecond), res.Total.Round(time.Millisecond), res.InitrdLen>>20)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vmtest: %v\n", err)
		return exitRunnerFailed
	}
	return res.Status
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// binaryPath returns arg when it is a file; otherwise it takes arg for a Go
// package ("./cmd/strait-agent") and builds it statically into a temporary
// directory, removed by the returned func.
func binaryPath(ctx context.Context, arg string) (string, func(), error) {
	nothing := func() {}
	if fi, err := os.Stat(arg); err == nil && fi.Mode().IsRegular() {
		return arg, nothing, nil
	}
	first, _, _ := strings.Cut(arg, "/")
	local := strings.HasPrefix(arg, "./") || strings.HasPrefix(arg, "../")
	remote := !filepath.IsAbs(arg) && strings.Contains(arg, "/") && strings.Contains(first, ".")
	if !local && !remote {
		return "", nothing, fmt.Errorf("binary %s: no such file, and not a Go package path (./dir or host/path)", arg)
	}
	dir, err := os.MkdirTemp("", "strait-vmtest-bin-")
	if err != nil {
		return "", nothing, fmt.Errorf("build %s: %w", arg, err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	out := filepath.Join(dir, filepath.Base(strings.TrimSuffix(arg, "/")))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, arg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nothing, fmt.Errorf("build %s (CGO_ENABLED=0): %w\n%s", arg, err, msg)
	}
	return out, cleanup, nil
}
