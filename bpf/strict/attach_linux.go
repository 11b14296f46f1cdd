package strict

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The tc filter strait installs on the egress hook of the clsact qdisc. Its
// priority and handle are fixed, so a new agent replaces its predecessor's
// filter in place (cls_bpf swaps the program atomically: no packet sees the
// hook without a program) and never installs a second one.
const (
	// FilterPriority: lower numbers run first; strait's filter runs before any
	// filter with a larger number, so nothing can let a plaintext packet out
	// ahead of it. Passed packets continue to those later filters.
	FilterPriority = 1
	// FilterHandle: "ST".
	FilterHandle = 0x5354
	// FilterName is the name the kernel reports for the filter (tc filter show).
	FilterName = "strait-strict"
)

// Program is strait's strict-mode classifier attached to one link's egress
// hook. Its methods are safe for concurrent use.
//
// The tc filter holds its own reference to the BPF program and maps: it stays
// when the Program is released or the process exits. Close removes it; the
// agent does not call Close on shutdown, so strict mode keeps working while no
// agent runs, and the next agent's Attach replaces the filter. Only the
// Program of the latest Attach on a link is in effect: an older Program's
// Update changes a map no attached program reads.
type Program struct {
	ifindex int

	mu     sync.Mutex // guards the fields below and map writes
	closed bool
	handle *netlink.Handle // bound to the netns Attach ran in
	objs   strictObjects
	progID ebpf.ProgramID
	cidrs  map[netip.Prefix]struct{} // what strict_cidrs holds
}

// Attach loads the strict-mode program, fills its CIDR map with cidrs and
// attaches it as a direct-action tc filter (FilterPriority, FilterHandle) on
// the egress hook of link ifindex in the calling thread's network namespace
// (lock the OS thread when switching namespaces). A clsact qdisc is added when
// the link has none. An existing strait filter is replaced atomically; the
// new program is complete (map filled) before it replaces the old one, so
// re-attaching on agent restart never lets a plaintext packet through. The
// new program takes over the replaced one's counter map when compatible, so
// Counters carry on across restarts.
//
// Errors: ErrInvalidCIDR/ErrTooManyCIDRs (see ValidateCIDRs), ErrNotEthernet,
// ErrFilterConflict (a foreign filter holds strait's priority and handle), and
// wrapped kernel errors naming the step (load, qdisc, filter).
func Attach(ifindex int, cidrs []netip.Prefix) (_ *Program, err error) {
	if err := ValidateCIDRs(cidrs); err != nil {
		return nil, err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("strict: netlink handle: %w", err)
	}
	p := &Program{ifindex: ifindex, handle: h, cidrs: make(map[netip.Prefix]struct{})}
	defer func() {
		if err != nil {
			p.release()
		}
	}()

	link, err := h.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("strict: link %d: %w", ifindex, err)
	}
	name := link.Attrs().Name
	if t := link.Attrs().EncapType; t != "ether" {
		return nil, fmt.Errorf("%w: %s has link type %q", ErrNotEthernet, name, t)
	}
	if err := ensureClsact(h, link); err != nil {
		return nil, fmt.Errorf("strict: %s: %w", name, err)
	}
	prev, err := ourFilter(h, link)
	if err != nil {
		return nil, fmt.Errorf("strict: %s: %w", name, err)
	}
	if err := p.load(prev); err != nil {
		return nil, err
	}
	info, err := p.objs.StrictEgress.Info()
	if err != nil {
		return nil, fmt.Errorf("strict: program info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		return nil, fmt.Errorf("strict: program id: %w", ebpf.ErrNotSupported)
	}
	p.progID = id
	if err := p.update(cidrs); err != nil {
		return nil, err
	}

	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    netlink.HANDLE_MIN_EGRESS,
			Handle:    FilterHandle,
			Priority:  FilterPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           p.objs.StrictEgress.FD(),
		Name:         FilterName,
		DirectAction: true,
	}
	if err := h.FilterReplace(filter); err != nil {
		return nil, fmt.Errorf("strict: %s: attach egress filter: %w", name, err)
	}
	return p, nil
}

