package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"
)

// runDemo executes newDemoCmd with args; it returns stdout and the error.
func runDemo(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newDemoCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(testkit.Context(t, time.Minute))
	return out.String(), err
}

func TestDemoFlagErrors(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"one cluster", []string{"--clusters", "1"}, "invalid --clusters: 1: want 2..9 (a mesh needs at least two clusters): demo: invalid option"},
		{"no nodes", []string{"--nodes", "0"}, "invalid --nodes: 0: want 1..9 nodes per cluster: demo: invalid option"},
		{"too many pods", []string{"--pods", "12"}, "invalid --pods: 12: want 1..9 pods per node: demo: invalid option"},
		{"bad encryption", []string{"--encryption", "rot13"}, `invalid --encryption: "rot13": want wireguard, ipsec or none: demo: invalid option`},
		{"zero timeout", []string{"--timeout", "0s"}, "invalid --timeout: 0s: must be positive: demo: invalid option"},
		{"bad name", []string{"--name", "a_b"}, `invalid --name: "a_b": want 1 to 8 of [a-z0-9] (it goes into namespace names): demo: invalid option`},
		{"bin dir without binaries", []string{"--bin-dir", empty, "--dir", filepath.Join(empty, "w")},
			"demo: preflight: invalid --bin-dir: strait-apiserver in " + empty + ": binaries: binary missing (build them with `make demo`, or `go build -o " + empty + "/ ./cmd/...`): demo: invalid option"},
		{"argument", []string{"now"}, `unknown command "now" for "demo"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runDemo(t, tt.args...)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error:\n got %v\nwant prefix %s", err, tt.want)
			}
		})
	}
}

func TestDemoDownNothing(t *testing.T) {
	dir := t.TempDir()
	out, err := runDemo(t, "down", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "no demo in " + dir + ": nothing to remove\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}
