package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/cni/plugin"
	"github.com/strait-net/strait/internal/testkit"
)

// resultIP is the pod address of an ADD result.
func resultIP(t *testing.T, r *types100.Result) netip.Addr {
	t.Helper()
	if len(r.IPs) != 1 {
		t.Fatalf("result has %d IPs, want 1: %v", len(r.IPs), r)
	}
	a, ok := netip.AddrFromSlice(r.IPs[0].Address.IP)
	if !ok {
		t.Fatalf("result IP %v", r.IPs[0].Address)
	}
	return a.Unmap()
}

// withPrev returns conf with prevResult set to r (what a runtime passes
// to CHECK and DEL).
func withPrev(t *testing.T, conf []byte, r *types100.Result) []byte {
	t.Helper()
	rb, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(strings.TrimSpace(string(conf)), "}")
	return []byte(s + `,"prevResult":` + string(rb) + "}")
}

func TestVersion(t *testing.T) {
	info, err := invoke.GetVersionInfo(testkit.Context(t, time.Minute), pluginBin, rexec(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}, info.SupportedVersions()); d != "" {
		t.Errorf("supported versions (-want +got):\n%s", d)
	}
}

func TestAddCheckDel(t *testing.T) {
	e := newEnv(t)
	pod := newNetns(t)
	conf := e.conf("1.0.0")
	const id = "c1a2b3"
	res, err := e.add(e.ctx, conf, id, pod, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	addr := resultIP(t, res)
	hostName := plugin.HostVethName(id, "eth0")
	if !e.cidr.Contains(addr) || addr == e.cidr.Addr() || addr == e.cidr.Addr().Next() {
		t.Fatalf("pod address %v: not a usable address of %v", addr, e.cidr)
	}
	if len(hostName) != 14 || !strings.HasPrefix(hostName, "lxc") {
		t.Fatalf("host veth name %q", hostName)
	}

	// The result, whole.
	idx := 1
	want := &types100.Result{
		CNIVersion: "1.1.0", // types100.GetResult converts to its own version
		Interfaces: []*types100.Interface{
			{Name: hostName, Mac: res.Interfaces[0].Mac},
			{Name: "eth0", Mac: res.Interfaces[1].Mac, Sandbox: pod.Path()},
		},
		IPs: []*types100.IPConfig{{Interface: &idx, Address: net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}, Gateway: net.ParseIP("169.254.1.1").To4()}},
		Routes: []*types.Route{{
			Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: net.ParseIP("169.254.1.1").To4(),
		}},
	}
	if d := cmp.Diff(want, res, cmp.Comparer(func(a, b net.IP) bool { return a.Equal(b) })); d != "" {
		t.Errorf("ADD result (-want +got):\n%s", d)
	}

	// The kernel state, read independently of the plugin.
	var hostMAC net.HardwareAddr
	err = e.nodeNS.Do(func(ns.NetNS) error {
		h, err := netlink.LinkByName(hostName)
		if err != nil {
			return err
		}
		hostMAC = h.Attrs().HardwareAddr
		if h.Attrs().MTU != 1420 || h.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("host veth mtu %d flags %v", h.Attrs().MTU, h.Attrs().Flags)
		}
		rs, err := netlink.RouteGet(addr.AsSlice())
		if err != nil {
			return err
		}
		if rs[0].LinkIndex != h.Attrs().Index {
			return fmt.Errorf("route to pod %v goes via ifindex %d, want %s", addr, rs[0].LinkIndex, hostName)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if l.Attrs().MTU != 1420 {
			return fmt.Errorf("pod mtu %d", l.Attrs().MTU)
		}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != addr.String()+"/32" {
			return fmt.Errorf("pod addresses %v", addrs)
		}
		rs, err := netlink.RouteGet(net.ParseIP("8.8.8.8"))
		if err != nil || len(rs) == 0 || !rs[0].Gw.Equal(net.ParseIP("169.254.1.1")) {
			return fmt.Errorf("pod default route: %v %v", rs, err)
		}
		ns, _ := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
		for _, n := range ns {
			if n.IP.Equal(net.ParseIP("169.254.1.1")) && n.State == netlink.NUD_PERMANENT && n.HardwareAddr.String() == hostMAC.String() {
				return nil
			}
		}
		return fmt.Errorf("no permanent neighbour 169.254.1.1 -> %s: %v", hostMAC, ns)
	})
	if err != nil {
		t.Fatal(err)
	}

	// The agent heard of it, with the pod's identity data.
	if d := cmp.Diff([]string{"PUT " + id + "/eth0"}, e.agent.takeCalls()); d != "" {
		t.Errorf("agent calls (-want +got):\n%s", d)
	}
	eps, _ := e.agent.Endpoints(e.ctx)
	wantEP := endpointapi.Endpoint{ContainerID: id, IfName: "eth0", Netns: pod.Path(), Namespace: "shop", PodName: id,
		Labels: map[string]string{"app": "web"}, IPv4: addr, HostIfName: hostName}
	if len(eps) != 1 || !cmp.Equal(wantEP, eps[0].Endpoint, cmpopts.EquateComparable(netip.Addr{})) {
		t.Errorf("agent endpoints %+v, want %+v", eps, wantEP)
	}

	// CHECK passes.
	if err := e.run("CHECK", withPrev(t, conf, res), id, pod.Path(), "eth0"); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}

	// ADD again: same result, no error.
	again, err := e.add(e.ctx, conf, id, pod, "eth0")
	if err != nil {
		t.Fatalf("second ADD: %v", err)
	}
	if d := cmp.Diff(res, again, cmp.Comparer(func(a, b net.IP) bool { return a.Equal(b) })); d != "" {
		t.Errorf("second ADD result differs (-first +second):\n%s", d)
	}
	if got := e.allocations(); len(got) != 1 {
		t.Errorf("allocations after two ADDs: %v", got)
	}

	// DEL, twice.
	e.agent.takeCalls()
	for i := range 2 {
		if err := e.run("DEL", withPrev(t, conf, res), id, pod.Path(), "eth0"); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
	}
	if got := e.hostLinks(); len(got) != 0 {
		t.Errorf("host links after DEL: %v", got)
	}
	if got := e.allocations(); len(got) != 0 {
		t.Errorf("allocations after DEL: %v", got)
	}
	if d := cmp.Diff([]string{"DELETE " + id + "/eth0", "DELETE " + id + "/eth0"}, e.agent.takeCalls()); d != "" {
		t.Errorf("agent calls (-want +got):\n%s", d)
	}
	err = pod.Do(func(ns.NetNS) error {
		_, err := netlink.LinkByName("eth0")
		return err
	})
	if err == nil {
		t.Error("pod eth0 still there after DEL")
	}
}

