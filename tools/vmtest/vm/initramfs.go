package vm

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// DefaultModules are loaded at boot: what the WireGuard, IPsec, CNI and
// BPF suites use. Modules the kernel asks for itself (crypto templates
// such as gcm or seqiv for an ESP state, sch_clsact) are loaded on demand
// by /sbin/modprobe from the directories in moduleDirs.
var DefaultModules = []string{
	"wireguard", "esp4", "esp6", "xfrm4_tunnel", "xfrm6_tunnel", "xfrm_user", "xfrm_interface", "af_key",
	"veth", "bridge", "tun", "dummy", "vxlan",
	"gcm", "ghash_generic", "seqiv", "echainiv", "authenc", "chacha20poly1305", "aesni_intel",
	"sch_ingress", "cls_bpf", "act_bpf",
}

// moduleDirs are copied whole (with dependencies) so that on-demand
// requests find their module.
var moduleDirs = []string{
	"kernel/crypto", "kernel/arch/x86/crypto", "kernel/lib/crypto", "kernel/net/sched", "kernel/net/xfrm",
}

// iproute2Programs are copied from the host with their libraries; busybox
// provides everything else. busybox's own applets of these names are not
// linked, so the guest's PATH finds iproute2's.
var iproute2Programs = []string{"ip", "bridge", "tc", "ss"}

// baseFormat changes when the base archive's layout changes, so old cache
// entries are not reused.
const baseFormat = "vmtest-base-1"

// baseSpec is what goes into the base archive (kernel modules, busybox,
// iproute2): the same for every run with the same kernel and modules, so
// it is built once and cached.
type baseSpec struct {
	kernel  *Kernel
	modules []string // module file paths relative to the modules dir
	hostBin map[string]string
	files   []string // host files read, for the cache key
}

func planBase(ctx context.Context, k *Kernel, load []string) (*baseSpec, error) {
	mdir := k.ModulesDir()
	depf, err := os.Open(filepath.Join(mdir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Release, err)
	}
	ix, err := ParseModulesDep(depf, depf.Name())
	depf.Close()
	if err != nil {
		return nil, err
	}
	if bf, err := os.Open(filepath.Join(mdir, "modules.builtin")); err == nil {
		err = ix.AddBuiltin(bf, bf.Name())
		bf.Close()
		if err != nil {
			return nil, err
		}
	}
	var dirPaths []string
	for _, d := range moduleDirs {
		dirPaths = append(dirPaths, ix.Under(d)...)
	}
	mods, err := ix.Closure(load, dirPaths)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Release, err)
	}
	spec := &baseSpec{kernel: k, modules: mods, hostBin: map[string]string{}}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox (package busybox-static): %w", err)
	}
	if err := CheckStatic(busybox); err != nil {
		return nil, fmt.Errorf("busybox must be the static one (package busybox-static): %w", err)
	}
	spec.hostBin["busybox"] = busybox
	spec.files = append(spec.files, busybox)
	for _, p := range iproute2Programs {
		hp, err := exec.LookPath(p)
		if err != nil {
			if p == "ip" {
				return nil, fmt.Errorf("ip (package iproute2): %w", err)
			}
			continue
		}
		if hp, err = filepath.EvalSymlinks(hp); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		libs, err := hostLibraries(ctx, hp)
		if err != nil {
			return nil, err
		}
		spec.hostBin[p] = hp
		spec.files = append(spec.files, hp)
		spec.files = append(spec.files, libs...)
	}
	return spec, nil
}

