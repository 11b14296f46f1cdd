package vm

import (
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFileSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want FileSpec
		bad  bool
	}{
		{in: "bin/strait-agent:/opt/strait/bin/strait-agent", want: FileSpec{Src: "bin/strait-agent", Dst: "/opt/strait/bin/strait-agent"}},
		{in: "/etc/keys", want: FileSpec{Src: "/etc/keys", Dst: "/etc/keys"}},
		{in: "/etc/keys:", want: FileSpec{Src: "/etc/keys", Dst: "/etc/keys"}},
		{in: "x:/tmp/x", want: FileSpec{Src: "x", Dst: "/tmp/x"}},
		{in: "", bad: true},
		{in: ":/a", bad: true},
		{in: "rel", bad: true},
		{in: "a:b", bad: true},
		{in: "a:/", bad: true},
		{in: "a:/x/../y", bad: true},
		{in: "a:/x/", bad: true},
		{in: "a:/proc/x", bad: true},
		{in: "a:/dev", bad: true},
		{in: "a:/run/strait", bad: true},
		{in: "a:/opt/vmtest/bin/x", bad: true},
		{in: "a:/init", bad: true},
		{in: "a:/x:y", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFileSpec(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBadFlag) || !strings.Contains(err.Error(), "--file") {
					t.Fatalf("ParseFileSpec(%q) = %+v, %v; want an ErrBadFlag naming --file", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzParseFileSpec: accepted specs have an absolute, clean destination
// outside the runner's directories.
func FuzzParseFileSpec(f *testing.F) {
	for _, s := range []string{"a:/b", "/x", "a:/proc", "a:/opt/vmtest2/x", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := ParseFileSpec(s)
		if err != nil {
			if !errors.Is(err, ErrBadFlag) {
				t.Fatalf("error %v is not ErrBadFlag", err)
			}
			return
		}
		if fs.Src == "" || !path.IsAbs(fs.Dst) || path.Clean(fs.Dst) != fs.Dst || fs.Dst == "/" {
			t.Fatalf("accepted %q as %+v", s, fs)
		}
		if _, err := guestName(fs.Dst); err != nil {
			t.Fatalf("accepted %q but the tree refuses %q: %v", s, fs.Dst, err)
		}
		for _, r := range reservedGuestDirs {
			if fs.Dst == r || strings.HasPrefix(fs.Dst, r+"/") {
				t.Fatalf("accepted %q under %s", s, r)
			}
		}
	})
}

func TestParseEnvAndModules(t *testing.T) {
	for in, ok := range map[string]bool{"A=b": true, "_X1=": true, "K=v=w": true, "1A=b": false, "A": false, "=b": false, "A-B=c": false} {
		if _, err := ParseEnv(in); (err == nil) != ok {
			t.Errorf("ParseEnv(%q): %v", in, err)
		}
	}
	got, err := ParseModules(" wireguard, esp4,,ghash-generic ")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"wireguard", "esp4", "ghash-generic"}, got); diff != "" {
		t.Errorf("modules (-want +got):\n%s", diff)
	}
	if _, err := ParseModules("wireguard,../x"); !errors.Is(err, ErrBadFlag) {
		t.Errorf("bad module name accepted: %v", err)
	}
}

// TestShQuote runs the quoted words through the host's shell.
func TestShQuote(t *testing.T) {
	words := []string{"", "plain", "it's", "a b", `"$HOME" $(id) ` + "`x`", "'", "''", "\\", "new\nline", "*?[a]", "-n"}
	var script strings.Builder
	script.WriteString("for w in")
	for _, w := range words {
		script.WriteString(" " + shQuote(w))
	}
	script.WriteString("; do printf '%s\\0' \"$w\"; done")
	out, err := exec.Command("sh", "-c", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if diff := cmp.Diff(words, got); diff != "" {
		t.Fatalf("words after the shell (-want +got):\n%s", diff)
	}
}

func TestInitScript(t *testing.T) {
	s := initScript{
		Nonce:   testNonce,
		Modules: []string{"wireguard", "esp4"},
		Env:     []string{"STRAIT_BIN_DIR=/opt/strait/bin", "TRICKY=it's $x"},
		Dir:     "/work/main/encryption/ipsec",
		Argv:    []string{"/opt/vmtest/bin/ipsec.test", "-test.run", "Kernel|Rotation", "-test.v=true"},
	}.render()
	if out, err := exec.Command("sh", "-n", "-c", s).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v: %s\n%s", err, out, s)
	}
	for _, want := range []string{
		"export TRICKY='it'\\''s $x'",
		"cd '/work/main/encryption/ipsec' ||",
		"'/opt/vmtest/bin/ipsec.test' '-test.run' 'Kernel|Rotation' '-test.v=true' </dev/null\nstatus=$?\n",
		"echo 'STRAIT-VMTEST-START " + testNonce + "'\n",
		"echo 'STRAIT-VMTEST-EXIT " + testNonce + " '\"$status\"\npoweroff -f\n",
		"for m in 'wireguard' 'esp4'; do modprobe",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("init script lacks %q:\n%s", want, s)
		}
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f3c)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3c)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f3c)\n"
	got, err := parseLdd(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libbpf.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("libraries (-want +got):\n%s", diff)
	}
	if _, err := parseLdd("\tlibmissing.so.3 => not found\n"); !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "libmissing.so.3") {
		t.Fatalf("missing library: %v", err)
	}
}

// goTool finds the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command: %v", err)
	}
	return p
}

// buildStatic builds a Go package of this module with CGO_ENABLED=0.
func buildStatic(t *testing.T, pkg, out string) {
	t.Helper()
	cmd := exec.Command(goTool(t), "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
}

func TestCheckStatic(t *testing.T) {
	dir := t.TempDir()
	static := filepath.Join(dir, "selfcheck")
	buildStatic(t, "github.com/strait-net/strait/tools/vmtest/internal/selfcheck", static)
	if err := CheckStatic(static); err != nil {
		t.Errorf("static Go binary: %v", err)
	}
	script := filepath.Join(dir, "run.sh")
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	os.WriteFile(text, []byte("hello\n"), 0o644)
	if err := CheckStatic(script); err != nil {
		t.Errorf("script: %v", err)
	}
	if err := CheckStatic(text); !errors.Is(err, ErrNotExecutable) {
		t.Errorf("text file: %v, want ErrNotExecutable", err)
	}
	// The host's own sh is dynamically linked on Debian (dash).
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ = filepath.EvalSymlinks(sh)
	if libs, _ := hostLibraries(t.Context(), sh); len(libs) > 0 {
		if err := CheckStatic(sh); !errors.Is(err, ErrDynamicBinary) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
			t.Errorf("dynamic %s: %v, want ErrDynamicBinary with advice", sh, err)
		}
	}
}
