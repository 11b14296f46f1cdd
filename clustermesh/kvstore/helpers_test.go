package kvstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/internal/etcdtest"
)

// newTestClient connects to srv and closes the client at cleanup.
func newTestClient(tb testing.TB, srv *etcdtest.Server, cfg Config) *Client {
	tb.Helper()
	cfg.Endpoints = srv.Endpoints()
	c, err := New(testkit.Context(tb, 2*time.Minute), testkit.Logger(tb), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// recv returns the next event or fails the test when the channel closes or
// ctx ends.
func recv(ctx context.Context, tb testing.TB, ch <-chan Event) Event {
	tb.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			tb.Fatalf("event channel closed")
		}
		return ev
	case <-ctx.Done():
		tb.Fatalf("waiting for event: %v", ctx.Err())
	}
	return Event{}
}

// recvUntil receives events until stop returns true for one, and returns
// all of them (including the stopping one).
func recvUntil(ctx context.Context, tb testing.TB, ch <-chan Event, stop func(Event) bool) []Event {
	tb.Helper()
	var evs []Event
	for {
		ev := recv(ctx, tb, ch)
		evs = append(evs, ev)
		if stop(ev) {
			return evs
		}
	}
}

// etcdContent returns every key → value under prefix, read with raw.
func etcdContent(ctx context.Context, tb testing.TB, c *Client, prefix string) map[string]string {
	tb.Helper()
	resp, err := c.Etcd().Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		tb.Fatalf("get %s: %v", prefix, err)
	}
	m := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files into a temporary directory.
type testPKI struct {
	CAFile, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newTestPKI(tb testing.TB, name string) testPKI {
	tb.Helper()
	dir := tb.TempDir()
	caKey := genKey(tb)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatalf("create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatalf("parse CA: %v", err)
	}
	p := testPKI{CAFile: filepath.Join(dir, "ca.crt")}
	writePEM(tb, p.CAFile, "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key := genKey(tb)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			tb.Fatalf("create %s certificate: %v", cn, err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			tb.Fatalf("marshal key: %v", err)
		}
		crt, kf := filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
		writePEM(tb, crt, "CERTIFICATE", der)
		writePEM(tb, kf, "EC PRIVATE KEY", keyDER)
		return crt, kf
	}
	p.ServerCert, p.ServerKey = leaf(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.ClientCert, p.ClientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth, nil)
	return p
}

func genKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate key: %v", err)
	}
	return k
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatalf("write %s: %v", path, err)
	}
}
