package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefusesBeforeBooting covers the answers vmtest gives without
// starting a guest: bad flags (2) and binaries it cannot run (125).
func TestRunRefusesBeforeBooting(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ = filepath.EvalSymlinks(sh)
	for _, tc := range []struct {
		name     string
		args     []string
		want     int
		wantText string
	}{
		{"no binary", []string{"--"}, 2, "no binary to run"},
		{"bad file spec", []string{"--file", "x:relative", "--", "/bin/true"}, 2, "--file \"x:relative\""},
		{"bad env", []string{"--env", "1X=y", "--", "/bin/true"}, 2, "--env \"1X=y\""},
		{"bad module", []string{"--modules", "a/b", "--", "/bin/true"}, 2, "module name \"a/b\""},
		{"unknown flag", []string{"--nope", "--", "/bin/true"}, 2, "flag provided but not defined"},
		{"missing binary", []string{"--no-install", "--", "/nonexistent/prog"}, exitRunnerFailed, "no such file, and not a Go package path"},
		{"missing absolute binary with a dot", []string{"--no-install", "--", "/tmp/none/x.test"}, exitRunnerFailed, "no such file, and not a Go package path"},
		{"package that does not build", []string{"--no-install", "--", "./nonexistent-pkg"}, exitRunnerFailed, "build ./nonexistent-pkg (CGO_ENABLED=0)"},
		{"dynamic binary", []string{"--no-install", "--", sh}, exitRunnerFailed, "CGO_ENABLED=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			if got := run(tc.args, &out, &errOut); got != tc.want {
				t.Fatalf("run(%q) = %d, want %d; stderr:\n%s", tc.args, got, tc.want, errOut.String())
			}
			if !strings.Contains(errOut.String(), tc.wantText) {
				t.Fatalf("stderr lacks %q:\n%s", tc.wantText, errOut.String())
			}
		})
	}
}
