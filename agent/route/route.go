package route

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Protocol marks strait's routes (rtm_protocol 200, "strait").
const Protocol = netlink.RouteProtocol(0xC8)

var (
	// ErrForeign: a route of another protocol already holds the
	// destination; strait does not replace it.
	ErrForeign = errors.New("route: destination held by a foreign route")
)

// Log keys.
const (
	logDst   = "dst"
	logError = "error"
)

// Netlink is the part of the kernel's routing table Set uses.
type Netlink interface {
	// RouteList returns every IPv4 route of the main table.
	RouteList() ([]netlink.Route, error)
	// RouteReplace adds r or replaces the route with its table,
	// destination, TOS and priority.
	RouteReplace(r *netlink.Route) error
	// RouteDel deletes r.
	RouteDel(r *netlink.Route) error
}

// Device is where the routes point.
type Device struct {
	Index int
	MTU   int
}

// Route is one desired route: Dst through the Device, directly (scope
// link, Via invalid: the WireGuard device) or via the gateway Via (the
// remote node's address on the underlay, for IPsec).
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
}

// Stats counts what one Set did.
type Stats struct{ Added, Replaced, Removed, Unchanged int }

// Reconciler keeps the strait routes of one table equal to a desired set.
type Reconciler struct {
	nl  Netlink
	log *slog.Logger
}

// New returns a reconciler writing through nl.
func New(nl Netlink, log *slog.Logger) *Reconciler { return &Reconciler{nl: nl, log: log} }

// want is the route Set writes for r.
func want(r Route, dev Device) *netlink.Route {
	dst := r.Dst.Masked()
	nr := &netlink.Route{
		LinkIndex: dev.Index,
		Dst:       &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())},
		Scope:     netlink.SCOPE_LINK,
		Protocol:  Protocol,
		MTU:       dev.MTU,
		Table:     unix.RT_TABLE_MAIN,
		Family:    netlink.FAMILY_V4,
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
		nr.Scope = netlink.SCOPE_UNIVERSE
	}
	return nr
}

// dstOf converts a route's destination; ok is false for a default route
// or a non-IPv4 one.
func dstOf(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// right reports whether cur is already the route Set would write for r.
func right(cur netlink.Route, r Route, dev Device) bool {
	if cur.LinkIndex != dev.Index || cur.MTU != dev.MTU || len(cur.MultiPath) != 0 {
		return false
	}
	if !r.Via.IsValid() {
		return cur.Scope == netlink.SCOPE_LINK && cur.Gw == nil
	}
	gw, ok := netip.AddrFromSlice(cur.Gw)
	return ok && gw.Unmap() == r.Via && cur.Scope == netlink.SCOPE_UNIVERSE
}

// Set makes the strait routes of the main table equal to routes (each
// through dev, with its MTU). Routes of strait not in dsts are deleted only when
// prune is true. A destination also held by a foreign route (same prefix,
// priority 0) is left alone and reported (ErrForeign). Errors of single
// routes are joined; the others are still applied.
func (r *Reconciler) Set(ctx context.Context, routes []Route, dev Device, prune bool) (Stats, error) {
	var st Stats
	if dev.Index <= 0 {
		return st, fmt.Errorf("route: device index %d: invalid", dev.Index)
	}
	all, err := r.nl.RouteList()
	if err != nil {
		return st, fmt.Errorf("list routes: %w", err)
	}
	ours := make(map[netip.Prefix]netlink.Route)
	foreign := make(map[netip.Prefix]netlink.RouteProtocol)
	for _, rt := range all {
		dst, ok := dstOf(rt)
		if !ok || rt.Priority != 0 || rt.Tos != 0 {
			continue
		}
		if rt.Protocol == Protocol {
			ours[dst] = rt
		} else {
			foreign[dst] = rt.Protocol
		}
	}
	desired := make(map[netip.Prefix]bool, len(routes))
	sorted := slices.Clone(routes)
	slices.SortFunc(sorted, func(a, b Route) int {
		return cmp.Or(a.Dst.Addr().Compare(b.Dst.Addr()), cmp.Compare(a.Dst.Bits(), b.Dst.Bits()))
	})
	var errs []error
	for _, rt := range sorted {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		dst := rt.Dst.Masked()
		rt.Dst = dst
		if !dst.Addr().Is4() || desired[dst] {
			continue
		}
		desired[dst] = true
		if p, held := foreign[dst]; held {
			errs = append(errs, fmt.Errorf("route %s: %w (protocol %d)", dst, ErrForeign, int(p)))
			continue
		}
		cur, have := ours[dst]
		if have && right(cur, rt, dev) {
			st.Unchanged++
			continue
		}
		if err := r.nl.RouteReplace(want(rt, dev)); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", dst, err))
			continue
		}
		if have {
			st.Replaced++
			r.log.Debug("Replaced route", logDst, dst)
		} else {
			st.Added++
			r.log.Debug("Added route", logDst, dst)
		}
	}
	if prune {
		var stale []netip.Prefix
		for dst := range ours {
			if !desired[dst] {
				stale = append(stale, dst)
			}
		}
		slices.SortFunc(stale, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		for _, dst := range stale {
			rt := ours[dst]
			if err := r.nl.RouteDel(&rt); err != nil {
				errs = append(errs, fmt.Errorf("delete route %s: %w", dst, err))
				continue
			}
			st.Removed++
			r.log.Debug("Deleted route", logDst, dst)
		}
	}
	return st, errors.Join(errs...)
}

// List returns the destinations of strait's routes in the main table.
func List(nl Netlink) ([]netip.Prefix, error) {
	all, err := nl.RouteList()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, rt := range all {
		if dst, ok := dstOf(rt); ok && rt.Protocol == Protocol {
			out = append(out, dst)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out, nil
}

// Kernel is Netlink over a netlink handle.
type Kernel struct{ h *netlink.Handle }

// NewKernel returns a Kernel for the current network namespace.
func NewKernel() (*Kernel, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return &Kernel{h: h}, nil
}

// NewKernelAt returns a Kernel for the network namespace ns (tests use it
// to work inside a namespace they created, from any thread).
func NewKernelAt(ns netns.NsHandle) (*Kernel, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return &Kernel{h: h}, nil
}

// Handle is the underlying netlink handle.
func (k *Kernel) Handle() *netlink.Handle { return k.h }

// Close releases the handle.
func (k *Kernel) Close() { k.h.Close() }

// RouteList implements Netlink.
func (k *Kernel) RouteList() ([]netlink.Route, error) {
	return k.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
}

// RouteReplace implements Netlink.
func (k *Kernel) RouteReplace(r *netlink.Route) error { return k.h.RouteReplace(r) }

// RouteDel implements Netlink.
func (k *Kernel) RouteDel(r *netlink.Route) error { return k.h.RouteDel(r) }
