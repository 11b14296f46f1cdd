package wireguard

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParsePublicKey: never panics; on success the key round-trips to the
// input and is not zero; on failure the error wraps ErrPublicKey.
func FuzzParsePublicKey(f *testing.F) {
	f.Add("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=")
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublicKey(s)
		if err != nil {
			if !errors.Is(err, ErrPublicKey) {
				t.Fatalf("error %v does not wrap ErrPublicKey", err)
			}
			return
		}
		if k.String() != s {
			t.Fatalf("ParsePublicKey(%q) = %s: not the input", s, k)
		}
		if k == [32]byte{} {
			t.Fatal("accepted the zero key")
		}
	})
}

// FuzzLoadKeyFile writes the input as a 0600 key file: only 32 non-zero
// bytes load, unchanged; everything else is an ErrKeyFile naming the file.
func FuzzLoadKeyFile(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 32))
	f.Add([]byte{})
	f.Add(make([]byte, 32))
	f.Add(bytes.Repeat([]byte{0xff}, 33))
	f.Add([]byte("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), KeyFileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		k, created, err := LoadOrCreateKey(path)
		valid := len(data) == 32 && !bytes.Equal(data, make([]byte, 32))
		if !valid {
			if err == nil || !errors.Is(err, ErrKeyFile) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
				t.Fatalf("LoadOrCreateKey(%d bytes) = %v; want ErrKeyFile naming the file", len(data), err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, data) {
				t.Fatal("a refused key file was modified")
			}
			return
		}
		if err != nil || created || !bytes.Equal(k[:], data) {
			t.Fatalf("LoadOrCreateKey(valid) = created %v, %v", created, err)
		}
	})
}
