package ipsec

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustHex(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestParseKeyFile(t *testing.T) {
	gcm20 := strings.Repeat("ab", 20)
	tests := []struct {
		name    string
		in      string
		want    []Key
		wantErr string
	}{
		{name: "aead per pair", in: "3+ rfc4106(gcm(aes)) " + gcm20 + " 128\n",
			want: []Key{{SPI: 3, PerNodePair: true, Algo: "rfc4106(gcm(aes))", Key: mustHex(20, 0xab), ICVBits: 128, Line: 1}}},
		{name: "aead global 0x prefix icv 96", in: "15 rfc4106(gcm(aes)) 0x" + strings.Repeat("01", 36) + " 96",
			want: []Key{{SPI: 15, Algo: "rfc4106(gcm(aes))", Key: mustHex(36, 1), ICVBits: 96, Line: 1}}},
		{name: "spi omitted defaults to 1", in: "rfc4106(gcm(aes)) " + strings.Repeat("02", 28) + " 128",
			want: []Key{{SPI: 1, Algo: "rfc4106(gcm(aes))", Key: mustHex(28, 2), ICVBits: 128, Line: 1}}},
		{name: "plus alone", in: "+ rfc4106(gcm(aes)) " + gcm20 + " 128",
			want: []Key{{SPI: 1, PerNodePair: true, Algo: "rfc4106(gcm(aes))", Key: mustHex(20, 0xab), ICVBits: 128, Line: 1}}},
		{name: "legacy", in: "2 hmac(sha256) " + strings.Repeat("11", 32) + " cbc(aes) " + strings.Repeat("22", 16),
			want: []Key{{SPI: 2, AuthAlgo: "hmac(sha256)", AuthKey: mustHex(32, 0x11), EncAlgo: "cbc(aes)", EncKey: mustHex(16, 0x22), Line: 1}}},
		{name: "history comments blanks", in: "# keys\n\n1+ rfc4106(gcm(aes)) " + gcm20 + " 128\n  \n2+ rfc4106(gcm(aes)) " + strings.Repeat("cd", 20) + " 128\n",
			want: []Key{
				{SPI: 1, PerNodePair: true, Algo: "rfc4106(gcm(aes))", Key: mustHex(20, 0xab), ICVBits: 128, Line: 3},
				{SPI: 2, PerNodePair: true, Algo: "rfc4106(gcm(aes))", Key: mustHex(20, 0xcd), ICVBits: 128, Line: 5},
			}},
		{name: "spi 0", in: "0+ rfc4106(gcm(aes)) " + gcm20 + " 128", wantErr: `keys:1: spi: "0" is not in 1..15`},
		{name: "spi 16", in: "16 rfc4106(gcm(aes)) " + gcm20 + " 128", wantErr: `keys:1: spi: "16" is not in 1..15`},
		{name: "spi negative", in: "-1 rfc4106(gcm(aes)) " + gcm20 + " 128", wantErr: `keys:1: spi: "-1" is not in 1..15`},
		{name: "icv 64", in: "1 rfc4106(gcm(aes)) " + gcm20 + " 64", wantErr: `keys:1: icv-bits: "64" is not one of 96, 128, 256`},
		{name: "icv 256 not for gcm", in: "1 rfc4106(gcm(aes)) " + gcm20 + " 256", wantErr: "keys:1: icv-bits: 256 is not supported by rfc4106(gcm(aes)) (supported: 96 or 128)"},
		{name: "icv text", in: "1 rfc4106(gcm(aes)) " + gcm20 + " x", wantErr: `keys:1: icv-bits: "x" is not one of 96, 128, 256`},
		{name: "bad hex digit", in: "1 rfc4106(gcm(aes)) zz" + gcm20[2:] + " 128", wantErr: `keys:1: key: invalid hex digit 'z'`},
		{name: "odd hex", in: "1 rfc4106(gcm(aes)) " + gcm20 + "a 128", wantErr: "keys:1: key: odd number of hex digits"},
		{name: "gcm key 16 bytes no salt", in: "1 rfc4106(gcm(aes)) " + strings.Repeat("ab", 16) + " 128", wantErr: "keys:1: key: 16 bytes; want 20 or 28 or 36"},
		{name: "unknown aead", in: "1 gcm(aes) " + gcm20 + " 128", wantErr: `keys:1: algorithm: unknown AEAD algorithm "gcm(aes)"`},
		{name: "unknown auth", in: "1 hmac(md5) " + strings.Repeat("11", 16) + " cbc(aes) " + strings.Repeat("22", 16), wantErr: `keys:1: auth-algorithm: unknown auth algorithm "hmac(md5)"`},
		{name: "unknown enc", in: "1 hmac(sha256) " + strings.Repeat("11", 32) + " cbc(des) " + strings.Repeat("22", 8), wantErr: `keys:1: enc-algorithm: unknown encryption algorithm "cbc(des)"`},
		{name: "auth key length", in: "1 hmac(sha256) " + strings.Repeat("11", 31) + " cbc(aes) " + strings.Repeat("22", 16), wantErr: "keys:1: auth-key: 31 bytes; want 32"},
		{name: "legacy trailing ip refused", in: "1 hmac(sha256) " + strings.Repeat("11", 32) + " cbc(aes) " + strings.Repeat("22", 16) + " 10.0.0.1", wantErr: `keys:1: ip: "10.0.0.1": per-IP keys`},
		{name: "too few fields", in: "1 rfc4106(gcm(aes)) " + gcm20, wantErr: "keys:1: line: 2 fields after the SPI"},
		{name: "error names second line", in: "1 rfc4106(gcm(aes)) " + gcm20 + " 128\n2 rfc4106(gcm(aes)) " + gcm20 + " 100\n", wantErr: "keys:2: icv-bits:"},
		{name: "spi twice", in: "1 rfc4106(gcm(aes)) " + gcm20 + " 128\n1 rfc4106(gcm(aes)) " + gcm20 + " 128\n", wantErr: "keys:2: spi: 1 already used on line 1"},
		{name: "empty", in: "# nothing\n\n", wantErr: "keys: ipsec: key file has no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeyFile(strings.NewReader(tt.in), "keys")
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error; want %q", tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %q; want prefix %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrKeyFile) && !errors.Is(err, ErrNoKeys) {
					t.Errorf("error %v is neither ErrKeyFile nor ErrNoKeys", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyStringHidesSecret(t *testing.T) {
	k := Key{SPI: 3, PerNodePair: true, Algo: "rfc4106(gcm(aes))", Key: mustHex(20, 0xab), ICVBits: 128}
	if s := k.String(); strings.Contains(s, "abab") || s != "3+ rfc4106(gcm(aes)) (20-byte key) 128" {
		t.Errorf("String() = %q", s)
	}
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add([]byte("3+ rfc4106(gcm(aes)) " + strings.Repeat("ab", 20) + " 128\n"))
	f.Add([]byte("2 hmac(sha256) " + strings.Repeat("11", 32) + " cbc(aes) " + strings.Repeat("22", 16) + "\n"))
	f.Add([]byte("16 x y z\n0+\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseKeyFile(bytes.NewReader(data), "fuzz")
		if err != nil {
			if !errors.Is(err, ErrKeyFile) && !errors.Is(err, ErrNoKeys) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		seen := map[uint8]bool{}
		for _, k := range keys {
			if k.SPI < 1 || k.SPI > MaxSPI || seen[k.SPI] {
				t.Fatalf("bad SPI accepted: %+v", k)
			}
			seen[k.SPI] = true
			if k.AEAD() {
				if k.ICVBits != 96 && k.ICVBits != 128 {
					t.Fatalf("bad ICV accepted: %+v", k)
				}
			} else if len(k.AuthKey) == 0 || len(k.EncKey) == 0 {
				t.Fatalf("legacy key without keys: %+v", k)
			}
		}
	})
}
