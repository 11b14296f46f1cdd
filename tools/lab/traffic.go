package lab

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

var (
	// ErrStreamData: a stream block arrived out of order or altered.
	ErrStreamData = errors.New("lab: stream data corrupted")
	// ErrEchoMismatch: an echo came back different.
	ErrEchoMismatch = errors.New("lab: echo mismatch")
)

// EchoServer echoes every TCP connection back, inside a namespace.
type EchoServer struct {
	ln net.Listener
	wg sync.WaitGroup
	mu sync.Mutex
	cs map[net.Conn]struct{}
}

// StartEchoServer listens on 0.0.0.0:port inside namespace ns.
func StartEchoServer(ns string, port uint16) (*EchoServer, error) {
	ln, err := ListenIn(ns, "tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("echo server in %s: %w", ns, err)
	}
	s := &EchoServer{ln: ln, cs: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.cs[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				io.Copy(c, c)
				c.Close()
				s.mu.Lock()
				delete(s.cs, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

// Close stops the server and its connections.
func (s *EchoServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.cs {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// Echo connects from namespace ns to dst, sends payload and checks that
// the same bytes come back.
func Echo(ctx context.Context, ns string, dst netip.AddrPort, payload []byte) error {
	c, err := DialIn(ctx, ns, "tcp4", dst.String())
	if err != nil {
		return fmt.Errorf("echo %s from %s: %w", dst, ns, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("echo %s from %s: read: %w", dst, ns, err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("echo %s from %s: write: %w", dst, ns, err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echo %s from %s: %w", dst, ns, ErrEchoMismatch)
	}
	return nil
}

// Ping sends one ICMP echo request from namespace ns to dst and waits for
// its reply (a privileged raw ICMP socket in that namespace).
func Ping(ctx context.Context, ns string, dst netip.Addr, id, seq int, payload []byte) error {
	var pc *icmp.PacketConn
	if err := Do(ns, func() error {
		var err error
		pc, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return fmt.Errorf("ping %s from %s: %w", dst, ns, err)
	}
	defer pc.Close()
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id & 0xffff, Seq: seq & 0xffff, Data: payload}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := pc.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("ping %s from %s: %w", dst, ns, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	pc.SetReadDeadline(deadline)
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s from %s: %w", dst, ns, err)
		}
		if ip, ok := from.(*net.IPAddr); !ok || !ip.IP.Equal(dst.AsSlice()) {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id&0xffff && e.Seq == seq&0xffff {
			if !bytes.Equal(e.Data, payload) {
				return fmt.Errorf("ping %s from %s: %w", dst, ns, ErrEchoMismatch)
			}
			return nil
		}
	}
}

// StreamConfig shapes a sequence-numbered TCP stream.
type StreamConfig struct {
	// BlockSize is the size of each block (≥ 16 + len(Marker)); default 1024.
	BlockSize int
	// Interval between blocks; 0 = as fast as possible.
	Interval time.Duration
	// Blocks to send; 0 = until Stop.
	Blocks int
	// Marker is carried in every block (the capture must never see it).
	Marker []byte
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.BlockSize == 0 {
		c.BlockSize = 1024
	}
	if c.BlockSize < 16+len(c.Marker) {
		c.BlockSize = 16 + len(c.Marker)
	}
	return c
}

// fillBlock writes block seq: 8-byte sequence number, 8-byte length
// check, marker, then bytes derived from seq and offset.
func fillBlock(b []byte, seq uint64, marker []byte) {
	binary.BigEndian.PutUint64(b[0:8], seq)
	binary.BigEndian.PutUint64(b[8:16], ^seq)
	n := copy(b[16:], marker)
	for i := 16 + n; i < len(b); i++ {
		b[i] = byte(seq*31 + uint64(i))
	}
}

// StreamResult is what a stream server received.
type StreamResult struct {
	Blocks int
	Bytes  int64
	// Err is the first read error other than the sender's clean close, or
	// ErrStreamData.
	Err error
}

// StreamServer accepts one stream and verifies every byte of it.
type StreamServer struct {
	ln   net.Listener
	done chan struct{}
	res  StreamResult
	mu   sync.Mutex
}

// StartStreamServer listens on 0.0.0.0:port in namespace ns for one stream
// made with cfg (the same BlockSize and Marker as the sender).
func StartStreamServer(ns string, port uint16, cfg StreamConfig) (*StreamServer, error) {
	cfg = cfg.withDefaults()
	ln, err := ListenIn(ns, "tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("stream server in %s: %w", ns, err)
	}
	s := &StreamServer{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			s.res.Err = err
			return
		}
		defer c.Close()
		got := make([]byte, cfg.BlockSize)
		want := make([]byte, cfg.BlockSize)
		for seq := uint64(0); ; seq++ {
			n, err := io.ReadFull(c, got)
			s.mu.Lock()
			s.res.Bytes += int64(n)
			s.mu.Unlock()
			if err == io.EOF {
				return
			}
			if err != nil {
				s.res.Err = fmt.Errorf("block %d: %w", seq, err)
				return
			}
			fillBlock(want, seq, cfg.Marker)
			if !bytes.Equal(got, want) {
				s.res.Err = fmt.Errorf("block %d (got sequence %d): %w", seq, binary.BigEndian.Uint64(got), ErrStreamData)
				return
			}
			s.mu.Lock()
			s.res.Blocks++
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// Received returns how many whole blocks were verified so far.
func (s *StreamServer) Received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.res.Blocks
}

// Wait waits for the stream to end (the sender closed it) and returns
// what arrived.
func (s *StreamServer) Wait(ctx context.Context) (StreamResult, error) {
	select {
	case <-s.done:
		return s.res, nil
	case <-ctx.Done():
		s.ln.Close()
		return StreamResult{}, fmt.Errorf("stream server: %w", ctx.Err())
	}
}

// Close stops listening (a stream in progress goes on until Wait).
func (s *StreamServer) Close() error { return s.ln.Close() }

// Stream is the sending side.
type Stream struct {
	conn   *net.TCPConn
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	sent   int
	err    error
}

// StartStream connects from namespace ns to dst and sends blocks.
func StartStream(ctx context.Context, ns string, dst netip.AddrPort, cfg StreamConfig) (*Stream, error) {
	cfg = cfg.withDefaults()
	c, err := DialIn(ctx, ns, "tcp4", dst.String())
	if err != nil {
		return nil, fmt.Errorf("stream to %s from %s: %w", dst, ns, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	st := &Stream{conn: c.(*net.TCPConn), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(st.done)
		b := make([]byte, cfg.BlockSize)
		var tick <-chan time.Time
		if cfg.Interval > 0 {
			t := time.NewTicker(cfg.Interval)
			defer t.Stop()
			tick = t.C
		}
		for seq := uint64(0); cfg.Blocks == 0 || seq < uint64(cfg.Blocks); seq++ {
			if tick != nil {
				select {
				case <-tick:
				case <-ctx.Done():
					return
				}
			} else if ctx.Err() != nil {
				return
			}
			fillBlock(b, seq, cfg.Marker)
			st.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := st.conn.Write(b); err != nil {
				st.mu.Lock()
				st.err = fmt.Errorf("block %d: %w", seq, err)
				st.mu.Unlock()
				return
			}
			st.mu.Lock()
			st.sent++
			st.mu.Unlock()
		}
	}()
	return st, nil
}

// Sent returns how many blocks were written so far.
func (s *Stream) Sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// Err returns the write error that ended the stream early, if any.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Done is closed when the sender stopped (all Blocks sent, Stop or error).
func (s *Stream) Done() <-chan struct{} { return s.done }

// Stop stops sending, closes the connection for writing (the server sees
// EOF after the last block) and returns blocks sent and any write error.
func (s *Stream) Stop() (int, error) {
	s.cancel()
	<-s.done
	err := s.conn.CloseWrite()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		err = s.err
	}
	return s.sent, err
}

// Close releases the connection.
func (s *Stream) Close() error {
	s.cancel()
	<-s.done
	return s.conn.Close()
}
