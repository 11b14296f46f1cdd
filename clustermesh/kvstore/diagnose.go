package kvstore

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"
)

// http2Preface is the HTTP/2 client connection preface followed by an empty
// SETTINGS frame; a gRPC server answers it with its own SETTINGS frame, and
// a server that rejected our client certificate answers with a TLS alert.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"

// diagnose dials ep directly (TCP, then the TLS handshake and one HTTP/2
// exchange when tc is set) to find out why the etcd client could not reach
// it. It returns nil when the endpoint looks healthy at these layers, so the
// caller keeps the etcd client's own error.
func diagnose(ctx context.Context, ep string, tc *tls.Config, timeout time.Duration) error {
	u, err := url.Parse(ep)
	if err != nil {
		return fmt.Errorf("parse endpoint: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", u.Host)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if tc == nil {
		return nil
	}
	if deadline, ok := dctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	cfg := tc.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	cfg.NextProtos = []string{"h2"}
	tconn := tls.Client(conn, cfg)
	if err := tconn.HandshakeContext(dctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	// With TLS 1.3 the server checks our certificate after the client's
	// handshake completed; its verdict arrives with the first read.
	if _, err := tconn.Write([]byte(http2Preface)); err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	var buf [1]byte
	if _, err := tconn.Read(buf[:]); err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	return nil
}
