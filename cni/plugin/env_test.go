package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/internal/testkit"
)

// pluginBin is the strait-cni binary, built once in TestMain (or taken
// from STRAIT_BIN_DIR).
var pluginBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if dir := os.Getenv("STRAIT_BIN_DIR"); dir != "" {
		pluginBin = filepath.Join(dir, "strait-cni")
	} else {
		tmp, err := os.MkdirTemp("", "scn-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		pluginBin = filepath.Join(tmp, "strait-cni")
		cmd := exec.Command("go", "build", "-o", pluginBin, "github.com/strait-net/strait/cmd/strait-cni")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building strait-cni:", err)
			return 1
		}
	}
	return testkit.RunWithLeakCheck(m, "strait/cni/plugin", "strait/agent/endpointapi")
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veths")
	}
}

var nsSeq atomic.Int64

// newNetns creates a named network namespace scn-<pid>-<n> (removed at
// cleanup) without entering it.
func newNetns(t *testing.T) ns.NetNS {
	t.Helper()
	name := fmt.Sprintf("scn-%d-%d", os.Getpid(), nsSeq.Add(1))
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked if restoring fails: Go then ends it.
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err != nil {
			errc <- err
			return
		}
		h.Close()
		if err := netns.Set(orig); err != nil {
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("netns %s: %v", name, err)
	}
	n, err := ns.GetNS("/var/run/netns/" + name)
	if err != nil {
		_ = netns.DeleteNamed(name)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting netns %s: %v", name, err)
		}
	})
	return n
}

// agent is a test double of strait-agent's endpoint API backend: it
// records calls and can fail or hold PUTs.
type agent struct {
	mu       sync.Mutex
	node     endpointapi.NodeInfo
	eps      map[string]endpointapi.EndpointStatus
	calls    []string
	putErr   error
	holdID   string        // PUT of this container blocks until its request ends
	holdSeen chan struct{} // closed when that PUT arrives
}

func key(id, ifn string) string { return id + "/" + ifn }

func (a *agent) Node(context.Context) (endpointapi.NodeInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.node, nil
}

func (a *agent) PutEndpoint(ctx context.Context, ep endpointapi.Endpoint) (endpointapi.EndpointStatus, error) {
	a.mu.Lock()
	a.calls = append(a.calls, "PUT "+key(ep.ContainerID, ep.IfName))
	hold, seen := a.holdID == ep.ContainerID, a.holdSeen
	err := a.putErr
	a.mu.Unlock()
	if hold {
		close(seen)
		<-ctx.Done()
		return endpointapi.EndpointStatus{}, ctx.Err()
	}
	if err != nil {
		return endpointapi.EndpointStatus{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := endpointapi.EndpointStatus{Endpoint: ep, Identity: 1000}
	a.eps[key(ep.ContainerID, ep.IfName)] = st
	return st, nil
}

func (a *agent) DeleteEndpoint(_ context.Context, id, ifn string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, "DELETE "+key(id, ifn))
	delete(a.eps, key(id, ifn))
	return nil
}

func (a *agent) Endpoints(context.Context) ([]endpointapi.EndpointStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []endpointapi.EndpointStatus
	for _, e := range a.eps {
		out = append(out, e)
	}
	return out, nil
}

func (a *agent) Status(context.Context) (endpointapi.Status, error) {
	return endpointapi.Status{Node: a.node.Node}, nil
}

func (a *agent) takeCalls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.calls
	a.calls = nil
	return c
}

// tlog sends the plugin's stderr to the test log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log("strait-cni stderr: " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// env is one node: its network namespace (where the plugin runs, as a
// runtime would run it on the node), an agent double on a socket and an
// IPAM directory.
type env struct {
	t       *testing.T
	ctx     context.Context
	nodeNS  ns.NetNS
	agent   *agent
	sock    string
	ipamDir string
	cidr    netip.Prefix
	nodeIP  netip.Addr
}

func newEnv(t *testing.T) *env {
	t.Helper()
	needRoot(t)
	e := &env{
		t:       t,
		ctx:     testkit.Context(t, 2*time.Minute),
		nodeNS:  newNetns(t),
		ipamDir: t.TempDir(),
		cidr:    netip.MustParsePrefix("10.9.0.0/24"),
		nodeIP:  netip.MustParseAddr("192.0.2.1"),
	}
	e.agent = &agent{
		node: endpointapi.NodeInfo{Cluster: "c1", ClusterID: 1, Node: "n1", NodeIP: e.nodeIP, PodCIDRv4: e.cidr, PodMTU: 1420},
		eps:  map[string]endpointapi.EndpointStatus{},
	}
	dir, err := os.MkdirTemp("", "scn-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e.sock = filepath.Join(dir, "agent.sock")
	testkit.RunBackground(t, func(ctx context.Context) error {
		return endpointapi.Serve(ctx, testkit.Logger(t), e.sock, e.agent)
	})
	for {
		if _, err := endpointapi.NewClient(e.sock).Node(e.ctx); err == nil {
			break
		}
		select {
		case <-e.ctx.Done():
			t.Fatal("agent socket never answered")
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The node: lo up with the node address, forwarding on (in this netns only).
	err = e.nodeNS.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: e.nodeIP.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
			return err
		}
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	})
	if err != nil {
		t.Fatalf("node netns: %v", err)
	}
	return e
}