// load loads the collection. When prev (the filter being replaced) runs a
// program with a compatible counter map, the new program uses that map, so the
// counters carry on across agent restarts.
func (p *Program) load(prev *netlink.BpfFilter) error {
	counters := previousCounters(prev)
	if counters != nil {
		defer counters.Close()
		opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{strictMapStrictCounters: counters}}
		err := loadStrictObjects(&p.objs, opts)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ebpf.ErrMapIncompatible) {
			return fmt.Errorf("strict: load program: %w", err)
		}
		// A different layout (another strait version): start from zero.
	}
	if err := loadStrictObjects(&p.objs, nil); err != nil {
		return fmt.Errorf("strict: load program: %w", err)
	}
	return nil
}

// previousCounters opens the counter map of the program prev runs, or returns
// nil when there is none or it cannot be read.
func previousCounters(prev *netlink.BpfFilter) *ebpf.Map {
	if prev == nil || prev.Id == 0 {
		return nil
	}
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(prev.Id))
	if err != nil {
		return nil
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return nil
	}
	ids, _ := info.MapIDs()
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		if mi, err := m.Info(); err == nil && mi.Name == strictMapStrictCounters && mi.Type == ebpf.PerCPUArray {
			return m
		}
		m.Close()
	}
	return nil
}

// ensureClsact adds a clsact qdisc to link unless it has one.
func ensureClsact(h *netlink.Handle, link netlink.Link) error {
	qdiscs, err := h.QdiscList(link)
	if err != nil {
		return fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qdiscs {
		if q.Type() == "clsact" {
			return nil
		}
	}
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: link.Attrs().Index,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	err = h.QdiscAdd(q)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact qdisc: %w", err)
	}
	// Someone added one since we looked, or an ingress qdisc holds ffff:.
	qdiscs, lerr := h.QdiscList(link)
	if lerr != nil {
		return fmt.Errorf("list qdiscs: %w", lerr)
	}
	for _, q := range qdiscs {
		if q.Type() == "clsact" {
			return nil
		}
	}
	return fmt.Errorf("add clsact qdisc: handle ffff: is taken (an ingress qdisc? clsact replaces it): %w", err)
}

// ourFilter returns strait's filter on link's egress hook, nil when there is
// none, and ErrFilterConflict when a foreign filter holds its priority and handle.
func ourFilter(h *netlink.Handle, link netlink.Link) (*netlink.BpfFilter, error) {
	filters, err := h.FilterList(link, netlink.HANDLE_MIN_EGRESS)
	if err != nil {
		return nil, fmt.Errorf("list egress filters: %w", err)
	}
	for _, f := range filters {
		a := f.Attrs()
		if a.Priority != FilterPriority || a.Handle != FilterHandle {
			continue
		}
		bf, ok := f.(*netlink.BpfFilter)
		if !ok || bf.Name != FilterName {
			return nil, fmt.Errorf("%w: %s filter %q", ErrFilterConflict, f.Type(), filterName(f))
		}
		return bf, nil
	}
	return nil, nil
}

func filterName(f netlink.Filter) string {
	if bf, ok := f.(*netlink.BpfFilter); ok {
		return bf.Name
	}
	return ""
}

// Update makes the CIDR set equal to cidrs without detaching: new prefixes are
// added before removed ones are deleted, so an address covered before and
// after is dropped throughout. Errors: ErrInvalidCIDR/ErrTooManyCIDRs (nothing
// changed), ErrClosed, or a map error (the set may then be partly updated;
// CIDRs reports what the kernel holds, and calling Update again repairs it).
func (p *Program) Update(cidrs []netip.Prefix) error {
	if err := ValidateCIDRs(cidrs); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return p.update(cidrs)
}