func TestDelUnknownContainer(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0")
	// No netns at all (the runtime may have removed it), then a netns path
	// without the interface.
	if err := e.run("DEL", conf, "nosuchcontainer", "", "eth0"); err != nil {
		t.Fatalf("DEL without netns: %v", err)
	}
	pod := newNetns(t)
	if err := e.run("DEL", conf, "nosuchcontainer", pod.Path(), "eth0"); err != nil {
		t.Fatalf("DEL of an unknown container: %v", err)
	}
}

func TestConnectivity(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0")
	podA, podB := newNetns(t), newNetns(t)
	ra, err := e.add(e.ctx, conf, "pod-a", podA, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := e.add(e.ctx, conf, "pod-b", podB, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	a, b := resultIP(t, ra), resultIP(t, rb)
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	if err := ping(ctx, podA, e.nodeIP); err != nil {
		t.Errorf("pod A to node: %v", err)
	}
	if err := ping(ctx, podA, b); err != nil {
		t.Errorf("pod A to pod B: %v", err)
	}
	if err := ping(ctx, podB, a); err != nil {
		t.Errorf("pod B to pod A: %v", err)
	}
	// After DEL of B, A no longer reaches it.
	if err := e.run("DEL", conf, "pod-b", podB.Path(), "eth0"); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(e.ctx, time.Second)
	defer cancel2()
	if err := ping(short, podA, b); err == nil {
		t.Error("pod A still reaches pod B after its DEL")
	}
}

func TestCheckDetects(t *testing.T) {
	tests := []struct {
		name   string
		inPod  bool
		break_ func(ifName, hostName string, addr netip.Addr) error
		want   string
	}{
		{
			name: "default route removed", inPod: true,
			break_: func(ifName, _ string, _ netip.Addr) error {
				l, err := netlink.LinkByName(ifName)
				if err != nil {
					return err
				}
				return netlink.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("169.254.1.1")})
			},
			want: "pod default route via 169.254.1.1 dev eth0: missing",
		},
		{
			name: "gateway route removed", inPod: true,
			break_: func(ifName, _ string, _ netip.Addr) error {
				l, err := netlink.LinkByName(ifName)
				if err != nil {
					return err
				}
				// The default route goes with it (its gateway is unreachable):
				// re-add it onlink so only the link route is missing.
				if err := netlink.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP("169.254.1.1").To4(), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}); err != nil {
					return err
				}
				return netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("169.254.1.1"), Flags: int(netlink.FLAG_ONLINK)})
			},
			want: "pod route 169.254.1.1/32 dev eth0 scope link: missing",
		},
		{
			name: "address removed", inPod: true,
			break_: func(ifName, _ string, addr netip.Addr) error {
				l, err := netlink.LinkByName(ifName)
				if err != nil {
					return err
				}
				return netlink.AddrDel(l, &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}})
			},
			want: "/32 missing",
		},
		{
			name: "neighbour removed", inPod: true,
			break_: func(ifName, _ string, _ netip.Addr) error {
				l, err := netlink.LinkByName(ifName)
				if err != nil {
					return err
				}
				return netlink.NeighDel(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, IP: net.ParseIP("169.254.1.1")})
			},
			want: "pod neighbour 169.254.1.1",
		},
		{
			name: "host route removed",
			break_: func(_, hostName string, addr netip.Addr) error {
				h, err := netlink.LinkByName(hostName)
				if err != nil {
					return err
				}
				return netlink.RouteDel(&netlink.Route{LinkIndex: h.Attrs().Index, Dst: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK})
			},
			want: "/32 dev lxc",
		},
		{
			name: "veth removed",
			break_: func(_, hostName string, _ netip.Addr) error {
				h, err := netlink.LinkByName(hostName)
				if err != nil {
					return err
				}
				return netlink.LinkDel(h)
			},
			want: "host veth lxc",
		},
		{
			name: "host veth down",
			break_: func(_, hostName string, _ netip.Addr) error {
				h, err := netlink.LinkByName(hostName)
				if err != nil {
					return err
				}
				return netlink.LinkSetDown(h)
			},
			want: "is down",
		},
	}
	e := newEnv(t)
	conf := e.conf("1.0.0")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := newNetns(t)
			id := fmt.Sprintf("check%d", i)
			res, err := e.add(e.ctx, conf, id, pod, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			prev := withPrev(t, conf, res)
			if err := e.run("CHECK", prev, id, pod.Path(), "eth0"); err != nil {
				t.Fatalf("CHECK before breaking: %v", err)
			}
			where := e.nodeNS
			if tt.inPod {
				where = pod
			}
			if err := where.Do(func(ns.NetNS) error { return tt.break_("eth0", plugin.HostVethName(id, "eth0"), resultIP(t, res)) }); err != nil {
				t.Fatalf("breaking: %v", err)
			}
			cniError(t, e.run("CHECK", prev, id, pod.Path(), "eth0"), types.ErrInternal, tt.want)
			// ADD repairs what it owns; CHECK passes again (unless the veth is gone).
			if tt.name != "veth removed" {
				if _, err := e.add(e.ctx, conf, id, pod, "eth0"); err != nil {
					t.Fatalf("repairing ADD: %v", err)
				}
				if err := e.run("CHECK", prev, id, pod.Path(), "eth0"); err != nil {
					t.Fatalf("CHECK after repairing ADD: %v", err)
				}
			}
			if err := e.run("DEL", prev, id, pod.Path(), "eth0"); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("agent forgot the endpoint", func(t *testing.T) {
		pod := newNetns(t)
		res, err := e.add(e.ctx, conf, "forgotten", pod, "eth0")
		if err != nil {
			t.Fatal(err)
		}
		_ = e.agent.DeleteEndpoint(e.ctx, "forgotten", "eth0")
		cniError(t, e.run("CHECK", withPrev(t, conf, res), "forgotten", pod.Path(), "eth0"), types.ErrInternal, "has no endpoint forgotten/eth0")
	})
	t.Run("no prevResult", func(t *testing.T) {
		cniError(t, e.run("CHECK", conf, "x1", "/var/run/netns/none", "eth0"), types.ErrInvalidNetworkConfig, `"prevResult"`)
	})
}

