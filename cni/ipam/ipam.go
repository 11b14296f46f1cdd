package ipam

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strait-net/strait/agent/endpointapi"
)

var (
	// ErrExhausted: every usable address of the CIDR is allocated.
	ErrExhausted = errors.New("ipam: no free address")
	// ErrNoUsableAddress: the CIDR has no address that may be handed out
	// (not IPv4, or smaller than /30).
	ErrNoUsableAddress = errors.New("ipam: no usable address in CIDR")
	// ErrBadRecord: a state file does not hold a valid record.
	ErrBadRecord = errors.New("ipam: bad record")
	// ErrOutsideCIDR: the owner holds an address outside the CIDR asked for.
	ErrOutsideCIDR = errors.New("ipam: owner holds an address outside the CIDR")
)

const (
	lockFile     = "lock"
	lastFile     = "last_reserved"
	tmpPrefix    = ".tmp-"
	maxRecordLen = 512
)

// Owner is who holds an address: a container's interface.
type Owner struct {
	ContainerID string
	IfName      string
}

func (o Owner) String() string { return o.ContainerID + "/" + o.IfName }

// Validate checks the owner with the rules of the CNI spec.
func (o Owner) Validate() error {
	return endpointapi.ValidateID(o.ContainerID, o.IfName)
}

// Store is the allocation state of one network in one directory. It holds
// no open files between calls; several Stores (in one or many processes) on
// the same directory are serialised by the lock file.
type Store struct {
	dir string
}