// key hashes everything the base archive is made of.
func (s *baseSpec) key() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", baseFormat, s.kernel.Root, s.kernel.Release)
	for _, m := range s.modules {
		fmt.Fprintln(h, m)
	}
	for _, f := range s.files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("base archive: %w", err)
		}
		fmt.Fprintf(h, "%s %d %d\n", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// tree assembles the base file tree.
func (s *baseSpec) tree(ctx context.Context) (*Tree, error) {
	t := NewTree()
	for _, d := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/etc", "/proc", "/sys", "/dev", "/run", "/root", "/var", "/opt", "/mnt"} {
		if err := t.AddDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.AddDir("/tmp", 0o777|fs.ModeSticky); err != nil {
		return nil, err
	}
	// The kernel opens /dev/console for init before devtmpfs is mounted.
	if err := t.AddCharDev("/dev/console", 0o600, 5, 1); err != nil {
		return nil, err
	}
	if err := t.AddCharDev("/dev/null", 0o666, 1, 3); err != nil {
		return nil, err
	}
	for _, l := range [][2]string{{"/var/run", "../run"}, {"/var/tmp", "../tmp"}, {"/lib/modules/" + s.kernel.Release + "/build", "/nonexistent"}} {
		if err := t.AddSymlink(l[0], l[1]); err != nil {
			return nil, err
		}
	}
	etc := map[string]string{
		"/etc/passwd":        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"/etc/group":         "root:x:0:\nnogroup:x:65534:\n",
		"/etc/hosts":         "127.0.0.1 localhost\n::1 localhost\n",
		"/etc/nsswitch.conf": "hosts: files dns\n",
		"/etc/hostname":      "vmtest\n",
	}
	for p, c := range etc {
		if err := t.AddBytes(p, []byte(c), 0o644); err != nil {
			return nil, err
		}
	}
	if fi, err := os.Stat("/etc/iproute2"); err == nil && fi.IsDir() {
		if err := t.AddHostTree("/etc/iproute2", "/etc/iproute2"); err != nil {
			return nil, err
		}
	}
	// busybox and its applet links, except the iproute2 programs.
	bb := s.hostBin["busybox"]
	if err := t.AddHostFile("/bin/busybox", bb); err != nil {
		return nil, err
	}
	applets, err := exec.CommandContext(ctx, bb, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(applets)))
	for sc.Scan() {
		a := strings.TrimSpace(sc.Text())
		if a == "" || a == "bin/busybox" {
			continue
		}
		if _, ok := s.hostBin[path.Base(a)]; ok {
			continue
		}
		if err := t.AddSymlink("/"+a, "/bin/busybox"); err != nil {
			return nil, err
		}
	}
	for _, p := range iproute2Programs {
		hp, ok := s.hostBin[p]
		if !ok {
			continue
		}
		for _, dst := range []string{"/bin/" + p, "/sbin/" + p} {
			if err := t.AddHostProgram(ctx, dst, hp); err != nil {
				return nil, err
			}
		}
	}
	// Kernel modules: the index files depmod wrote and the chosen modules.
	mdir := s.kernel.ModulesDir()
	gdir := "/lib/modules/" + s.kernel.Release
	idx, _ := filepath.Glob(filepath.Join(mdir, "modules.*"))
	for _, f := range idx {
		if err := t.AddHostFile(gdir+"/"+filepath.Base(f), f); err != nil {
			return nil, err
		}
	}
	for _, m := range s.modules {
		if err := t.AddHostFile(gdir+"/"+m, filepath.Join(mdir, filepath.FromSlash(m))); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ensureBase returns the path of the cached, gzip-compressed base archive,
// building it when the cache has none for this spec. The caller holds the
// cache lock.
func ensureBase(ctx context.Context, log *slog.Logger, cacheDir string, s *baseSpec) (string, error) {
	key, err := s.key()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cacheDir, "initramfs")
	final := filepath.Join(dir, "base-"+key+".cpio.gz")
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	t, err := s.tree(ctx)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".base-*")
	if err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := writeGzipCPIO(f, t); err != nil {
		return "", fmt.Errorf("base initramfs: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		return "", fmt.Errorf("base initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("base initramfs: %w", err)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	// Old bases (earlier kernels or module sets) are dropped.
	old, _ := filepath.Glob(filepath.Join(dir, "base-*.cpio.gz"))
	for _, o := range old {
		if o != final {
			os.Remove(o)
		}
	}
	log.Debug("built base initramfs", "path", final, "modules", len(s.modules), "entries", t.Len())
	return final, nil
}

func writeGzipCPIO(w io.Writer, t *Tree) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := t.WriteCPIO(zw); err != nil {
		return err
	}
	return zw.Close()
}

// shQuote quotes s for a POSIX shell: 'it'\”s'.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// initScript is the guest's /init, run by busybox sh as process 1.
type initScript struct {
	Nonce   string
	Modules []string
	Env     []string // K=V, validated
	Dir     string   // guest working directory
	Argv    []string // guest path of the binary, then its arguments
}

// render returns the script. It always reaches the exit marker and the
// poweroff, whatever fails before, so the host sees the binary's status or
// the reason it did not run.
func (s initScript) render() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("#!/bin/sh")
	w("# generated by tools/vmtest")
	w("export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root TMPDIR=/tmp TERM=dumb STRAIT_VMTEST=1")
	w("mount -t proc proc /proc")
	w("mount -t sysfs sysfs /sys")
	w("mount -t devtmpfs devtmpfs /dev")
	w("mkdir -p /dev/pts /dev/shm /dev/net")
	w("mount -t devpts devpts /dev/pts")
	w("mount -t tmpfs tmpfs /dev/shm")
	w("mount -t tmpfs -o mode=755 tmpfs /run")
	w("mkdir -p /run/netns /run/wireguard /run/strait /sys/fs/bpf /sys/fs/cgroup")
	w("mount -t bpf bpf /sys/fs/bpf || echo %s", shQuote(InitNotePrefix+"cannot mount /sys/fs/bpf"))
	w("mount -t cgroup2 cgroup2 /sys/fs/cgroup || echo %s", shQuote(InitNotePrefix+"cannot mount /sys/fs/cgroup"))
	w("mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null")
	w("ln -s /proc/self/fd /dev/fd 2>/dev/null")
	if len(s.Modules) > 0 {
		q := make([]string, len(s.Modules))
		for i, m := range s.Modules {
			q[i] = shQuote(m)
		}
		w("failed=")
		w("for m in %s; do modprobe \"$m\" 2>/dev/null || failed=\"$failed $m\"; done", strings.Join(q, " "))
		w("[ -z \"$failed\" ] || echo \"%smodules not loaded:$failed\"", InitNotePrefix)
	}
	w("/sbin/ip link set lo up")
	w("hostname vmtest")
	w("mkdir -p %s", shQuote(s.Dir))
	w("cd %s || echo %s", shQuote(s.Dir), shQuote(InitNotePrefix+"cannot enter "+s.Dir))
	for _, kv := range s.Env {
		k, v, _ := strings.Cut(kv, "=")
		w("export %s=%s", k, shQuote(v))
	}
	w("echo %s", shQuote(StartMarker+" "+s.Nonce))
	q := make([]string, len(s.Argv))
	for i, a := range s.Argv {
		q[i] = shQuote(a)
	}
	w("%s </dev/null", strings.Join(q, " "))
	w("status=$?")
	w("sync")
	w("echo")
	w("echo %s\"$status\"", shQuote(ExitMarker+" "+s.Nonce+" "))
	w("poweroff -f")
	w("sleep 10")
	return b.String()
}