// TestAddRollback: when the agent refuses the endpoint, ADD fails and
// leaves nothing behind.
func TestAddRollback(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0")
	pod := newNetns(t)
	e.agent.mu.Lock()
	e.agent.putErr = &endpointapi.BadRequest{Err: errors.New("labels: too many")}
	e.agent.mu.Unlock()
	_, err := e.add(e.ctx, conf, "rb1", pod, "eth0")
	cniError(t, err, types.ErrInvalidNetworkConfig, "agent refused PUT /v1/endpoints: labels: too many")
	if d := cmp.Diff([]string{"PUT rb1/eth0", "DELETE rb1/eth0"}, e.agent.takeCalls()); d != "" {
		t.Errorf("agent calls (-want +got):\n%s", d)
	}
	if got := e.hostLinks(); len(got) != 0 {
		t.Errorf("host links left: %v", got)
	}
	if got := e.allocations(); len(got) != 0 {
		t.Errorf("allocations left: %v", got)
	}
	_ = pod.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			t.Error("pod eth0 left")
		}
		return nil
	})
	// A 5xx is "try again later".
	e.agent.mu.Lock()
	e.agent.putErr = errors.New("identity allocator not ready")
	e.agent.mu.Unlock()
	_, err = e.add(e.ctx, conf, "rb1", pod, "eth0")
	cniError(t, err, types.ErrTryAgainLater, "identity allocator not ready")
	if got := e.allocations(); len(got) != 0 {
		t.Errorf("allocations left: %v", got)
	}
}

