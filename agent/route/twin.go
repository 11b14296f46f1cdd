package route

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Twin is an in-memory main routing table implementing Netlink, for unit
// tests. Routes are keyed like the kernel's (destination, priority, TOS);
// it counts the writes.
type Twin struct {
	mu     sync.Mutex
	routes map[twinKey]netlink.Route
	writes int
}

type twinKey struct {
	dst      netip.Prefix
	priority int
	tos      int
}

// NewTwin returns an empty table.
func NewTwin() *Twin { return &Twin{routes: make(map[twinKey]netlink.Route)} }

func keyOf(r *netlink.Route) (twinKey, error) {
	dst, ok := dstOf(*r)
	if !ok {
		return twinKey{}, fmt.Errorf("twin: route without IPv4 destination")
	}
	return twinKey{dst: dst.Masked(), priority: r.Priority, tos: r.Tos}, nil
}

// RouteList implements Netlink.
func (t *Twin) RouteList() ([]netlink.Route, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]netlink.Route, 0, len(t.routes))
	for _, r := range t.routes {
		out = append(out, r)
	}
	return out, nil
}

// RouteReplace implements Netlink.
func (t *Twin) RouteReplace(r *netlink.Route) error {
	k, err := keyOf(r)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Table != 0 && r.Table != unix.RT_TABLE_MAIN {
		return fmt.Errorf("twin: only the main table")
	}
	c := *r
	c.Table = unix.RT_TABLE_MAIN
	t.routes[k] = c
	t.writes++
	return nil
}

// RouteDel implements Netlink.
func (t *Twin) RouteDel(r *netlink.Route) error {
	k, err := keyOf(r)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.routes[k]; !ok {
		return fmt.Errorf("twin: route %s: no such process", k.dst)
	}
	delete(t.routes, k)
	t.writes++
	return nil
}

// Writes is the number of RouteReplace and RouteDel calls that changed the
// table.
func (t *Twin) Writes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.writes
}

// String renders the table as sorted "dst dev N mtu M proto P" lines.
func (t *Twin) String() string {
	rs, _ := t.RouteList()
	return Render(rs)
}

// Render formats routes as sorted "dst [via gw] dev N mtu M proto P" lines, the
// form the tests compare (the twin's and the kernel's alike).
func Render(rs []netlink.Route) string {
	var lines []string
	for _, r := range rs {
		dst, ok := dstOf(r)
		if !ok {
			continue
		}
		via := ""
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			via = " via " + gw.Unmap().String()
		}
		lines = append(lines, fmt.Sprintf("%s%s dev %d mtu %d proto %d", dst, via, r.LinkIndex, r.MTU, int(r.Protocol)))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
