package vm

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testNonce = "0123456789abcdef"

func TestParseMarker(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want Marker
	}{
		{"exit 0", "STRAIT-VMTEST-EXIT 0123456789abcdef 0", Marker{Kind: MarkerExit}},
		{"exit 255 with CR", "STRAIT-VMTEST-EXIT 0123456789abcdef 255\r", Marker{Kind: MarkerExit, Status: 255}},
		{"exit after kernel text", "[    3.1] random: crng init doneSTRAIT-VMTEST-EXIT 0123456789abcdef 3", Marker{Kind: MarkerExit, Status: 3}},
		{"exit with trailing word", "STRAIT-VMTEST-EXIT 0123456789abcdef 1 x", Marker{Kind: MarkerExit, Status: 1}},
		{"start", "STRAIT-VMTEST-START 0123456789abcdef", Marker{Kind: MarkerStart}},
		{"other nonce", "STRAIT-VMTEST-EXIT ffffffffffffffff 0", Marker{}},
		{"nonce prefix only", "STRAIT-VMTEST-START 0123456789abcdef00", Marker{}},
		{"status out of range", "STRAIT-VMTEST-EXIT 0123456789abcdef 256", Marker{}},
		{"negative", "STRAIT-VMTEST-EXIT 0123456789abcdef -1", Marker{}},
		{"leading zero", "STRAIT-VMTEST-EXIT 0123456789abcdef 01", Marker{}},
		{"no status", "STRAIT-VMTEST-EXIT 0123456789abcdef ", Marker{}},
		{"plus sign", "STRAIT-VMTEST-EXIT 0123456789abcdef +1", Marker{}},
		{"plain output", "--- PASS: TestX (0.00s)", Marker{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseMarker(tc.line, testNonce); got != tc.want {
				t.Fatalf("ParseMarker(%q) = %+v, want %+v", tc.line, got, tc.want)
			}
		})
	}
	if got := ParseMarker("STRAIT-VMTEST-EXIT  0", ""); got != (Marker{}) {
		t.Fatalf("empty nonce matched: %+v", got)
	}
}