// TestCrashBeforeReply kills the plugin while it waits for the agent, after
// it allocated the address and made the veth: another container never gets
// that address, and the retried ADD gets it back.
func TestCrashBeforeReply(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0")
	podA, podB := newNetns(t), newNetns(t)
	seen := make(chan struct{})
	e.agent.mu.Lock()
	e.agent.holdID, e.agent.holdSeen = "crashy", seen
	e.agent.mu.Unlock()

	ctx, kill := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() {
		_, err := e.add(ctx, conf, "crashy", podA, "eth0")
		done <- err
	}()
	select {
	case <-seen:
	case <-e.ctx.Done():
		t.Fatal("plugin never reached the agent")
	}
	kill() // SIGKILL: the plugin dies between allocation and reply
	if err := <-done; err == nil {
		t.Fatal("killed ADD reported success")
	}
	held := e.allocations()
	if len(held) != 1 {
		t.Fatalf("allocations after the crash: %v", held)
	}
	e.agent.mu.Lock()
	e.agent.holdID = ""
	e.agent.mu.Unlock()

	rb, err := e.add(e.ctx, conf, "other", podB, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if resultIP(t, rb).String() == held[0] {
		t.Fatalf("address %s of the crashed ADD handed to another container", held[0])
	}
	ra, err := e.add(e.ctx, conf, "crashy", podA, "eth0")
	if err != nil {
		t.Fatalf("retried ADD: %v", err)
	}
	if resultIP(t, ra).String() != held[0] {
		t.Fatalf("retried ADD got %v, want the address it held, %s", resultIP(t, ra), held[0])
	}
	if err := e.run("CHECK", withPrev(t, conf, ra), "crashy", podA.Path(), "eth0"); err != nil {
		t.Fatalf("CHECK after retried ADD: %v", err)
	}
}

func TestConcurrentAdds(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0")
	const n = 8
	pods := make([]ns.NetNS, n)
	for i := range pods {
		pods[i] = newNetns(t)
	}
	addrs := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := e.add(e.ctx, conf, fmt.Sprintf("conc%d", i), pods[i], "eth0")
			if err != nil {
				errs[i] = err
				return
			}
			addrs[i] = resultIP(t, r)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ADD %d: %v", i, err)
		}
	}
	sorted := slices.Clone(addrs)
	slices.SortFunc(sorted, netip.Addr.Compare)
	if len(slices.Compact(sorted)) != n {
		t.Fatalf("addresses not distinct: %v", addrs)
	}
	if got := e.hostLinks(); len(got) != n {
		t.Fatalf("host links: %v", got)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	if err := e.run("STATUS", e.conf("1.1.0"), "", "", ""); err != nil {
		t.Fatalf("STATUS with the agent up: %v", err)
	}
	down := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"strait","type":"strait-cni","agentSocket":"/nonexistent/scn/agent.sock","ipamDataDir":%q}`, e.ipamDir))
	cniError(t, e.run("STATUS", down, "", "", ""), types.ErrPluginNotAvailable, "agent at /nonexistent/scn/agent.sock not available")
	// STATUS needs a 1.1.0 config (skel refuses older ones).
	cniError(t, e.run("STATUS", e.conf("1.0.0"), "", "", ""), types.ErrIncompatibleCNIVersion, "STATUS")
	// Exhausted pod CIDR.
	e.agent.mu.Lock()
	e.agent.node.PodCIDRv4 = netip.MustParsePrefix("10.9.9.0/30")
	e.agent.mu.Unlock()
	pod := newNetns(t)
	if _, err := e.add(e.ctx, e.conf("1.1.0"), "only", pod, "eth0"); err != nil {
		t.Fatal(err)
	}
	cniError(t, e.run("STATUS", e.conf("1.1.0"), "", "", ""), types.ErrPluginNotAvailable, "no free address in 10.9.9.0/30")
	pod2 := newNetns(t)
	_, err := e.add(e.ctx, e.conf("1.1.0"), "second", pod2, "eth0")
	cniError(t, err, types.ErrInternal, "10.9.9.0/30")
	if got := e.hostLinks(); len(got) != 1 {
		t.Errorf("host links after a failed ADD: %v", got)
	}
}

func TestGC(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.1.0")
	keep, drop := newNetns(t), newNetns(t)
	if _, err := e.add(e.ctx, conf, "keep", keep, "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.add(e.ctx, conf, "drop", drop, "eth0"); err != nil {
		t.Fatal(err)
	}
	gc := []byte(strings.TrimSuffix(string(conf), "}") + `,"cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]}`)
	if err := e.run("GC", gc, "", "", ""); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{plugin.HostVethName("keep", "eth0")}, e.hostLinks()); d != "" {
		t.Errorf("host links after GC (-want +got):\n%s", d)
	}
	if got := e.allocations(); len(got) != 1 {
		t.Errorf("allocations after GC: %v", got)
	}
}

