package vm

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// HostPackages are the Debian packages the runner needs on the host.
var HostPackages = []string{"qemu-system-x86", "busybox-static", "kmod", "cpio", "iproute2"}

// DefaultKernelPackage is the Debian metapackage whose dependency names the
// kernel image package to boot.
const DefaultKernelPackage = "linux-image-cloud-amd64"

// aptLockRetries bounds how often apt-get is retried while another apt or
// dpkg holds its lock (other test runs install packages too).
const aptLockRetries = 60

// runTool runs a command, returning its combined output; a failure carries
// the tail of that output.
func runTool(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %w\n%s", name, strings.Join(args, " "), ErrApt, err, tail(out.String(), 15))
	}
	return out.Bytes(), nil
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// runApt runs apt-get, waiting while another process holds the apt/dpkg lock.
func runApt(ctx context.Context, log *slog.Logger, args ...string) error {
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	args = append([]string{"-o", "DPkg::Lock::Timeout=120"}, args...)
	for i := 0; ; i++ {
		out, err := runTool(ctx, "", env, "apt-get", args...)
		if err == nil {
			return nil
		}
		if i >= aptLockRetries || !bytes.Contains(out, []byte("Could not get lock")) {
			return err
		}
		log.Info("apt is locked by another process; waiting", "try", i+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the apt lock: %w", ctx.Err())
		case <-time.After(5 * time.Second):
		}
	}
}

// installed reports whether a Debian package is installed.
func installed(ctx context.Context, pkg string) bool {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.HasSuffix(strings.TrimSpace(string(out)), " installed")
}

// EnsurePackages installs the Debian packages that are missing, running
// `apt-get update` once first. With everything present it runs no apt
// command and logs nothing. Installing needs root (ErrNeedRoot otherwise).
func EnsurePackages(ctx context.Context, log *slog.Logger, pkgs []string) error {
	var missing []string
	for _, p := range pkgs {
		if !installed(ctx, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("packages %s: %w (or install them: apt-get install %s)",
			strings.Join(missing, " "), ErrNeedRoot, strings.Join(missing, " "))
	}
	log.Info("installing Debian packages", "packages", strings.Join(missing, " "))
	if err := runApt(ctx, log, "update", "-q"); err != nil {
		return err
	}
	return runApt(ctx, log, append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)...)
}

var depName = regexp.MustCompile(`^(linux-image-[0-9][A-Za-z0-9.+-]*)`)

// aptField returns a field of the candidate version of a package from
// `apt-cache show --no-all-versions`.
func aptField(ctx context.Context, pkg, field string) (string, error) {
	out, err := runTool(ctx, "", nil, "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, field+": "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("apt-cache show %s: no %s field: %w", pkg, field, ErrApt)
}

// resolveKernelPackage turns a metapackage (linux-image-cloud-amd64) into
// the image package it depends on and its version. A versioned package name
// resolves to itself.
func resolveKernelPackage(ctx context.Context, pkg string) (name, version string, err error) {
	name = pkg
	if !depName.MatchString(pkg) {
		deps, err := aptField(ctx, pkg, "Depends")
		if err != nil {
			return "", "", err
		}
		m := depName.FindStringSubmatch(deps)
		if m == nil {
			return "", "", fmt.Errorf("%s depends on no linux-image-<version> package (%q): %w", pkg, deps, ErrApt)
		}
		name = m[1]
	}
	version, err = aptField(ctx, name, "Version")
	if err != nil {
		return "", "", err
	}
	return name, version, nil
}

// Kernel is an extracted kernel package in the cache.
type Kernel struct {
	Package string // e.g. linux-image-6.1.0-56-cloud-amd64
	Version string // Debian version, e.g. 6.1.192-2
	Release string // uname -r, e.g. 6.1.0-56-cloud-amd64
	Root    string // the dpkg -x tree
	Vmlinuz string
}

// ModulesDir is /lib/modules/<release> inside Root.
func (k *Kernel) ModulesDir() string { return filepath.Join(k.Root, "lib", "modules", k.Release) }

// FetchKernel makes sure the kernel package pkg (a metapackage such as
// linux-image-cloud-amd64, or a versioned image package) is downloaded with
// `apt-get download` and extracted with `dpkg -x` under cacheDir, with
// depmod run on it; it never installs the package. Concurrent callers
// must hold the cache lock. When apt knows no candidate (lists missing) it
// runs `apt-get update` once (as root); when apt is unusable and the cache
// holds a kernel, that one is used.
func FetchKernel(ctx context.Context, log *slog.Logger, cacheDir, pkg string) (*Kernel, error) {
	if k, err := cachedResolution(cacheDir, pkg); err == nil {
		return k, nil
	}
	name, version, err := resolveKernelPackage(ctx, pkg)
	if err != nil && os.Geteuid() == 0 {
		log.Info("kernel package unknown to apt; running apt-get update", "package", pkg)
		if uerr := runApt(ctx, log, "update", "-q"); uerr != nil {
			return nil, uerr
		}
		name, version, err = resolveKernelPackage(ctx, pkg)
	}
	if err != nil {
		if k, cerr := newestCachedKernel(cacheDir); cerr == nil {
			log.Warn("apt cannot resolve the kernel package; using the cached kernel", "package", pkg, "cached", k.Package+"_"+k.Version, "err", err)
			return k, nil
		}
		return nil, fmt.Errorf("kernel package %s: %w", pkg, err)
	}
	dir := filepath.Join(cacheDir, "kernels", name+"_"+version)
	if k, err := loadKernel(dir); err == nil {
		saveResolution(cacheDir, pkg, k)
		return k, nil
	}
	log.Info("fetching kernel", "package", name, "version", version)
	if err := os.MkdirAll(filepath.Join(cacheDir, "kernels"), 0o755); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(cacheDir, "kernels"), ".fetch-")
	if err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	// apt-get download writes into the working directory; the _apt user
	// cannot write there (hence the sandbox warning apt prints as root).
	if _, err := runTool(ctx, tmp, nil, "apt-get", "download", "-q", name+"="+version); err != nil {
		return nil, fmt.Errorf("kernel package %s: %w", name, err)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return nil, fmt.Errorf("kernel package %s: apt-get download left %d .deb files: %w", name, len(debs), ErrApt)
	}
	root := filepath.Join(tmp, "root")
	if _, err := runTool(ctx, "", nil, "dpkg", "-x", debs[0], root); err != nil {
		return nil, fmt.Errorf("kernel package %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "package"), []byte(name+"\n"+version+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	k, err := inspectKernel(tmp)
	if err != nil {
		return nil, err
	}
	if _, err := runTool(ctx, "", nil, "depmod", "-b", root, k.Release); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Release, err)
	}
	if err := os.Remove(debs[0]); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "ready"), nil, 0o644); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	os.RemoveAll(dir) // a half-made earlier attempt
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	k, err = loadKernel(dir)
	if err != nil {
		return nil, err
	}
	saveResolution(cacheDir, pkg, k)
	return k, nil
}

