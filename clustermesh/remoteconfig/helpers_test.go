package remoteconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the package when goroutines outlive the tests.
func TestMain(m *testing.M) {
	before := len(goroutines())
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		for len(goroutines()) > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if g := goroutines(); len(g) > before {
			fmt.Fprintf(os.Stderr, "goroutine leak: %d before, %d after\n%s\n", before, len(g), strings.Join(g, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// goroutines returns the stacks of all goroutines but the caller and the
// runtime's own helpers: the signal handler (started by the fuzzing
// engine) and the cleanup and finalizer runners.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
outer:
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || strings.TrimSpace(g) == "" {
			continue
		}
		for _, ignore := range []string{"os/signal.", "runtime.runCleanups", "runtime.runFinalizers", "runtime.runfinq"} {
			if strings.Contains(g, ignore) {
				continue outer
			}
		}
		out = append(out, g)
	}
	return out
}

// pki is a CA and a client certificate signed by it, PEM encoded.
type pki struct {
	ca, cert, key []byte
}

func newPKI(t testing.TB) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "remote"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pki{
		ca:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

// writeFiles writes the PKI as ca.crt, tls.crt and tls.key in dir.
func (p pki) writeFiles(t testing.TB, dir string) {
	t.Helper()
	writeAtomic(t, filepath.Join(dir, "ca.crt"), p.ca)
	writeAtomic(t, filepath.Join(dir, "tls.crt"), p.cert)
	writeAtomic(t, filepath.Join(dir, "tls.key"), p.key)
}

// tlsConfig returns a cluster file for endpoint using the TLS files
// ca.crt, tls.crt and tls.key in certDir ("" = relative paths).
func tlsConfig(endpoint, certDir string) []byte {
	j := func(name string) string {
		if certDir == "" {
			return name
		}
		return filepath.Join(certDir, name)
	}
	return fmt.Appendf(nil, "endpoints:\n- %s\ntrusted-ca-file: %s\ncert-file: %s\nkey-file: %s\n",
		endpoint, j("ca.crt"), j("tls.crt"), j("tls.key"))
}

// plainConfig returns a plaintext cluster file for endpoint.
func plainConfig(endpoint string) []byte {
	return fmt.Appendf(nil, "endpoints:\n- %s\n", endpoint)
}

// writeAtomic replaces path with data through a rename, as tools that
// update configs safely do, so no reader sees a half-written file.
func writeAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