// TestBadInput: bad stdin, missing environment, bad netconf fields and bad
// CNI_ARGS give a CNI error naming the problem, and nothing is applied.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	pod := newNetns(t)
	good := string(e.conf("1.0.0"))
	base := func(cmd string) map[string]string {
		return map[string]string{"CNI_COMMAND": cmd, "CNI_CONTAINERID": "bad1", "CNI_NETNS": pod.Path(), "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
	}
	tests := []struct {
		name  string
		env   map[string]string
		drop  string
		stdin string
		code  uint
		want  string
	}{
		{name: "not JSON", env: base("ADD"), stdin: `{"cniVersion":`, code: types.ErrDecodingFailure, want: "unexpected end of JSON"},
		{name: "missing CNI_CONTAINERID", env: base("ADD"), drop: "CNI_CONTAINERID", stdin: good, code: types.ErrInvalidEnvironmentVariables, want: "CNI_CONTAINERID"},
		{name: "missing CNI_NETNS", env: base("ADD"), drop: "CNI_NETNS", stdin: good, code: types.ErrInvalidEnvironmentVariables, want: "CNI_NETNS"},
		{name: "missing CNI_IFNAME on DEL", env: base("DEL"), drop: "CNI_IFNAME", stdin: good, code: types.ErrInvalidEnvironmentVariables, want: "CNI_IFNAME"},
		{name: "missing CNI_COMMAND", env: base("ADD"), drop: "CNI_COMMAND", stdin: good, code: types.ErrInvalidEnvironmentVariables, want: "CNI_COMMAND"},
		{name: "unknown command", env: base("FROB"), stdin: good, code: types.ErrInvalidEnvironmentVariables, want: "FROB"},
		{name: "unknown field", env: base("ADD"), stdin: strings.Replace(good, `"type"`, `"agentSockett":"/x","type"`, 1), code: types.ErrUnsupportedField, want: `"agentSockett"`},
		{name: "field of wrong type", env: base("ADD"), stdin: strings.Replace(good, `"type":"strait-cni"`, `"type":"strait-cni","ipamDataDir":5`, 1), code: types.ErrInvalidNetworkConfig, want: `"ipamDataDir"`},
		{name: "relative socket", env: base("ADD"), stdin: strings.Replace(good, e.sock, "agent.sock", 1), code: types.ErrInvalidNetworkConfig, want: `"agentSocket"`},
		{name: "bad label", env: base("ADD"), stdin: strings.Replace(good, `"key":"app"`, `"key":7`, 1), code: types.ErrInvalidNetworkConfig, want: `args.cni.labels field "key"`},
		{name: "ipam section", env: base("ADD"), stdin: strings.Replace(good, `"type":"strait-cni"`, `"type":"strait-cni","ipam":{"type":"host-local"}`, 1), code: types.ErrUnsupportedField, want: `"ipam"`},
		{name: "no name", env: base("ADD"), stdin: strings.Replace(good, `"name":"strait",`, ``, 1), code: types.ErrInvalidNetworkConfig, want: "name"},
		{name: "bad CNI_ARGS", env: func() map[string]string { m := base("ADD"); m["CNI_ARGS"] = "K8S_POD_NAME=x;FOO=bar"; return m }(), stdin: good, code: types.ErrInvalidEnvironmentVariables, want: "CNI_ARGS"},
		{name: "bad netns", env: func() map[string]string { m := base("ADD"); m["CNI_NETNS"] = "/nonexistent/scn"; return m }(), stdin: good, code: types.ErrInvalidNetNS, want: "/nonexistent/scn"},
		{name: "bad container ID", env: func() map[string]string { m := base("ADD"); m["CNI_CONTAINERID"] = "-x/y"; return m }(), stdin: good, code: types.ErrInvalidEnvironmentVariables, want: "container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var environ []string
			for k, v := range tt.env {
				if k != tt.drop {
					environ = append(environ, k+"="+v)
				}
			}
			cniError(t, e.raw(environ, []byte(tt.stdin)), tt.code, tt.want)
			if got := e.hostLinks(); len(got) != 0 {
				t.Errorf("host links: %v", got)
			}
			if got := e.allocations(); len(got) != 0 {
				t.Errorf("allocations: %v", got)
			}
			if got := e.agent.takeCalls(); len(got) != 0 {
				t.Errorf("agent calls: %v", got)
			}
		})
	}
	// The agent down: ADD fails with "try again later", nothing applied.
	down := strings.Replace(good, e.sock, "/nonexistent/scn/agent.sock", 1)
	cniError(t, e.raw(envList(base("ADD")), []byte(down)), types.ErrTryAgainLater, "agent at /nonexistent/scn/agent.sock")
	if got := e.allocations(); len(got) != 0 {
		t.Errorf("allocations: %v", got)
	}
}

