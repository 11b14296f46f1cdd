package wireguard

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/strait-net/strait/internal/atomicfile"
)

// LoadOrCreateKey reads the raw 32-byte private key at path, or, when path
// does not exist, generates a key and writes it there with mode 0600.
//
// An existing file must be a regular file (not a symlink, directory or
// device), must not be readable or writable by group or others (mode no
// looser than 0600) and must hold exactly 32 bytes that are not all zero;
// anything else is an error wrapping ErrKeyFile and naming the file. The key
// is never repaired or replaced: a bad file needs an operator.
//
// Creation is atomic: the key is written and synced to a temporary file in
// the same directory, which is then hard-linked to path (so a concurrent
// creator's key is never overwritten: the loser loads the winner's key) and
// the directory is synced. A missing directory is created with mode 0700.
// created reports that this call wrote a new key.
func LoadOrCreateKey(path string) (key wgtypes.Key, created bool, err error) {
	key, err = loadKey(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return wgtypes.Key{}, false, err
	}
	key, err = wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, false, fmt.Errorf("wireguard key file %s: generate key: %w", path, err)
	}
	won, err := createExclusive(path, key[:])
	if err != nil {
		return wgtypes.Key{}, false, fmt.Errorf("wireguard key file %s: %w", path, err)
	}
	if !won {
		// Someone else created the file between our check and our link.
		key, err = loadKey(path)
		return key, false, err
	}
	return key, true, nil
}

// loadKey reads and validates an existing key file. A missing file is
// reported as an error wrapping fs.ErrNotExist.
func loadKey(path string) (wgtypes.Key, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return wgtypes.Key{}, err
		}
		return wgtypes.Key{}, fmt.Errorf("wireguard key file %s: %w: %w", path, ErrKeyFile, err)
	}
	if err := checkKeyFileInfo(fi); err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key file %s: %w: %w", path, ErrKeyFile, err)
	}
	// O_NOFOLLOW closes the window between Lstat and Open.
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key file %s: %w: %w", path, ErrKeyFile, err)
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key file %s: %w: %w", path, ErrKeyFile, err)
	}
	if err := checkKeyFileInfo(fi); err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key file %s: %w: %w", path, ErrKeyFile, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, wgtypes.KeyLen+1))
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key file %s: %w: read: %w", path, ErrKeyFile, err)
	}
	key, err := parseRawKey(data)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key file %s: %w: %w", path, ErrKeyFile, err)
	}
	return key, nil
}

func checkKeyFileInfo(fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return errors.New("is a symlink, want a regular file")
	case fi.IsDir():
		return errors.New("is a directory, want a regular file")
	case !fi.Mode().IsRegular():
		return fmt.Errorf("is not a regular file (mode %s)", fi.Mode())
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("mode %#o is looser than 0600", fi.Mode().Perm())
	case fi.Size() != wgtypes.KeyLen:
		return fmt.Errorf("size %d bytes, want %d", fi.Size(), wgtypes.KeyLen)
	}
	return nil
}

func parseRawKey(data []byte) (wgtypes.Key, error) {
	if len(data) != wgtypes.KeyLen {
		return wgtypes.Key{}, fmt.Errorf("holds %d bytes, want %d", len(data), wgtypes.KeyLen)
	}
	if bytes.Equal(data, make([]byte, wgtypes.KeyLen)) {
		return wgtypes.Key{}, errors.New("key is all zero")
	}
	return wgtypes.NewKey(data)
}

// createExclusive writes data to a new file at path with mode 0600 unless
// path already exists (won=false then).
func createExclusive(path string, data []byte) (won bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("create directory: %w", err)
	}
	return atomicfile.Create(path, data, 0o600)
}

// ParsePublicKey parses a WireGuard public key in its standard base64 form
// (44 characters, as carried in schema.Node.WireguardPubKey). It is strict:
// padding and canonical trailing bits are required, so a parsed key's String
// is the input. The all-zero key is rejected. Errors wrap ErrPublicKey.
func ParsePublicKey(s string) (wgtypes.Key, error) {
	if s == "" {
		return wgtypes.Key{}, fmt.Errorf("%w: empty", ErrPublicKey)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("%w %q: not standard base64: %w", ErrPublicKey, truncate(s), err)
	}
	if base64.StdEncoding.EncodeToString(raw) != s {
		// The decoder skips '\r' and '\n'; accept only the canonical text.
		return wgtypes.Key{}, fmt.Errorf("%w %q: not canonical base64 (line breaks?)", ErrPublicKey, truncate(s))
	}
	if len(raw) != wgtypes.KeyLen {
		return wgtypes.Key{}, fmt.Errorf("%w %q: decodes to %d bytes, want %d", ErrPublicKey, truncate(s), len(raw), wgtypes.KeyLen)
	}
	if bytes.Equal(raw, make([]byte, wgtypes.KeyLen)) {
		return wgtypes.Key{}, fmt.Errorf("%w %q: all-zero key", ErrPublicKey, s)
	}
	return wgtypes.NewKey(raw)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
