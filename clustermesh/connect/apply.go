package connect

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/strait-net/strait/internal/atomicfile"
)

// saved is a file's state before an op, to undo it.
type saved struct {
	path    string
	existed bool
	data    []byte
	perm    os.FileMode
}

// snapshot reads path's current state.
func snapshot(path string) (saved, error) {
	s := saved{path: path}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if !fi.Mode().IsRegular() {
		return s, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	s.existed, s.data, s.perm = true, data, fi.Mode().Perm()
	return s, nil
}

// restore puts the saved state back.
func (s saved) restore() error {
	if !s.existed {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeAtomic(s.path, s.data, s.perm)
}

// writeAtomic writes data over path through a temporary dotfile (which
// the remoteconfig watcher skips), so a reader sees the old or the new
// file, never half of one.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm)
}

// apply performs ops in order. On the first failure it undoes every op
// done so far, in reverse order, and returns an error wrapping ErrApply
// that names the failed file and says whether the undo succeeded.
func apply(ops []FileOp) error {
	var done []saved
	for _, op := range ops {
		s, err := snapshot(op.Path)
		if err == nil {
			if op.Remove {
				if s.existed {
					err = os.Remove(op.Path)
				}
			} else {
				err = writeAtomic(op.Path, op.Data, op.Perm)
			}
		}
		if err != nil {
			what := "write"
			if op.Remove {
				what = "remove"
			}
			var undoErrs []error
			for i := len(done) - 1; i >= 0; i-- {
				if uerr := done[i].restore(); uerr != nil {
					undoErrs = append(undoErrs, fmt.Errorf("undo %s: %w", done[i].path, uerr))
				}
			}
			if len(undoErrs) > 0 {
				return fmt.Errorf("%w: %s %s: %w; undoing the %d earlier change(s) failed too, fix by hand: %w",
					ErrApply, what, op.Path, err, len(done), errors.Join(undoErrs...))
			}
			return fmt.Errorf("%w: %s %s: %w; the %d earlier change(s) were undone, nothing changed",
				ErrApply, what, op.Path, err, len(done))
		}
		done = append(done, s)
	}
	return nil
}

// existing classifies the files of one pair: all absent, all present
// with exactly the wanted content, or something else (conflict, naming
// the first differing file).
func existing(ops []FileOp) (allAbsent, allSame bool, conflict string, err error) {
	allAbsent, allSame = true, true
	for _, op := range ops {
		s, err := snapshot(op.Path)
		if err != nil {
			return false, false, "", err
		}
		if s.existed {
			allAbsent = false
		}
		if !s.existed || !bytes.Equal(s.data, op.Data) {
			allSame = false
			if s.existed && conflict == "" {
				conflict = op.Path
			}
		}
	}
	if conflict == "" && !allAbsent && !allSame {
		// Some files present (identical), others missing.
		for _, op := range ops {
			if s, _ := snapshot(op.Path); !s.existed {
				conflict = op.Path + " (missing)"
				break
			}
		}
	}
	return allAbsent, allSame, conflict, nil
}