func envList(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// TestDelAgentDown: DEL without the agent removes the veth but keeps the
// address (the agent may still publish it) and asks to be retried; the
// retry with the agent back releases it.
func TestDelAgentDown(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0")
	pod := newNetns(t)
	if _, err := e.add(e.ctx, conf, "deldown", pod, "eth0"); err != nil {
		t.Fatal(err)
	}
	down := []byte(strings.Replace(string(conf), e.sock, "/nonexistent/scn/agent.sock", 1))
	cniError(t, e.run("DEL", down, "deldown", pod.Path(), "eth0"), types.ErrTryAgainLater, "address kept")
	if got := e.hostLinks(); len(got) != 0 {
		t.Errorf("host links after DEL: %v", got)
	}
	if got := e.allocations(); len(got) != 1 {
		t.Errorf("allocations after a DEL the agent did not hear: %v", got)
	}
	if err := e.run("DEL", conf, "deldown", pod.Path(), "eth0"); err != nil {
		t.Fatal(err)
	}
	if got := e.allocations(); len(got) != 0 {
		t.Errorf("allocations after the retried DEL: %v", got)
	}
}

// TestLibcni runs the plugin through libcni, as containerd and CRI-O do:
// a conflist, libcni's result cache feeding prevResult to CHECK and DEL,
// STATUS and GC.
func TestLibcni(t *testing.T) {
	e := newEnv(t)
	pod := newNetns(t)
	list, err := libcni.ConfListFromBytes(fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"strait","plugins":[
		{"type":"strait-cni","agentSocket":%q,"ipamDataDir":%q}]}`, e.sock, e.ipamDir))
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{filepath.Dir(pluginBin)}, t.TempDir(), rexec(t))
	rt := &libcni.RuntimeConf{ContainerID: "lib1", NetNS: pod.Path(), IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "kube-system"}, {"K8S_POD_NAME", "dns-0"}}}
	err = e.nodeNS.Do(func(ns.NetNS) error {
		if err := cni.GetStatusNetworkList(e.ctx, list); err != nil {
			return fmt.Errorf("STATUS: %w", err)
		}
		res, err := cni.AddNetworkList(e.ctx, list, rt)
		if err != nil {
			return fmt.Errorf("ADD: %w", err)
		}
		r, err := types100.GetResult(res)
		if err != nil || len(r.IPs) != 1 {
			return fmt.Errorf("ADD result %v: %v", res, err)
		}
		if err := cni.CheckNetworkList(e.ctx, list, rt); err != nil {
			return fmt.Errorf("CHECK: %w", err)
		}
		// GC with the attachment valid keeps it.
		if err := cni.GCNetworkList(e.ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "lib1", IfName: "eth0"}}}); err != nil {
			return fmt.Errorf("GC: %w", err)
		}
		if err := cni.CheckNetworkList(e.ctx, list, rt); err != nil {
			return fmt.Errorf("CHECK after GC: %w", err)
		}
		if err := cni.DelNetworkList(e.ctx, list, rt); err != nil {
			return fmt.Errorf("DEL: %w", err)
		}
		return cni.DelNetworkList(e.ctx, list, rt)
	})
	if err != nil {
		t.Fatal(err)
	}
	eps, _ := e.agent.Endpoints(e.ctx)
	if len(eps) != 0 || len(e.hostLinks()) != 0 || len(e.allocations()) != 0 {
		t.Errorf("left after DEL: endpoints %v, links %v, allocations %v", eps, e.hostLinks(), e.allocations())
	}
	calls := e.agent.takeCalls()
	if len(calls) == 0 || calls[0] != "PUT lib1/eth0" {
		t.Errorf("agent calls %v", calls)
	}
}

// TestInterfaceInTheWay: CNI_IFNAME already taken by something that is not
// strait's veth is an error, and the ADD leaves nothing behind.
func TestInterfaceInTheWay(t *testing.T) {
	e := newEnv(t)
	pod := newNetns(t)
	err := pod.Do(func(ns.NetNS) error {
		return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.add(e.ctx, e.conf("1.0.0"), "inway", pod, "eth0")
	cniError(t, err, types.ErrInternal, "pod interface eth0 already exists and is a bridge")
	if got := e.allocations(); len(got) != 0 {
		t.Errorf("allocations: %v", got)
	}
	if got := e.hostLinks(); len(got) != 0 {
		t.Errorf("host links: %v", got)
	}
	err = pod.Do(func(ns.NetNS) error {
		_, err := netlink.LinkByName("eth0")
		return err
	})
	if err != nil {
		t.Errorf("the pod's own eth0 was removed: %v", err)
	}
}

// TestAddVersions: ADD answers in the config's version for every version
// VERSION lists.
func TestAddVersions(t *testing.T) {
	e := newEnv(t)
	for _, v := range plugin.VersionInfo().SupportedVersions() {
		t.Run(v, func(t *testing.T) {
			pod := newNetns(t)
			id := "ver" + strings.ReplaceAll(v, ".", "")
			res, err := e.add(e.ctx, e.conf(v), id, pod, "eth0") // checks the result's version
			if err != nil {
				t.Fatal(err)
			}
			if a := resultIP(t, res); !e.cidr.Contains(a) {
				t.Errorf("address %v", a)
			}
			if err := e.run("DEL", e.conf(v), id, pod.Path(), "eth0"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
