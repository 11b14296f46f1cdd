package vm

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// ModuleIndex is a kernel's module dependency graph, read from the
// modules.dep (and modules.builtin) files depmod writes under
// /lib/modules/<release>. Paths are relative to that directory.
type ModuleIndex struct {
	deps    map[string][]string // module path → paths it depends on
	byName  map[string]string   // normalised module name → path
	builtin map[string]bool     // normalised names of built-in modules
}

// ModuleName returns the normalised module name of a module path:
// "kernel/crypto/ghash-generic.ko.xz" → "ghash_generic". modprobe treats
// '-' and '_' alike; names here always use '_'.
func ModuleName(p string) string {
	base := path.Base(p)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return NormalizeModuleName(base)
}

// NormalizeModuleName replaces '-' by '_'.
func NormalizeModuleName(name string) string { return strings.ReplaceAll(name, "-", "_") }

func validModulePath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." {
		return false
	}
	base := path.Base(p)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(base, ext) && len(base) > len(ext) {
			return true
		}
	}
	return false
}

// ParseModulesDep reads a modules.dep file ("path.ko: dep.ko dep.ko" per
// line). name is used in errors ("modules.dep:12: ...").
func ParseModulesDep(r io.Reader, name string) (*ModuleIndex, error) {
	ix := &ModuleIndex{deps: map[string][]string{}, byName: map[string]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: no ':' after the module path: %w", name, line, ErrModulesDep)
		}
		mod = strings.TrimSpace(mod)
		if !validModulePath(mod) {
			return nil, fmt.Errorf("%s:%d: module path %q: %w", name, line, mod, ErrModulesDep)
		}
		if _, dup := ix.deps[mod]; dup {
			return nil, fmt.Errorf("%s:%d: module %q listed twice: %w", name, line, mod, ErrModulesDep)
		}
		deps := strings.Fields(rest)
		for _, d := range deps {
			if !validModulePath(d) {
				return nil, fmt.Errorf("%s:%d: dependency %q of %s: %w", name, line, d, mod, ErrModulesDep)
			}
		}
		ix.deps[mod] = deps
		// The first path listed for a name wins, as in modprobe.
		if _, ok := ix.byName[ModuleName(mod)]; !ok {
			ix.byName[ModuleName(mod)] = mod
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return ix, nil
}

// AddBuiltin reads a modules.builtin file (one module path a line): those
// names resolve without a file.
func (ix *ModuleIndex) AddBuiltin(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if !validModulePath(text) {
			return fmt.Errorf("%s:%d: module path %q: %w", name, line, text, ErrModulesDep)
		}
		ix.builtin[ModuleName(text)] = true
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return nil
}

// Has reports whether name (either spelling) is a loadable module.
func (ix *ModuleIndex) Has(name string) bool {
	_, ok := ix.byName[NormalizeModuleName(name)]
	return ok
}

// Builtin reports whether name is built into the kernel.
func (ix *ModuleIndex) Builtin(name string) bool { return ix.builtin[NormalizeModuleName(name)] }

// Under returns the paths of all modules under dir ("kernel/crypto"), sorted.
func (ix *ModuleIndex) Under(dir string) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var out []string
	for p := range ix.deps {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Closure returns the module files needed to load the named modules and
// the module paths in paths, with everything they depend on, sorted.
// Built-in names need no file and are skipped; an unknown name is an
// ErrUnknownModule error naming it. A dependency missing from the index is
// an ErrModulesDep error.
func (ix *ModuleIndex) Closure(names, paths []string) ([]string, error) {
	seen := map[string]bool{}
	var visit func(p, from string) error
	visit = func(p, from string) error {
		if seen[p] {
			return nil
		}
		deps, ok := ix.deps[p]
		if !ok {
			return fmt.Errorf("dependency %s of %s is not in modules.dep: %w", p, from, ErrModulesDep)
		}
		seen[p] = true
		for _, d := range deps {
			if err := visit(d, p); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		norm := NormalizeModuleName(n)
		p, ok := ix.byName[norm]
		if !ok {
			if ix.builtin[norm] {
				continue
			}
			return nil, fmt.Errorf("module %q: %w", n, ErrUnknownModule)
		}
		if err := visit(p, n); err != nil {
			return nil, err
		}
	}
	for _, p := range paths {
		if err := visit(p, p); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}
