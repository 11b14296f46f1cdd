package binaries

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestModulePath(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "module github.com/strait-net/strait\n\ngo 1.26\n", want: Module},
		{name: "quoted", in: "// c\nmodule \"example.com/x\"\n", want: "example.com/x"},
		{name: "none", in: "go 1.26\n", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := modulePath([]byte(tt.in)); got != tt.want {
				t.Errorf("modulePath = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd")); err != nil {
		t.Errorf("module root %s has no cmd/: %v", root, err)
	}
}

func TestDirFromEnv(t *testing.T) {
	d := t.TempDir()
	t.Setenv(EnvDir, d)
	got, err := Dir(context.Background())
	if err != nil || got != d {
		t.Fatalf("Dir = %q, %v; want %q", got, err, d)
	}
	if err := Require(got, "strait-agent"); !errors.Is(err, ErrMissing) {
		t.Errorf("Require in empty dir = %v, want ErrMissing", err)
	}
	if err := os.WriteFile(filepath.Join(d, "strait-agent"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Require(got, "strait-agent"); err != nil {
		t.Errorf("Require = %v", err)
	}
	if err := Remove(got); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d); err != nil {
		t.Errorf("Remove deleted STRAIT_BIN_DIR: %v", err)
	}

	f := filepath.Join(d, "file")
	os.WriteFile(f, nil, 0o600)
	t.Setenv(EnvDir, f)
	if _, err := Dir(context.Background()); !errors.Is(err, ErrNotDirectory) {
		t.Errorf("Dir on a file = %v, want ErrNotDirectory", err)
	}
}

func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("short: builds a binary")
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := Build(context.Background(), root, out, "./cmd/strait-apiserver"); err != nil {
		t.Fatal(err)
	}
	if err := Require(out, "strait-apiserver"); err != nil {
		t.Error(err)
	}
	if err := Build(context.Background(), root, out, "./cmd/no-such-binary"); err == nil {
		t.Error("Build of a missing package succeeded")
	}
}