func (e *env) conf(version string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":%q,"name":"strait","type":"strait-cni","agentSocket":%q,"ipamDataDir":%q,
		"args":{"cni":{"labels":[{"key":"app","value":"web"}]}}}`, version, e.sock, e.ipamDir)
}

func (e *env) args(cmd, id, netnsPath, ifName string) *invoke.Args {
	return &invoke.Args{
		Command: cmd, ContainerID: id, NetNS: netnsPath, IfName: ifName, Path: filepath.Dir(pluginBin),
		PluginArgsStr: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=" + id + ";K8S_POD_UID=u1",
	}
}

// add runs ADD in the node netns, as the runtime on that node would.
func (e *env) add(ctx context.Context, conf []byte, id string, pod ns.NetNS, ifName string) (*types100.Result, error) {
	var res types.Result
	err := e.nodeNS.Do(func(ns.NetNS) error {
		var err error
		res, err = invoke.ExecPluginWithResult(ctx, pluginBin, conf, e.args("ADD", id, pod.Path(), ifName), rexec(e.t))
		return err
	})
	if err != nil {
		return nil, err
	}
	var c struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(conf, &c); err != nil {
		return nil, err
	}
	if res.Version() != c.CNIVersion {
		return nil, fmt.Errorf("result version %s, config version %s", res.Version(), c.CNIVersion)
	}
	if err != nil {
		return nil, err
	}
	return types100.GetResult(res)
}

// run runs a command without result (DEL, CHECK, STATUS, GC).
func (e *env) run(cmd string, conf []byte, id, netnsPath, ifName string) error {
	return e.nodeNS.Do(func(ns.NetNS) error {
		return invoke.ExecPluginWithoutResult(e.ctx, pluginBin, conf, e.args(cmd, id, netnsPath, ifName), rexec(e.t))
	})
}

// raw runs the plugin with exactly environ and stdin.
func (e *env) raw(environ []string, stdin []byte) error {
	return e.nodeNS.Do(func(ns.NetNS) error {
		_, err := (rexec(e.t)).ExecPlugin(e.ctx, pluginBin, stdin, environ)
		return err
	})
}

// cniError asserts err is a CNI error with code and a message containing want.
func cniError(t *testing.T, err error, code uint, want string) {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a CNI error", err, err)
	}
	if te.Code != code || !strings.Contains(te.Msg, want) {
		t.Fatalf("CNI error %d %q, want code %d containing %q", te.Code, te.Msg, code, want)
	}
}

// hostLinks lists the lxc* links of the node netns.
func (e *env) hostLinks() []string {
	var names []string
	err := e.nodeNS.Do(func(ns.NetNS) error {
		ls, err := netlink.LinkList()
		for _, l := range ls {
			if strings.HasPrefix(l.Attrs().Name, "lxc") {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return names
}

// allocations lists the address files of the IPAM store.
func (e *env) allocations() []string {
	des, err := os.ReadDir(filepath.Join(e.ipamDir, "strait"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if _, err := netip.ParseAddr(de.Name()); err == nil {
			out = append(out, de.Name())
		}
	}
	return out
}

// ping sends ICMP echo requests from inside from to dst until one is
// answered or ctx ends.
func ping(ctx context.Context, from ns.NetNS, dst netip.Addr) error {
	return from.Do(func(ns.NetNS) error {
		c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 1500)
		for seq := 1; ; seq++ {
			msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x5c, Seq: seq, Data: []byte("strait-cni")}}
			b, err := msg.Marshal(nil)
			if err != nil {
				return err
			}
			if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				return fmt.Errorf("ping %s: %w", dst, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			for {
				n, peer, err := c.ReadFrom(buf)
				if err != nil {
					break
				}
				m, err := icmp.ParseMessage(1, buf[:n])
				if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
					continue
				}
				if echo, ok := m.Body.(*icmp.Echo); ok && echo.Seq == seq && peer.String() == dst.String() {
					return nil
				}
			}
			if ctx.Err() != nil {
				return fmt.Errorf("ping %s: no reply: %w", dst, ctx.Err())
			}
		}
	})
}

// rexec executes plugins as libcni does, their stderr going to the test log.
func rexec(t *testing.T) invoke.Exec {
	return &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: tlog{t}}}
}