func (p *Program) update(cidrs []netip.Prefix) error {
	want := make(map[netip.Prefix]struct{}, len(cidrs))
	for _, c := range cidrs {
		want[c] = struct{}{}
		if _, ok := p.cidrs[c]; ok {
			continue
		}
		if err := p.objs.StrictCidrs.Put(lpmKey(c), uint8(1)); err != nil {
			return fmt.Errorf("strict: add cidr %s: %w", c, err)
		}
		p.cidrs[c] = struct{}{}
	}
	for c := range p.cidrs {
		if _, ok := want[c]; ok {
			continue
		}
		if err := p.objs.StrictCidrs.Delete(lpmKey(c)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("strict: remove cidr %s: %w", c, err)
		}
		delete(p.cidrs, c)
	}
	return nil
}

func lpmKey(p netip.Prefix) strictLpmKey {
	return strictLpmKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
}

// CIDRs returns the prefixes the kernel map holds, sorted (read from the map,
// not from memory).
func (p *Program) CIDRs() ([]netip.Prefix, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	var (
		out []netip.Prefix
		key strictLpmKey
		val uint8
	)
	iter := p.objs.StrictCidrs.Iterate()
	for iter.Next(&key, &val) {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(key.Addr), int(key.Prefixlen)))
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("strict: read cidrs: %w", err)
	}
	sortPrefixes(out)
	return out, nil
}

// Counters returns the per-reason packet counts, summed over CPUs.
func (p *Program) Counters() (Counters, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var c Counters
	if p.closed {
		return c, ErrClosed
	}
	var perCPU []uint64
	for _, r := range Reasons() {
		if err := p.objs.StrictCounters.Lookup(uint32(r), &perCPU); err != nil {
			return c, fmt.Errorf("strict: read counter %s: %w", r, err)
		}
		for _, v := range perCPU {
			c[r] += v
		}
	}
	return c, nil
}

// Drops returns the number of packets dropped (Counters().Drops()).
func (p *Program) Drops() (uint64, error) {
	c, err := p.Counters()
	if err != nil {
		return 0, err
	}
	return c.Drops(), nil
}

// ProgramID is the kernel's ID of the loaded program (tc filter show lists it).
func (p *Program) ProgramID() ebpf.ProgramID { return p.progID }

// Release closes the Program's file descriptors and netlink socket but leaves
// the filter attached: the kernel keeps the program and maps alive for it.
// Further method calls return ErrClosed. Idempotent.
func (p *Program) Release() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.release()
	return nil
}

func (p *Program) release() {
	if p.closed {
		return
	}
	p.closed = true
	_ = p.objs.Close() // only closes file descriptors
	p.handle.Close()
}

// Close detaches the filter, if it is still this Program's (a later Attach,
// for example by a restarted agent, owns it otherwise and it is left alone),
// then releases the Program. Idempotent: a closed Program returns nil.
func (p *Program) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	defer p.release()
	link, err := p.handle.LinkByIndex(p.ifindex)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil // the link and its filters are gone
		}
		return fmt.Errorf("strict: link %d: %w", p.ifindex, err)
	}
	f, err := ourFilter(p.handle, link)
	if err != nil {
		return fmt.Errorf("strict: %s: %w", link.Attrs().Name, err)
	}
	if f == nil || f.Id != int(p.progID) {
		return nil
	}
	if err := p.handle.FilterDel(f); err != nil {
		return fmt.Errorf("strict: %s: detach egress filter: %w", link.Attrs().Name, err)
	}
	return nil
}

// Detach removes strait's filter from link ifindex in the calling thread's
// network namespace, whichever process attached it: teardown when strict mode
// is turned off or the node leaves. No filter is not an error; a foreign filter
// at strait's priority and handle is left alone (ErrFilterConflict). The clsact
// qdisc stays: other filters may use it.
func Detach(ifindex int) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("strict: netlink handle: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("strict: link %d: %w", ifindex, err)
	}
	name := link.Attrs().Name
	f, err := ourFilter(h, link)
	if err != nil {
		return fmt.Errorf("strict: %s: %w", name, err)
	}
	if f == nil {
		return nil
	}
	if err := h.FilterDel(f); err != nil {
		return fmt.Errorf("strict: %s: detach egress filter: %w", name, err)
	}
	return nil
}
