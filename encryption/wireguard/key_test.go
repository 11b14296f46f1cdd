package wireguard

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestLoadOrCreateKeyCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // does not exist yet
	path := filepath.Join(dir, KeyFileName)
	key, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey = %v, %v; want a new key", created, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file mode %v size %d; want -rw------- 32", fi.Mode(), fi.Size())
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Equal(raw, key[:]) {
		t.Fatal("file does not hold the returned key")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("state dir holds %d entries, want only the key (temp file left behind?)", len(entries))
	}
	again, created, err := LoadOrCreateKey(path)
	if err != nil || created || again != key {
		t.Fatalf("second LoadOrCreateKey = %v, %v, same key %v; want the stored key", created, err, again == key)
	}
}

// Concurrent creators must all end up with the same key (the link-into-place
// never overwrites).
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFileName)
	const n = 8
	keys := make([]wgtypes.Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], _, errs[i] = LoadOrCreateKey(path)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("creator %d: %v", i, errs[i])
		}
		if keys[i] != keys[0] {
			t.Fatalf("creator %d got a different key", i)
		}
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	good := bytes.Repeat([]byte{7}, 32)
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		wantMsg string
	}{
		{name: "too short", setup: writeFile(good[:31], 0o600), wantMsg: "size 31 bytes, want 32"},
		{name: "too long", setup: writeFile(append(good, '\n'), 0o600), wantMsg: "size 33 bytes, want 32"},
		{name: "empty", setup: writeFile(nil, 0o600), wantMsg: "size 0 bytes"},
		{name: "base64 text instead of raw", setup: writeFile([]byte(wgtypes.Key(good).String()), 0o600), wantMsg: "size 44 bytes"},
		{name: "group readable", setup: writeFile(good, 0o640), wantMsg: "mode 0640 is looser than 0600"},
		{name: "world readable", setup: writeFile(good, 0o604), wantMsg: "looser than 0600"},
		{name: "all zero", setup: writeFile(make([]byte, 32), 0o600), wantMsg: "all zero"},
		{name: "directory", setup: func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, wantMsg: "is a directory"},
		{name: "symlink to good key", setup: func(t *testing.T, path string) {
			target := path + ".real"
			writeFile(good, 0o600)(t, target)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, wantMsg: "is a symlink"},
		{name: "dangling symlink", setup: func(t *testing.T, path string) {
			if err := os.Symlink(path+".missing", path); err != nil {
				t.Fatal(err)
			}
		}, wantMsg: "is a symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), KeyFileName)
			tt.setup(t, path)
			_, created, err := LoadOrCreateKey(path)
			if err == nil || created {
				t.Fatalf("LoadOrCreateKey = created %v, err %v; want refusal", created, err)
			}
			if !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q: want ErrKeyFile naming %s and saying %q", err, path, tt.wantMsg)
			}
		})
	}
}

func writeFile(data []byte, mode os.FileMode) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // umask-proof
			t.Fatal(err)
		}
	}
}

func TestParsePublicKey(t *testing.T) {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := k.PublicKey()
	s := pub.String()
	tests := []struct {
		name    string
		in      string
		want    wgtypes.Key
		wantMsg string
	}{
		{name: "valid", in: s, want: pub},
		{name: "empty", in: "", wantMsg: "empty"},
		{name: "all zero", in: wgtypes.Key{}.String(), wantMsg: "all-zero"},
		{name: "missing padding", in: strings.TrimRight(s, "="), wantMsg: "not standard base64"},
		{name: "url alphabet", in: "-_" + s[2:], wantMsg: "not standard base64"},
		{name: "hex form", in: "0000000000000000000000000000000000000000000000000000000000000001", wantMsg: "decodes to 48 bytes"},
		{name: "short", in: "AAAA", wantMsg: "decodes to 3 bytes"},
		{name: "embedded newline", in: s[:20] + "\n" + s[20:], wantMsg: "not canonical"},
		{name: "trailing newline", in: s + "\n", wantMsg: "not canonical"},
		{name: "surrounding space", in: " " + s, wantMsg: "not standard base64"},
		// Same bytes, but non-zero trailing bits: only the canonical form is accepted.
		{name: "non-canonical trailing bits", in: s[:42] + nextB64(s[42]) + "=", wantMsg: "not standard base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKey(tt.in)
			if tt.wantMsg != "" {
				if !errors.Is(err, ErrPublicKey) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("ParsePublicKey(%q) = %v, %v; want ErrPublicKey saying %q", tt.in, got, err, tt.wantMsg)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePublicKey(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// nextB64 returns the base64 digit after c that differs only in the low
// bits, which a canonical 32-byte encoding has zero in its last digit.
func nextB64(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[(i&^3)|((i+1)&3)])
}
