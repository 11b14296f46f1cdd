package vm

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// CheckStatic verifies that path can run in the guest without libraries:
// a statically linked x86-64 ELF executable, or a "#!" script (run by the
// guest's busybox). A dynamically linked ELF is an ErrDynamicBinary error.
func CheckStatic(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	defer f.Close()
	head := make([]byte, 2)
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("binary %s: %w", path, ErrNotExecutable)
	}
	if string(head) == "#!" {
		return nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("binary %s: %w: %w", path, ErrNotExecutable, err)
	}
	if ef.Machine != elf.EM_X86_64 || (ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN) {
		return fmt.Errorf("binary %s (%s, %s): %w", path, ef.Machine, ef.Type, ErrNotExecutable)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
			return fmt.Errorf("binary %s uses the dynamic loader %s: %w (build it with CGO_ENABLED=0; "+
				"for go test: CGO_ENABLED=0 go test -exec ..., without -race)",
				path, strings.TrimRight(string(interp), "\x00"), ErrDynamicBinary)
		}
	}
	return nil
}

// parseLdd returns the library paths (including the dynamic loader) in
// the output of ldd. "not found" libraries are an error naming them.
func parseLdd(out string) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if name, target, ok := strings.Cut(line, " => "); ok {
			target = strings.TrimSpace(target)
			if strings.HasPrefix(target, "not found") {
				return nil, fmt.Errorf("%s: %w", strings.TrimSpace(name), ErrLibraryNotFound)
			}
			if p, _, _ := strings.Cut(target, " ("); strings.HasPrefix(p, "/") {
				libs = append(libs, p)
			}
			continue
		}
		if p, _, _ := strings.Cut(line, " ("); strings.HasPrefix(p, "/") {
			libs = append(libs, p)
		}
	}
	return libs, nil
}

// hostLibraries lists the shared libraries a host program needs (ldd).
// A static program needs none.
func hostLibraries(ctx context.Context, prog string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", prog).CombinedOutput()
	if err != nil {
		// ldd exits 1 for static programs ("not a dynamic executable").
		if strings.Contains(string(out), "not a dynamic executable") || strings.Contains(string(out), "statically linked") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", prog, err, strings.TrimSpace(string(out)))
	}
	libs, err := parseLdd(string(out))
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", prog, err)
	}
	return libs, nil
}

// AddHostProgram copies the host program src to guest path dst together
// with the shared libraries ldd lists (at their host paths).
func (t *Tree) AddHostProgram(ctx context.Context, dst, src string) error {
	libs, err := hostLibraries(ctx, src)
	if err != nil {
		return err
	}
	if err := t.AddHostFile(dst, src); err != nil {
		return err
	}
	for _, l := range libs {
		if err := t.AddHostFile(l, l); err != nil {
			return fmt.Errorf("library of %s: %w", src, err)
		}
	}
	return nil
}
