package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// maxSamples is how many descriptions Stats keeps per class.
const maxSamples = 8

// Stats is what a capture saw.
type Stats struct {
	Packets [numClasses]int
	Bytes   [numClasses]int64
	// FirstEncrypted is when the first WireGuard or ESP frame arrived.
	FirstEncrypted time.Time
	// EncryptedBytes is the frame bytes of WireGuard and ESP frames.
	EncryptedBytes int64
	// MarkerHits counts frames that contained Config.Marker.
	MarkerHits int
	// MarkerSamples describe the first frames with the marker.
	MarkerSamples []string
	// Samples are the first frames of each class, described.
	Samples [numClasses][]string
	// ParseErrors counts frames ParseFrame rejected (classed as other).
	ParseErrors int
}

// Count returns the packet count of class c.
func (s *Stats) Count(c Class) int { return s.Packets[c] }

// String summarises the counts.
func (s *Stats) String() string {
	var b bytes.Buffer
	for c := Class(0); c < numClasses; c++ {
		fmt.Fprintf(&b, "%s=%d ", c, s.Packets[c])
	}
	fmt.Fprintf(&b, "marker=%d encryptedBytes=%d", s.MarkerHits, s.EncryptedBytes)
	return b.String()
}

// Capture is a running capture.
type Capture struct {
	cfg  Config
	log  *slog.Logger
	fd   int
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	stats Stats
	err   error
}

// Start opens the capture socket in the named network namespace and starts
// reading.
func Start(ctx context.Context, log *slog.Logger, netnsName string, cfg Config) (*Capture, error) {
	fd, err := openSocket(netnsName)
	if err != nil {
		return nil, err
	}
	c := &Capture{cfg: cfg, log: log, fd: fd, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run(ctx)
	return c, nil
}

// htons converts a 16-bit value to network byte order.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openSocket opens an AF_PACKET socket inside the namespace; the socket
// stays there after the thread leaves.
func openSocket(name string) (int, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return -1, fmt.Errorf("capture netns %s: %w", name, err)
	}
	defer ns.Close()
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine.
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			ch <- res{-1, fmt.Errorf("capture netns %s: enter: %w", name, err)}
			return
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			ch <- res{-1, fmt.Errorf("capture socket in %s: %w", name, err)}
			return
		}
		tv := unix.Timeval{Usec: 100_000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			ch <- res{-1, fmt.Errorf("capture socket timeout: %w", err)}
			return
		}
		// A large buffer: bursts of GSO frames must not be dropped.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		ch <- res{fd, nil}
	}()
	r := <-ch
	return r.fd, r.err
}

func (c *Capture) run(ctx context.Context) {
	defer close(c.done)
	buf := make([]byte, 1<<18)
	for {
		select {
		case <-c.stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			c.mu.Lock()
			c.err = fmt.Errorf("capture receive: %w", err)
			c.mu.Unlock()
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		c.add(buf[:n], time.Now())
	}
}

// add classifies one frame into the stats.
func (c *Capture) add(frame []byte, at time.Time) {
	p, perr := ParseFrame(frame)
	class := ClassOther
	if perr == nil {
		class = c.cfg.Classify(p)
	}
	hit := len(c.cfg.Marker) > 0 && bytes.Contains(frame, c.cfg.Marker)
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.stats
	s.Packets[class]++
	s.Bytes[class] += int64(len(frame))
	if perr != nil {
		s.ParseErrors++
	}
	if class == ClassWireGuard || class == ClassIPsec {
		if s.FirstEncrypted.IsZero() {
			s.FirstEncrypted = at
		}
		s.EncryptedBytes += int64(len(frame))
	}
	if len(s.Samples[class]) < maxSamples {
		desc := p.String()
		if perr != nil {
			desc = perr.Error()
		}
		s.Samples[class] = append(s.Samples[class], desc)
	}
	if hit {
		s.MarkerHits++
		if len(s.MarkerSamples) < maxSamples {
			s.MarkerSamples = append(s.MarkerSamples, class.String()+": "+p.String())
		}
	}
}

// Stats returns a snapshot of what was seen so far.
func (c *Capture) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	for i := range s.Samples {
		s.Samples[i] = append([]string(nil), s.Samples[i]...)
	}
	s.MarkerSamples = append([]string(nil), s.MarkerSamples...)
	return s
}

// Stop ends the capture, closes the socket and returns the final stats and
// the receive error that ended it early, if any.
func (c *Capture) Stop() (Stats, error) {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		unix.Close(c.fd)
	})
	<-c.done
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	return c.Stats(), err
}