// aptListsDir changes (its modification time) whenever apt-get update
// brings new package lists.
const aptListsDir = "/var/lib/apt/lists"

func listsStamp() string {
	fi, err := os.Stat(aptListsDir)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d", fi.ModTime().UnixNano())
}

func resolutionFile(cacheDir, pkg string) string {
	return filepath.Join(cacheDir, "kernels", "resolved-"+pkg)
}

// cachedResolution returns the kernel pkg resolved to last time, as long as
// apt's package lists have not changed since (apt-cache takes about half a
// second per call).
func cachedResolution(cacheDir, pkg string) (*Kernel, error) {
	b, err := os.ReadFile(resolutionFile(cacheDir, pkg))
	if err != nil {
		return nil, err
	}
	stamp, dir, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if !ok || stamp == "" || stamp != listsStamp() || strings.Contains(dir, "/") {
		return nil, fmt.Errorf("kernel resolution of %s is stale", pkg)
	}
	return loadKernel(filepath.Join(cacheDir, "kernels", dir))
}

func saveResolution(cacheDir, pkg string, k *Kernel) {
	if stamp := listsStamp(); stamp != "" {
		_ = os.WriteFile(resolutionFile(cacheDir, pkg), []byte(stamp+" "+k.Package+"_"+k.Version+"\n"), 0o644)
	}
}

// loadKernel reads a finished cache entry.
func loadKernel(dir string) (*Kernel, error) {
	if _, err := os.Stat(filepath.Join(dir, "ready")); err != nil {
		return nil, fmt.Errorf("kernel cache %s: %w", dir, err)
	}
	return inspectKernel(dir)
}

func inspectKernel(dir string) (*Kernel, error) {
	meta, err := os.ReadFile(filepath.Join(dir, "package"))
	if err != nil {
		return nil, fmt.Errorf("kernel cache %s: %w", dir, err)
	}
	fields := strings.Fields(string(meta))
	if len(fields) != 2 {
		return nil, fmt.Errorf("kernel cache %s: malformed package file: %w", dir, ErrApt)
	}
	root := filepath.Join(dir, "root")
	rels, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if len(rels) != 1 {
		return nil, fmt.Errorf("kernel cache %s: %d module directories, want 1: %w", dir, len(rels), ErrApt)
	}
	release := filepath.Base(rels[0])
	vmlinuz := filepath.Join(root, "boot", "vmlinuz-"+release)
	if _, err := os.Stat(vmlinuz); err != nil {
		return nil, fmt.Errorf("kernel cache %s: %w", dir, err)
	}
	return &Kernel{Package: fields[0], Version: fields[1], Release: release, Root: root, Vmlinuz: vmlinuz}, nil
}

func newestCachedKernel(cacheDir string) (*Kernel, error) {
	dirs, _ := filepath.Glob(filepath.Join(cacheDir, "kernels", "linux-image-*"))
	var best *Kernel
	var bestTime time.Time
	for _, d := range dirs {
		k, err := loadKernel(d)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(d, "ready")); err == nil && (best == nil || fi.ModTime().After(bestTime)) {
			best, bestTime = k, fi.ModTime()
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no kernel in %s: %w", cacheDir, os.ErrNotExist)
	}
	return best, nil
}