func TestConsoleCopy(t *testing.T) {
	start := "STRAIT-VMTEST-START " + testNonce + "\r\n"
	exit := func(s int) string { return "\r\nSTRAIT-VMTEST-EXIT " + testNonce + " " + strconv.Itoa(s) + "\r\n" }
	boot := "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r\nBooting from ROM...\r\n"
	for _, tc := range []struct {
		name       string
		in         string
		wantOut    string
		wantDiag   string
		wantKernel string
		want       ConsoleResult // times and Tail not compared
	}{
		{
			name:       "pass",
			in:         boot + "vmtest-init: modules not loaded: aesni_intel\r\n" + start + "=== RUN   TestA\r\n--- PASS: TestA\r\nPASS\r\n" + exit(0) + "[    5.1] reboot: Power down\r\n",
			wantOut:    "=== RUN   TestA\n--- PASS: TestA\nPASS\n",
			wantDiag:   "vmtest-init: modules not loaded: aesni_intel\n",
			wantKernel: "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\nBooting from ROM...\n[    5.1] reboot: Power down\n",
			want:       ConsoleResult{Started: true, Exited: true, Status: 0},
		},
		{
			name:       "kernel lines removed from output, blank lines kept inside",
			in:         start + "a\r\n[   12.000001] wireguard: loaded\r\n\r\nb\r\n" + exit(1),
			wantOut:    "a\n\nb\n",
			wantKernel: "[   12.000001] wireguard: loaded\n",
			want:       ConsoleResult{Started: true, Exited: true, Status: 1},
		},
		{
			name:    "last line without newline",
			in:      start + "partial" + exit(2),
			wantOut: "partial\n",
			want:    ConsoleResult{Started: true, Exited: true, Status: 2},
		},
		{
			name:       "panic before the binary",
			in:         boot + "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\r\n",
			wantKernel: "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\nBooting from ROM...\n[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n",
			want:       ConsoleResult{Panic: "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs"},
		},
		{
			name:    "binary prints a marker of another run",
			in:      start + "STRAIT-VMTEST-EXIT 1111111111111111 0\r\nmore\r\n",
			wantOut: "STRAIT-VMTEST-EXIT 1111111111111111 0\nmore\n",
			want:    ConsoleResult{Started: true},
		},
		{
			name:       "second exit marker ignored",
			in:         start + exit(4) + exit(0),
			wantOut:    "",
			wantKernel: "\nSTRAIT-VMTEST-EXIT " + testNonce + " 0\n",
			want:       ConsoleResult{Started: true, Exited: true, Status: 4},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, diag, kern strings.Builder
			var exits []int
			c := &Console{Nonce: testNonce, Out: &out, Diag: &diag, Kernel: &kern, Now: func() time.Time { return time.Unix(0, 0) },
				OnExit: func(s int) { exits = append(exits, s) }}
			got, err := c.Copy(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if wantExits := map[bool][]int{true: {tc.want.Status}}[tc.want.Exited]; !cmp.Equal(wantExits, exits) {
				t.Errorf("OnExit calls %v, want %v", exits, wantExits)
			}
			got.StartedAt, got.ExitedAt, got.Tail = time.Time{}, time.Time{}, nil
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantOut, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDiag, diag.String()); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantKernel, kern.String()); diff != "" {
				t.Errorf("kernel lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConsoleTailAndLongLines(t *testing.T) {
	var in strings.Builder
	for i := range 100 {
		in.WriteString("[    1.0] line " + strconv.Itoa(i) + "\n")
	}
	long := strings.Repeat("x", 200_000)
	in.WriteString("STRAIT-VMTEST-START " + testNonce + "\n" + long + "\n")
	var out strings.Builder
	c := &Console{Nonce: testNonce, Out: &out, TailLines: 3}
	res, err := c.Copy(strings.NewReader(in.String()))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"[    1.0] line 97", "[    1.0] line 98", "[    1.0] line 99"}, res.Tail); diff != "" {
		t.Errorf("tail (-want +got):\n%s", diff)
	}
	if out.String() != long+"\n" {
		t.Errorf("long line: got %d bytes, want %d", out.Len(), len(long)+1)
	}
}

// FuzzParseMarker: a rendered marker always parses back; arbitrary lines
// never yield a status outside 0..255, and an exit marker needs the nonce.
func FuzzParseMarker(f *testing.F) {
	f.Add("STRAIT-VMTEST-EXIT 0123456789abcdef 0", 0)
	f.Add("STRAIT-VMTEST-START 0123456789abcdef", 7)
	f.Add("x STRAIT-VMTEST-EXIT 0123456789abcdef 99999999999999999999", 255)
	f.Fuzz(func(t *testing.T, line string, status int) {
		m := ParseMarker(line, testNonce)
		switch m.Kind {
		case MarkerExit:
			if m.Status < 0 || m.Status > 255 {
				t.Fatalf("status %d out of range from %q", m.Status, line)
			}
			if !strings.Contains(line, ExitMarker+" "+testNonce+" ") {
				t.Fatalf("exit marker without nonce in %q", line)
			}
		case MarkerStart:
			if !strings.Contains(line, StartMarker+" "+testNonce) {
				t.Fatalf("start marker without nonce in %q", line)
			}
		}
		if status >= 0 && status <= 255 {
			rendered := line + ExitMarker + " " + testNonce + " " + strconv.Itoa(status)
			if strings.Contains(line, ExitMarker+" "+testNonce+" ") {
				return // an earlier marker on the line wins
			}
			if got := ParseMarker(rendered, testNonce); got != (Marker{Kind: MarkerExit, Status: status}) {
				t.Fatalf("ParseMarker(%q) = %+v, want exit %d", rendered, got, status)
			}
		}
	})
}

// FuzzConsole: Copy never fails or panics on any console bytes; a reported
// status is in range; the exit marker line never reaches the output.
func FuzzConsole(f *testing.F) {
	f.Add([]byte("STRAIT-VMTEST-START 0123456789abcdef\r\nhello\r\n\r\nSTRAIT-VMTEST-EXIT 0123456789abcdef 0\r\n"))
	f.Add([]byte("[    1.0] Kernel panic - not syncing\n"))
	f.Add([]byte("vmtest-init: modules not loaded: x\nSTRAIT-VMTEST-START 0123456789abcdef\npartial"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out, diag, kern strings.Builder
		c := &Console{Nonce: testNonce, Out: &out, Diag: &diag, Kernel: &kern, TailLines: 5}
		res, err := c.Copy(strings.NewReader(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Exited && (res.Status < 0 || res.Status > 255) {
			t.Fatalf("status %d", res.Status)
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if ParseMarker(l, testNonce).Kind == MarkerExit {
				t.Fatalf("exit marker line %q in the output", l)
			}
		}
		if len(res.Tail) > 5 {
			t.Fatalf("tail holds %d lines", len(res.Tail))
		}
	})
}
