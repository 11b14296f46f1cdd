package vm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// cpioEntry is one parsed newc entry.
type cpioEntry struct {
	Name  string
	Mode  uint32
	Data  string
	Major uint32
	Minor uint32
}

// readNewc parses a newc archive up to its trailer, checking magic and
// 4-byte alignment of every header and data block.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	field := func(h []byte, i int) uint32 {
		v, err := strconv.ParseUint(string(h[6+8*i:6+8*i+8]), 16, 32)
		if err != nil {
			t.Fatalf("header at %d: field %d: %v", off, i, err)
		}
		return uint32(v)
	}
	for {
		if off%4 != 0 {
			t.Fatalf("header at %d is not 4-byte aligned", off)
		}
		if off+cpioHeaderSize > len(b) {
			t.Fatalf("archive ends at %d without a trailer", len(b))
		}
		h := b[off : off+cpioHeaderSize]
		if string(h[:6]) != cpioMagic {
			t.Fatalf("header at %d: magic %q", off, h[:6])
		}
		mode, size, rmaj, rmin, nsize := field(h, 1), field(h, 6), field(h, 9), field(h, 10), field(h, 11)
		nameEnd := off + cpioHeaderSize + int(nsize)
		name := string(b[off+cpioHeaderSize : nameEnd-1])
		if b[nameEnd-1] != 0 {
			t.Fatalf("entry %q: name not NUL-terminated", name)
		}
		dataOff := (nameEnd + 3) &^ 3
		data := string(b[dataOff : dataOff+int(size)])
		off = (dataOff + int(size) + 3) &^ 3
		if name == cpioTrailer {
			return out
		}
		out = append(out, cpioEntry{Name: name, Mode: mode, Data: data, Major: rmaj, Minor: rmin})
	}
}

func TestTreeWriteCPIO(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "prog")
	if err := os.WriteFile(host, []byte("#!/bin/sh\necho hi\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	tr := NewTree()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.AddBytes("/etc/hosts", []byte("127.0.0.1 localhost\n"), 0o644))
	must(tr.AddHostFile("/opt/x/bin/prog", host))
	must(tr.AddSymlink("/bin/sh", "/bin/busybox"))
	must(tr.AddCharDev("/dev/console", 0o600, 5, 1))
	must(tr.AddDir("/tmp", 0o777|fs.ModeSticky))
	must(tr.AddBytes("/a", []byte("odd"), 0o600)) // 3 bytes: padding follows
	must(tr.AddBytes("/etc/hosts", []byte("replaced\n"), 0o644))
	var buf bytes.Buffer
	must(tr.WriteCPIO(&buf))
	got := readNewc(t, buf.Bytes())
	want := []cpioEntry{
		{Name: "a", Mode: cpioTypeRegular | 0o600, Data: "odd"},
		{Name: "bin", Mode: cpioTypeDir | 0o755},
		{Name: "bin/sh", Mode: cpioTypeSymlink | 0o777, Data: "/bin/busybox"},
		{Name: "dev", Mode: cpioTypeDir | 0o755},
		{Name: "dev/console", Mode: cpioTypeChar | 0o600, Major: 5, Minor: 1},
		{Name: "etc", Mode: cpioTypeDir | 0o755},
		{Name: "etc/hosts", Mode: cpioTypeRegular | 0o644, Data: "replaced\n"},
		{Name: "opt", Mode: cpioTypeDir | 0o755},
		{Name: "opt/x", Mode: cpioTypeDir | 0o755},
		{Name: "opt/x/bin", Mode: cpioTypeDir | 0o755},
		{Name: "opt/x/bin/prog", Mode: cpioTypeRegular | 0o750, Data: "#!/bin/sh\necho hi\n"},
		{Name: "tmp", Mode: cpioTypeDir | 0o1777},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("archive entries (-want +got):\n%s", diff)
	}
}

// TestCPIOToolReadsArchive extracts the archive with GNU cpio, the
// reference reader of the format.
func TestCPIOToolReadsArchive(t *testing.T) {
	cpioTool, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("needs the cpio program (Debian package cpio, installed by vmtest): " + err.Error())
	}
	tr := NewTree()
	for i := range 5 {
		if err := tr.AddBytes(fmt.Sprintf("/d%d/f%d", i%2, i), bytes.Repeat([]byte{byte('a' + i)}, i*7+1), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.AddSymlink("/d0/link", "f0"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tr.WriteCPIO(&buf); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(cpioTool, "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = out, &buf
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, msg)
	}
	for i := range 5 {
		p := filepath.Join(out, fmt.Sprintf("d%d/f%d", i%2, i))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Repeat(string(rune('a'+i)), i*7+1); string(b) != want {
			t.Errorf("%s = %q, want %q", p, b, want)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
			t.Errorf("%s mode %v, want 0640", p, fi.Mode().Perm())
		}
	}
	if target, err := os.Readlink(filepath.Join(out, "d0/link")); err != nil || target != "f0" {
		t.Errorf("d0/link -> %q, %v; want f0", target, err)
	}
}

func TestCPIOWriterRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(*CPIOWriter) error
	}{
		{"absolute name", func(c *CPIOWriter) error { return c.Dir("/bin", 0o755) }},
		{"dot-dot", func(c *CPIOWriter) error { return c.Dir("a/../b", 0o755) }},
		{"empty", func(c *CPIOWriter) error { return c.Dir("", 0o755) }},
		{"trailing slash", func(c *CPIOWriter) error { return c.Dir("a/", 0o755) }},
		{"trailer name", func(c *CPIOWriter) error { return c.Dir(cpioTrailer, 0o755) }},
		{"NUL", func(c *CPIOWriter) error { return c.Dir("a\x00b", 0o755) }},
		{"empty symlink target", func(c *CPIOWriter) error { return c.Symlink("a", "") }},
		{"short data", func(c *CPIOWriter) error { return c.File("a", 0o644, 10, strings.NewReader("abc")) }},
		{"after close", func(c *CPIOWriter) error { c.Close(); return c.Dir("a", 0o755) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.write(NewCPIOWriter(io.Discard))
			if err == nil {
				t.Fatal("no error")
			}
			if tc.name != "short data" && !errors.Is(err, ErrCPIOEntry) && !errors.Is(err, ErrCPIOClosed) {
				t.Fatalf("error %v is neither ErrCPIOEntry nor ErrCPIOClosed", err)
			}
		})
	}
}

func TestGuestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/bin/sh", "bin/sh"}, {"bin/sh", "bin/sh"}, {"/", ""}, {"/a//b", ""}, {"/a/../b", ""}, {"/a/", ""},
	} {
		got, err := guestName(tc.in)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("guestName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