// Open returns the store of network under dataDir, creating its directory
// (0700). network must be a plain name (no path separators).
func Open(dataDir, network string) (*Store, error) {
	if network == "" || network == "." || network == ".." || strings.ContainsAny(network, "/\x00") {
		return nil, fmt.Errorf("ipam: network name %q: not a plain directory name", network)
	}
	if dataDir == "" {
		return nil, fmt.Errorf("ipam: data directory: empty")
	}
	dir := filepath.Join(dataDir, network)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// lock takes the exclusive lock, polling until ctx ends. The returned func
// releases it.
func (s *Store) lock(ctx context.Context) (func(), error) {
	path := filepath.Join(s.dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ipam: lock %s: %w", path, err)
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("ipam: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("ipam: lock %s: %w", path, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// ParseRecord decodes the content of an address file: "<containerID>\n<ifName>\n".
func ParseRecord(data []byte) (Owner, error) {
	if len(data) > maxRecordLen {
		return Owner{}, fmt.Errorf("%w: %d bytes, at most %d", ErrBadRecord, len(data), maxRecordLen)
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		return Owner{}, fmt.Errorf("%w: does not end with a newline (truncated?)", ErrBadRecord)
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if len(lines) != 2 {
		return Owner{}, fmt.Errorf("%w: %d lines, want 2 (container ID, interface name)", ErrBadRecord, len(lines))
	}
	o := Owner{ContainerID: lines[0], IfName: lines[1]}
	if err := o.Validate(); err != nil {
		return Owner{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return o, nil
}

// FormatRecord is the inverse of ParseRecord.
func FormatRecord(o Owner) []byte {
	return []byte(o.ContainerID + "\n" + o.IfName + "\n")
}

// entries reads every address file of the store. Temporary files left by a
// crash are removed (the lock is held, so nobody is writing them).
func (s *Store) entries() (map[netip.Addr]Owner, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	out := make(map[netip.Addr]Owner, len(des))
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			_ = os.Remove(filepath.Join(s.dir, name))
			continue
		}
		a, err := netip.ParseAddr(name)
		if err != nil {
			continue // lock, last_reserved, or not ours
		}
		path := filepath.Join(s.dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("ipam: %w", err)
		}
		o, err := ParseRecord(data)
		if err != nil {
			return nil, fmt.Errorf("ipam: %s: %w", path, err)
		}
		out[a] = o
	}
	return out, nil
}

// usable returns the first and last address that may be handed out.
func usable(cidr netip.Prefix) (first, last netip.Addr, n int64, err error) {
	if !cidr.IsValid() || !cidr.Addr().Is4() || cidr.Bits() > 30 {
		return first, last, 0, fmt.Errorf("%w %s: need an IPv4 CIDR of /30 or larger", ErrNoUsableAddress, cidr)
	}
	cidr = cidr.Masked()
	b := cidr.Addr().As4()
	base := binary.BigEndian.Uint32(b[:])
	size := uint32(1) << (32 - cidr.Bits()) // 0 for /0: wraps, handled below
	bcast := base + size - 1
	first = cidr.Addr().Next().Next() // skip the network address and .1
	var lb [4]byte
	binary.BigEndian.PutUint32(lb[:], bcast-1)
	last = netip.AddrFrom4(lb)
	return first, last, int64(bcast-base) + 1 - 3, nil
}

// Lookup returns the address owner holds, if any.
func (s *Store) Lookup(ctx context.Context, owner Owner) (netip.Addr, bool, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return netip.Addr{}, false, err
	}
	defer unlock()
	all, err := s.entries()
	if err != nil {
		return netip.Addr{}, false, err
	}
	for a, o := range all {
		if o == owner {
			return a, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// Allocate returns the address of owner in cidr: the one it already holds,
// or a free one, recorded on disk before Allocate returns.
func (s *Store) Allocate(ctx context.Context, cidr netip.Prefix, owner Owner) (netip.Addr, error) {
	if err := owner.Validate(); err != nil {
		return netip.Addr{}, fmt.Errorf("ipam: owner: %w", err)
	}
	first, last, n, err := usable(cidr)
	if err != nil {
		return netip.Addr{}, err
	}
	cidr = cidr.Masked()
	unlock, err := s.lock(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	defer unlock()
	all, err := s.entries()
	if err != nil {
		return netip.Addr{}, err
	}
	for a, o := range all {
		if o == owner {
			if !cidr.Contains(a) {
				return netip.Addr{}, fmt.Errorf("%w: %s holds %s, CIDR is %s: DEL it first", ErrOutsideCIDR, owner, a, cidr)
			}
			return a, nil
		}
	}
	start := first
	if prev, ok := s.readLast(); ok && cidr.Contains(prev) && prev.Compare(first) >= 0 && prev.Compare(last) < 0 {
		start = prev.Next()
	}
	a := start
	for range n {
		if _, taken := all[a]; !taken {
			if err := s.writeRecord(a, owner); err != nil {
				return netip.Addr{}, err
			}
			s.writeLast(a)
			return a, nil
		}
		if a == last {
			a = first
		} else {
			a = a.Next()
		}
	}
	return netip.Addr{}, fmt.Errorf("%w in %s: all %d usable addresses allocated (state in %s)", ErrExhausted, cidr, n, s.dir)
}

// Free counts the addresses of cidr not allocated.
func (s *Store) Free(ctx context.Context, cidr netip.Prefix) (int64, error) {
	_, _, n, err := usable(cidr)
	if err != nil {
		return 0, err
	}
	cidr = cidr.Masked()
	unlock, err := s.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	all, err := s.entries()
	if err != nil {
		return 0, err
	}
	first, last, _, _ := usable(cidr)
	for a := range all {
		if a.Compare(first) >= 0 && a.Compare(last) <= 0 {
			n--
		}
	}
	return n, nil
}

// Release frees every address owner holds and returns them; an owner
// holding none is not an error.
func (s *Store) Release(ctx context.Context, owner Owner) ([]netip.Addr, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := s.entries()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for a, o := range all {
		if o != owner {
			continue
		}
		path := filepath.Join(s.dir, a.String())
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return out, fmt.Errorf("ipam: release %s: %w", a, err)
		}
		out = append(out, a)
	}
	if err := syncDir(s.dir); err != nil {
		return out, err
	}
	return out, nil
}

// Owners returns every allocation (for GC and inspection).
func (s *Store) Owners(ctx context.Context) (map[netip.Addr]Owner, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.entries()
}

// writeRecord creates the address file atomically: temp file, fsync,
// link (fails if the name exists), directory fsync.
func (s *Store) writeRecord(a netip.Addr, o Owner) error {
	tmp, err := os.CreateTemp(s.dir, tmpPrefix)
	if err != nil {
		return fmt.Errorf("ipam: record %s: %w", a, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(FormatRecord(o)); err != nil {
		tmp.Close()
		return fmt.Errorf("ipam: record %s: %w", a, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ipam: record %s: %w", a, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ipam: record %s: %w", a, err)
	}
	if err := os.Link(tmp.Name(), filepath.Join(s.dir, a.String())); err != nil {
		return fmt.Errorf("ipam: record %s: %w", a, err)
	}
	return syncDir(s.dir)
}

// readLast returns the last handed-out address; a missing or unreadable
// file only means allocation starts at the beginning of the CIDR.
func (s *Store) readLast() (netip.Addr, bool) {
	data, err := os.ReadFile(filepath.Join(s.dir, lastFile))
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(strings.TrimSpace(string(data)))
	return a, err == nil
}

// writeLast records a as the last handed-out address (best effort: it only
// steers where the next search starts).
func (s *Store) writeLast(a netip.Addr) {
	tmp, err := os.CreateTemp(s.dir, tmpPrefix)
	if err != nil {
		return
	}
	_, werr := tmp.WriteString(a.String() + "\n")
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return
	}
	if os.Rename(tmp.Name(), filepath.Join(s.dir, lastFile)) != nil {
		os.Remove(tmp.Name())
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ipam: sync %s: %w", dir, err)
	}
	return nil
}
