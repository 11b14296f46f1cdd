package certs

import (
	"errors"
	"testing"
)

// FuzzParseCert: any bytes give a certificate or an error, never a panic.
func FuzzParseCert(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cert, err := ParseCert(data)
		if err == nil && cert == nil {
			t.Fatal("nil certificate without error")
		}
	})
}

// FuzzParseKey: any bytes give an ECDSA key or an error, never a panic.
func FuzzParseKey(f *testing.F) {
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParseKey(data)
		if err == nil && key == nil {
			t.Fatal("nil key without error")
		}
		if err != nil && key != nil {
			t.Fatal("key with error")
		}
		if errors.Is(err, ErrNoKey) && key != nil {
			t.Fatal("ErrNoKey with a key")
		}
	})
}
