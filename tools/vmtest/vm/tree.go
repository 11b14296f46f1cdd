package vm

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Tree is the file tree of an initramfs being assembled: guest path → entry.
// A later Add of the same path replaces the earlier one. WriteCPIO adds
// missing parent directories (mode 0755) and writes parents first.
type Tree struct {
	entries map[string]treeEntry
}

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
	kindCharDev
)

type treeEntry struct {
	kind         entryKind
	perm         fs.FileMode
	hostPath     string // kindFile: read at write time, unless data is set
	data         []byte // kindFile with in-memory content
	hasData      bool
	target       string // kindSymlink
	major, minor uint32 // kindCharDev
}

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{entries: map[string]treeEntry{}} }

// guestName turns a guest path ("/bin/sh" or "bin/sh") into a cpio name.
func guestName(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	c := path.Clean(p)
	if c == "/" || c != p || strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("guest path %q: %w", p, ErrCPIOEntry)
	}
	return c[1:], nil
}

func (t *Tree) add(p string, e treeEntry) error {
	name, err := guestName(p)
	if err != nil {
		return err
	}
	t.entries[name] = e
	return nil
}

// AddDir adds a directory.
func (t *Tree) AddDir(p string, perm fs.FileMode) error {
	return t.add(p, treeEntry{kind: kindDir, perm: perm})
}

// AddBytes adds a regular file with the given content.
func (t *Tree) AddBytes(p string, data []byte, perm fs.FileMode) error {
	return t.add(p, treeEntry{kind: kindFile, perm: perm, data: data, hasData: true})
}

// AddSymlink adds a symbolic link.
func (t *Tree) AddSymlink(p, target string) error {
	return t.add(p, treeEntry{kind: kindSymlink, target: target})
}

// AddCharDev adds a character device node.
func (t *Tree) AddCharDev(p string, perm fs.FileMode, major, minor uint32) error {
	return t.add(p, treeEntry{kind: kindCharDev, perm: perm, major: major, minor: minor})
}

// AddHostFile adds the host file src (symlinks followed) at guest path p,
// keeping its permission bits. The content is read by WriteCPIO.
func (t *Tree) AddHostFile(p, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("file for %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("file for %s: %s is not a regular file: %w", p, src, ErrCPIOEntry)
	}
	return t.add(p, treeEntry{kind: kindFile, perm: fi.Mode().Perm(), hostPath: src})
}

// AddHostTree adds src at guest path p: a file as AddHostFile does, a
// directory recursively (symlinks inside it are kept as symlinks).
func (t *Tree) AddHostTree(p, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("tree for %s: %w", p, err)
	}
	if !fi.IsDir() {
		return t.AddHostFile(p, src)
	}
	return filepath.WalkDir(src, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("tree for %s: %w", p, err)
		}
		rel, err := filepath.Rel(src, hp)
		if err != nil {
			return fmt.Errorf("tree for %s: %w", p, err)
		}
		gp := path.Join(p, filepath.ToSlash(rel))
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(hp)
			if err != nil {
				return fmt.Errorf("tree for %s: %w", p, err)
			}
			return t.AddSymlink(gp, target)
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("tree for %s: %w", p, err)
			}
			return t.AddDir(gp, info.Mode().Perm())
		case d.Type().IsRegular():
			return t.AddHostFile(gp, hp)
		default:
			return nil // sockets, fifos, devices: not copied
		}
	})
}

// Has reports whether the guest path is in the tree.
func (t *Tree) Has(p string) bool {
	name, err := guestName(p)
	if err != nil {
		return false
	}
	_, ok := t.entries[name]
	return ok
}

// Len returns the number of entries (without implicit parents).
func (t *Tree) Len() int { return len(t.entries) }

// WriteCPIO writes the tree as one newc archive (with trailer) to w.
func (t *Tree) WriteCPIO(w io.Writer) error {
	all := map[string]treeEntry{}
	for name, e := range t.entries {
		all[name] = e
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := t.entries[dir]; !ok {
				all[dir] = treeEntry{kind: kindDir, perm: 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	// Sorting puts every directory before what it holds: a path sorts
	// before every longer path it is a prefix of.
	sort.Strings(names)
	cw := NewCPIOWriter(w)
	for _, name := range names {
		e := all[name]
		var err error
		switch e.kind {
		case kindDir:
			err = cw.Dir(name, e.perm)
		case kindSymlink:
			err = cw.Symlink(name, e.target)
		case kindCharDev:
			err = cw.CharDev(name, e.perm, e.major, e.minor)
		case kindFile:
			if e.hasData {
				err = cw.File(name, e.perm, int64(len(e.data)), bytes.NewReader(e.data))
			} else {
				err = writeHostFile(cw, name, e)
			}
		}
		if err != nil {
			return err
		}
	}
	return cw.Close()
}

func writeHostFile(cw *CPIOWriter, name string, e treeEntry) error {
	f, err := os.Open(e.hostPath)
	if err != nil {
		return fmt.Errorf("initramfs file /%s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("initramfs file /%s: %w", name, err)
	}
	return cw.File(name, e.perm, fi.Size(), f)
}
