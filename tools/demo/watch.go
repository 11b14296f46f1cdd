package demo

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
)

// crossWatch finds the first encrypted frame between nodes of DIFFERENT
// clusters on the underlay. tools/lab/capture counts classes and the first
// encrypted frame of any pair of nodes, but cannot tell which clusters a
// frame joins, and the nodes of one cluster are WireGuard peers (and may
// talk) before the clusters are connected. So the demo reads a second
// AF_PACKET socket in the underlay namespace until the first such frame,
// parsing and classifying with capture's own ParseFrame and Classify.
type crossWatch struct {
	fd        int
	cfg       capture.Config
	clusterOf map[netip.Addr]int
	stop      chan struct{}
	done      chan struct{}
	once      sync.Once

	mu    sync.Mutex
	first time.Time
	desc  string
	err   error
}

// crossEncrypted reports whether frame is an encrypted (WireGuard or ESP)
// frame between nodes of two different clusters, with its description.
func crossEncrypted(cfg *capture.Config, clusterOf map[netip.Addr]int, frame []byte) (bool, string) {
	p, err := capture.ParseFrame(frame)
	if err != nil {
		return false, ""
	}
	switch cfg.Classify(p) {
	case capture.ClassWireGuard, capture.ClassIPsec:
	default:
		return false, ""
	}
	a, okA := clusterOf[p.Src]
	b, okB := clusterOf[p.Dst]
	if !okA || !okB || a == b {
		return false, ""
	}
	return true, p.String()
}

// startCrossWatch opens the socket in namespace ns and starts reading.
func startCrossWatch(ns string, cfg capture.Config, clusterOf map[netip.Addr]int) (*crossWatch, error) {
	fd := -1
	err := lab.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		tv := unix.Timeval{Usec: 100_000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return fmt.Errorf("packet socket timeout: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cross-cluster watch in %s: %w", ns, err)
	}
	w := &crossWatch{fd: fd, cfg: cfg, clusterOf: clusterOf, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (w *crossWatch) run() {
	defer close(w.done)
	buf := make([]byte, 1<<16)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n, from, err := unix.Recvfrom(w.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			w.mu.Lock()
			w.err = fmt.Errorf("cross-cluster watch: receive: %w", err)
			w.mu.Unlock()
			return
		}
		at := time.Now()
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if ok, desc := crossEncrypted(&w.cfg, w.clusterOf, buf[:n]); ok {
			w.mu.Lock()
			w.first, w.desc = at, desc
			w.mu.Unlock()
			return // one is all it is for
		}
	}
}

// First returns when the first cross-cluster encrypted frame was seen
// (zero if not yet) and its description.
func (w *crossWatch) First() (time.Time, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first, w.desc
}

// Stop ends the watch and closes the socket; it returns the receive error
// that ended the watch early, if any.
func (w *crossWatch) Stop() error {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		unix.Close(w.fd)
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
