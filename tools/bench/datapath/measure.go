package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/strait-net/strait/tools/lab"
)

// listen opens a TCP listener in namespace ns ("" = the current one).
func listen(ns string, addr netip.AddrPort) (net.Listener, error) {
	if ns == "" {
		return net.Listen("tcp4", addr.String())
	}
	return lab.ListenIn(ns, "tcp4", addr.String())
}

// dial connects from namespace ns ("" = the current one).
func dial(ctx context.Context, ns string, addr netip.AddrPort) (net.Conn, error) {
	if ns == "" {
		var d net.Dialer
		return d.DialContext(ctx, "tcp4", addr.String())
	}
	return lab.DialIn(ctx, ns, "tcp4", addr.String())
}

// throughput sends as fast as possible for d from srcNs to a sink in
// dstNs listening on dst, and returns the bytes per second the sink read.
func throughput(ctx context.Context, srcNs, dstNs string, dst netip.AddrPort, d time.Duration) (float64, error) {
	n, elapsed, err := bulk(ctx, srcNs, dstNs, dst, d)
	if err != nil {
		return 0, err
	}
	return float64(n) / elapsed.Seconds(), nil
}

// bulk sends for d and returns the bytes the sink read and its read time.
func bulk(ctx context.Context, srcNs, dstNs string, dst netip.AddrPort, d time.Duration) (int64, time.Duration, error) {
	ln, err := listen(dstNs, dst)
	if err != nil {
		return 0, 0, fmt.Errorf("sink: %w", err)
	}
	defer ln.Close()
	type result struct {
		n       int64
		elapsed time.Duration
		err     error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		// The first 8 bytes carry nothing; timing starts when they arrive.
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			res <- result{err: err}
			return
		}
		start := time.Now()
		n, err := io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
		res <- result{n: n, elapsed: time.Since(start), err: err}
	}()
	c, err := dial(ctx, srcNs, dst)
	if err != nil {
		return 0, 0, fmt.Errorf("dial: %w", err)
	}
	buf := make([]byte, 128<<10)
	if _, err := c.Write(buf[:8]); err != nil {
		c.Close()
		return 0, 0, err
	}
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, 0, fmt.Errorf("write: %w", err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	r := <-res
	c.Close()
	if r.err != nil {
		return 0, 0, fmt.Errorf("sink: %w", r.err)
	}
	return r.n, r.elapsed, nil
}

// RTT is the distribution of request/response round trips.
type RTT struct {
	Mean, P50, P99 time.Duration
	N              int
}

// rtt runs n 1-byte request/response exchanges (after n/10 warm-up ones)
// on one TCP connection with Nagle off.
func rtt(ctx context.Context, srcNs, dstNs string, dst netip.AddrPort, n int) (RTT, error) {
	s, err := rttSamples(ctx, srcNs, dstNs, dst, n)
	if err != nil {
		return RTT{}, err
	}
	return summarize(s), nil
}

// rttSamples returns the n measured round trips.
func rttSamples(ctx context.Context, srcNs, dstNs string, dst netip.AddrPort, n int) ([]time.Duration, error) {
	ln, err := listen(dstNs, dst)
	if err != nil {
		return nil, fmt.Errorf("responder: %w", err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.(*net.TCPConn).SetNoDelay(true)
		b := make([]byte, 1)
		for {
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}()
	c, err := dial(ctx, srcNs, dst)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	b := []byte{0}
	samples := make([]time.Duration, 0, n)
	for i := 0; i < n+n/10; i++ {
		b[0] = byte(i)
		start := time.Now()
		if _, err := c.Write(b); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return nil, err
		}
		if b[0] != byte(i) {
			return nil, fmt.Errorf("round trip %d: got byte %d", i, b[0])
		}
		if i >= n/10 {
			samples = append(samples, time.Since(start))
		}
	}
	return samples, nil
}

func summarize(s []time.Duration) RTT {
	if len(s) == 0 {
		return RTT{}
	}
	s = slices.Clone(s)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.5) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return RTT{Mean: sum / time.Duration(len(s)), P50: pct(0.50), P99: pct(0.99), N: len(s)}
}
