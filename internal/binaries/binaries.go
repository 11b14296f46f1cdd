package binaries

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvDir names the environment variable holding a prebuilt binary directory.
const EnvDir = "STRAIT_BIN_DIR"

// Module is the Go module whose cmd/ directory holds the binaries.
const Module = "github.com/strait-net/strait"

// builtMarker is the file Dir leaves in a directory it built, so Remove
// never deletes a directory it did not create.
const builtMarker = ".strait-binaries-built"

var (
	// ErrNotDirectory: STRAIT_BIN_DIR names something that is not a directory.
	ErrNotDirectory = errors.New("binaries: not a directory")
	// ErrMissing: a required binary is absent from the directory.
	ErrMissing = errors.New("binaries: binary missing")
	// ErrNoModule: the module root (go.mod of Module) was not found.
	ErrNoModule = errors.New("binaries: module root not found")
)

// Dir returns a directory holding the binaries of ./cmd/...: STRAIT_BIN_DIR
// when set, otherwise a new temporary directory they are built into.
func Dir(ctx context.Context) (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			return "", fmt.Errorf("%s %q: %w", EnvDir, d, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return "", fmt.Errorf("%s %q: %w", EnvDir, d, err)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%s %q: %w", EnvDir, d, ErrNotDirectory)
		}
		return abs, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "strait-bin-")
	if err != nil {
		return "", fmt.Errorf("binary directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, builtMarker), nil, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("binary directory: %w", err)
	}
	if err := Build(ctx, root, dir, "./cmd/..."); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// Build runs `go build -o outDir/ pkgs...` in the module root.
func Build(ctx context.Context, root, outDir string, pkgs ...string) error {
	args := append([]string{"build", "-o", outDir + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Require checks that every named binary is an executable file in dir.
func Require(dir string, names ...string) error {
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s in %s: %w", n, dir, ErrMissing)
		}
	}
	return nil
}

// Remove deletes a directory that Dir built; a STRAIT_BIN_DIR (no marker)
// is left alone.
func Remove(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, builtMarker)); err != nil {
		return nil
	}
	return os.RemoveAll(dir)
}

// ModuleRoot finds the directory of Module's go.mod, walking up from the
// working directory.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePath(b) == Module {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("from %s: %w", wd, ErrNoModule)
		}
	}
}

// modulePath returns the module directive of a go.mod file.
func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}
