package vm

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// cpio "newc" (SVR4 without CRC) is the only archive format the kernel's
// initramfs unpacker reads: a 110-byte ASCII header (magic "070701" and
// thirteen 8-digit hex fields), the NUL-terminated name padded to 4 bytes,
// then the data padded to 4 bytes; the archive ends with "TRAILER!!!".

const (
	cpioMagic      = "070701"
	cpioHeaderSize = 110
	cpioTrailer    = "TRAILER!!!"

	// Mode type bits as stored in the header (from <sys/stat.h>).
	cpioTypeDir     = 0o040000
	cpioTypeRegular = 0o100000
	cpioTypeSymlink = 0o120000
	cpioTypeChar    = 0o020000
)

// CPIOWriter writes a newc archive entry by entry. Parents must be written
// before their children (the kernel does not create missing directories);
// Tree.WriteCPIO takes care of that. Close writes the trailer; it does not
// close the underlying writer.
type CPIOWriter struct {
	w      io.Writer
	n      int64  // bytes written so far, for padding
	ino    uint32 // next inode number
	closed bool
}

// NewCPIOWriter returns a writer of a newc archive to w.
func NewCPIOWriter(w io.Writer) *CPIOWriter {
	return &CPIOWriter{w: w, ino: 1}
}

// Dir writes a directory entry.
func (c *CPIOWriter) Dir(name string, perm fs.FileMode) error {
	return c.entry(name, cpioTypeDir|unixPerm(perm), 2, 0, 0, nil)
}

// File writes a regular file of exactly size bytes read from r.
func (c *CPIOWriter) File(name string, perm fs.FileMode, size int64, r io.Reader) error {
	if size < 0 || size > 0xFFFFFFFF {
		return fmt.Errorf("cpio entry %q: size %d: %w", name, size, ErrCPIOEntry)
	}
	if err := c.header(name, cpioTypeRegular|unixPerm(perm), 1, uint32(size), 0, 0); err != nil {
		return err
	}
	n, err := io.CopyN(c.w, r, size)
	c.n += n
	if err != nil {
		return fmt.Errorf("cpio entry %q: data (%d of %d bytes): %w", name, n, size, err)
	}
	return c.pad()
}

// Symlink writes a symbolic link name → target.
func (c *CPIOWriter) Symlink(name, target string) error {
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("cpio entry %q: symlink target %q: %w", name, target, ErrCPIOEntry)
	}
	return c.entry(name, cpioTypeSymlink|0o777, 1, 0, 0, []byte(target))
}

// CharDev writes a character device node (e.g. dev/console, 5:1).
func (c *CPIOWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return c.entry(name, cpioTypeChar|unixPerm(perm), 1, major, minor, nil)
}

// Close writes the trailer entry. Further writes fail.
func (c *CPIOWriter) Close() error {
	if c.closed {
		return nil
	}
	if err := c.writeHeader(cpioTrailer, 0, 1, 0, 0, 0, 0); err != nil {
		return err
	}
	c.closed = true
	return nil
}

func (c *CPIOWriter) entry(name string, mode, nlink, major, minor uint32, data []byte) error {
	if err := c.header(name, mode, nlink, uint32(len(data)), major, minor); err != nil {
		return err
	}
	if len(data) > 0 {
		n, err := c.w.Write(data)
		c.n += int64(n)
		if err != nil {
			return fmt.Errorf("cpio entry %q: %w", name, err)
		}
	}
	return c.pad()
}

func (c *CPIOWriter) header(name string, mode, nlink, size, major, minor uint32) error {
	if c.closed {
		return fmt.Errorf("cpio entry %q: %w", name, ErrCPIOClosed)
	}
	if err := validCPIOName(name); err != nil {
		return err
	}
	ino := c.ino
	c.ino++
	return c.writeHeader(name, ino, nlink, mode, size, major, minor)
}

func (c *CPIOWriter) writeHeader(name string, ino, nlink, mode, size, major, minor uint32) error {
	// ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
	h := fmt.Sprintf("%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		cpioMagic, ino, mode, 0, 0, nlink, 0, size, 0, 0, major, minor, len(name)+1, 0)
	n, err := io.WriteString(c.w, h+name+"\x00")
	c.n += int64(n)
	if err != nil {
		return fmt.Errorf("cpio entry %q: header: %w", name, err)
	}
	return c.pad()
}

func (c *CPIOWriter) pad() error {
	if r := c.n % 4; r != 0 {
		n, err := c.w.Write(make([]byte, 4-r))
		c.n += int64(n)
		if err != nil {
			return fmt.Errorf("cpio padding: %w", err)
		}
	}
	return nil
}

// validCPIOName accepts relative, clean, slash-separated names ("bin/sh").
func validCPIOName(name string) error {
	bad := name == "" || name == cpioTrailer || strings.HasPrefix(name, "/") ||
		strings.HasSuffix(name, "/") || strings.IndexByte(name, 0) >= 0
	if !bad {
		for _, part := range strings.Split(name, "/") {
			if part == "" || part == "." || part == ".." {
				bad = true
				break
			}
		}
	}
	if bad {
		return fmt.Errorf("cpio entry name %q: %w", name, ErrCPIOEntry)
	}
	return nil
}

// unixPerm converts permission, setuid, setgid and sticky bits to the
// st_mode bits stored in the header.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}
