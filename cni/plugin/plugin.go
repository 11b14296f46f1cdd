package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/cni/ipam"
)

// VersionInfo lists the CNI spec versions strait-cni speaks. STATUS and GC
// need a network config of 1.1.0; CHECK one of 0.4.0 or later.
func VersionInfo() version.PluginInfo {
	return version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
}

// Plugin runs the CNI commands. It runs in the node's network namespace.
type Plugin struct {
	// Log gets what a runtime does not show (the plugin's stderr); nil
	// discards.
	Log *slog.Logger
	// Stdout receives the ADD result (required for ADD).
	Stdout io.Writer
}

func (p *Plugin) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// Funcs binds the commands to ctx for skel.PluginMainFuncs.
func (p *Plugin) Funcs(ctx context.Context) skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:    func(a *skel.CmdArgs) error { return p.Add(ctx, a) },
		Del:    func(a *skel.CmdArgs) error { return p.Del(ctx, a) },
		Check:  func(a *skel.CmdArgs) error { return p.Check(ctx, a) },
		GC:     func(a *skel.CmdArgs) error { return p.GC(ctx, a) },
		Status: func(a *skel.CmdArgs) error { return p.Status(ctx, a) },
	}
}

// agentError maps an error of the agent API: 4xx answers are the caller's
// fault (code 7), anything else means "try again later" (code 11).
func agentError(socket, what string, err error) *types.Error {
	var ae *endpointapi.Error
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("agent refused %s: %s", what, ae.Message), "")
	}
	return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("agent at %s: %s: %v", socket, what, err), "")
}

func cniErr(code uint, format string, args ...any) *types.Error {
	return types.NewError(code, fmt.Sprintf(format, args...), "")
}

func validateNode(n endpointapi.NodeInfo) error {
	if !n.PodCIDRv4.IsValid() || !n.PodCIDRv4.Addr().Is4() {
		return fmt.Errorf("agent's node info: podCIDRv4 %q is not an IPv4 CIDR", n.PodCIDRv4)
	}
	if n.PodMTU < 576 || n.PodMTU > 65535 {
		return fmt.Errorf("agent's node info: podMTU %d outside 576..65535", n.PodMTU)
	}
	return nil
}

// Add connects the container: address, veth, routes, agent endpoint. On
// failure everything this call set up is undone (see teardown).
func (p *Plugin) Add(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := ParseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	pargs, err := ParseArgs(args.Args)
	if err != nil {
		return err
	}
	podNS, err := ns.GetNS(args.Netns)
	if err != nil {
		return cniErr(types.ErrInvalidNetNS, "CNI_NETNS %s: %v", args.Netns, err)
	}
	defer podNS.Close()

	client := endpointapi.NewClient(conf.AgentSocket)
	node, err := client.Node(ctx)
	if err != nil {
		return agentError(conf.AgentSocket, "GET /v1/node", err)
	}
	if err := validateNode(node); err != nil {
		return cniErr(types.ErrInternal, "%v", err)
	}
	store, err := ipam.Open(conf.IPAMDataDir, conf.Name)
	if err != nil {
		return cniErr(types.ErrIOFailure, "%v", err)
	}
	owner := ipam.Owner{ContainerID: args.ContainerID, IfName: args.IfName}
	addr, err := store.Allocate(ctx, node.PodCIDRv4, owner)
	if err != nil {
		return cniErr(types.ErrInternal, "%v", err)
	}
	hostName := HostVethName(args.ContainerID, args.IfName)
	fail := func(e *types.Error) error {
		if terr := p.teardown(ctx, conf, client, store, owner); terr != nil {
			e.Details = "cleanup: " + terr.Error()
		}
		return e
	}

	pl, err := setupPod(podNS, args.IfName, hostName, addr, node.PodMTU)
	if err != nil {
		return fail(cniErr(types.ErrInternal, "%v", err))
	}
	ep := endpointapi.Endpoint{
		ContainerID: args.ContainerID,
		IfName:      args.IfName,
		Netns:       args.Netns,
		Namespace:   string(pargs.K8S_POD_NAMESPACE),
		PodName:     string(pargs.K8S_POD_NAME),
		Labels:      conf.Labels,
		IPv4:        addr,
		HostIfName:  hostName,
	}
	if _, err := client.PutEndpoint(ctx, ep); err != nil {
		return fail(agentError(conf.AgentSocket, "PUT /v1/endpoints", err))
	}
	p.log().Debug("pod connected", "container", args.ContainerID, "ifname", args.IfName, "ip", addr, "hostIf", hostName)

	res := buildResult(conf, args, pl, addr)
	out, err := res.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return fail(cniErr(types.ErrIncompatibleCNIVersion, "result as version %s: %v", conf.CNIVersion, err))
	}
	return out.PrintTo(p.Stdout)
}

func buildResult(conf *NetConf, args *skel.CmdArgs, pl *podLink, addr netip.Addr) *types100.Result {
	idx := 1
	return &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: pl.hostName, Mac: pl.hostMAC.String()},
			{Name: args.IfName, Mac: pl.podMAC.String(), Sandbox: args.Netns},
		},
		IPs: []*types100.IPConfig{{
			Interface: &idx,
			Address:   *prefix32(addr),
			Gateway:   Gateway.AsSlice(),
		}},
		Routes: []*types.Route{{
			Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			GW:  Gateway.AsSlice(),
		}},
		DNS: conf.DNS,
	}
}

// teardown undoes an ADD: the agent forgets the endpoint, the veth goes,
// and the address is released — but only once the agent has confirmed, so
// an address the agent may still publish is never handed to another pod.
func (p *Plugin) teardown(ctx context.Context, conf *NetConf, client *endpointapi.Client, store *ipam.Store, owner ipam.Owner) error {
	var errs []error
	agentErr := client.DeleteEndpoint(ctx, owner.ContainerID, owner.IfName)
	if agentErr != nil {
		errs = append(errs, fmt.Errorf("agent at %s: DELETE endpoint %s: %w (address kept until a DEL reaches the agent)", conf.AgentSocket, owner, agentErr))
	}
	if _, err := deleteHostVeth(HostVethName(owner.ContainerID, owner.IfName)); err != nil {
		errs = append(errs, err)
	}
	if agentErr == nil {
		if _, err := store.Release(ctx, owner); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Del disconnects the container; an unknown container, a missing netns or
// a second DEL are not errors. When the agent cannot be told, the veth is
// still removed but the address is kept and DEL fails with code 11, so the
// runtime retries.
func (p *Plugin) Del(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := ParseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	store, err := ipam.Open(conf.IPAMDataDir, conf.Name)
	if err != nil {
		return cniErr(types.ErrIOFailure, "%v", err)
	}
	client := endpointapi.NewClient(conf.AgentSocket)
	owner := ipam.Owner{ContainerID: args.ContainerID, IfName: args.IfName}
	if err := p.teardown(ctx, conf, client, store, owner); err != nil {
		return cniErr(types.ErrTryAgainLater, "DEL %s: %v", owner, err)
	}
	return nil
}

// Check verifies the container's networking against prevResult, the IPAM
// record, the agent's endpoint list and the kernel state.
func (p *Plugin) Check(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := ParseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	if conf.RawPrevResult == nil {
		return cniErr(types.ErrInvalidNetworkConfig, `netconf field "prevResult": missing (CHECK needs the ADD result)`)
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return cniErr(types.ErrDecodingFailure, `netconf field "prevResult": %v`, err)
	}
	prev, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return cniErr(types.ErrDecodingFailure, `netconf field "prevResult": %v`, err)
	}
	var want netip.Addr
	for _, ipc := range prev.IPs {
		if ipc.Interface == nil || *ipc.Interface < 0 || *ipc.Interface >= len(prev.Interfaces) {
			continue
		}
		if itf := prev.Interfaces[*ipc.Interface]; itf.Name == args.IfName && itf.Sandbox != "" {
			a, ok := netip.AddrFromSlice(ipc.Address.IP)
			if ok {
				want = a.Unmap()
			}
		}
	}
	if !want.IsValid() {
		return cniErr(types.ErrInvalidNetworkConfig, `netconf field "prevResult": no address for interface %s`, args.IfName)
	}
	store, err := ipam.Open(conf.IPAMDataDir, conf.Name)
	if err != nil {
		return cniErr(types.ErrIOFailure, "%v", err)
	}
	owner := ipam.Owner{ContainerID: args.ContainerID, IfName: args.IfName}
	held, ok, err := store.Lookup(ctx, owner)
	switch {
	case err != nil:
		return cniErr(types.ErrIOFailure, "%v", err)
	case !ok:
		return cniErr(types.ErrInternal, "ipam: %s holds no address (prevResult says %s)", owner, want)
	case held != want:
		return cniErr(types.ErrInternal, "ipam: %s holds %s, prevResult says %s", owner, held, want)
	}
	client := endpointapi.NewClient(conf.AgentSocket)
	eps, err := client.Endpoints(ctx)
	if err != nil {
		return agentError(conf.AgentSocket, "GET /v1/endpoints", err)
	}
	if !slices.ContainsFunc(eps, func(e endpointapi.EndpointStatus) bool {
		return e.ContainerID == owner.ContainerID && e.IfName == owner.IfName && e.IPv4 == want
	}) {
		return cniErr(types.ErrInternal, "agent at %s has no endpoint %s with %s", conf.AgentSocket, owner, want)
	}
	podNS, err := ns.GetNS(args.Netns)
	if err != nil {
		return cniErr(types.ErrInvalidNetNS, "CNI_NETNS %s: %v", args.Netns, err)
	}
	defer podNS.Close()
	if err := checkPod(podNS, args.IfName, HostVethName(args.ContainerID, args.IfName), want); err != nil {
		return cniErr(types.ErrInternal, "%v", err)
	}
	return nil
}

// Status reports whether an ADD could succeed now: the agent answers and
// the pod CIDR has a free address. Both failures are code 50.
func (p *Plugin) Status(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := ParseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	node, err := endpointapi.NewClient(conf.AgentSocket).Node(ctx)
	if err != nil {
		return cniErr(types.ErrPluginNotAvailable, "agent at %s not available: %v", conf.AgentSocket, err)
	}
	if err := validateNode(node); err != nil {
		return cniErr(types.ErrPluginNotAvailable, "%v", err)
	}
	store, err := ipam.Open(conf.IPAMDataDir, conf.Name)
	if err != nil {
		return cniErr(types.ErrPluginNotAvailable, "%v", err)
	}
	free, err := store.Free(ctx, node.PodCIDRv4)
	if err != nil {
		return cniErr(types.ErrPluginNotAvailable, "%v", err)
	}
	if free == 0 {
		return cniErr(types.ErrPluginNotAvailable, "ipam: no free address in %s", node.PodCIDRv4.Masked())
	}
	return nil
}

// GC tears down every attachment of this network that the runtime does not
// list in cni.dev/valid-attachments.
func (p *Plugin) GC(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := ParseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	store, err := ipam.Open(conf.IPAMDataDir, conf.Name)
	if err != nil {
		return cniErr(types.ErrIOFailure, "%v", err)
	}
	valid := map[ipam.Owner]bool{}
	for _, a := range conf.ValidAttachments {
		valid[ipam.Owner{ContainerID: a.ContainerID, IfName: a.IfName}] = true
	}
	all, err := store.Owners(ctx)
	if err != nil {
		return cniErr(types.ErrIOFailure, "%v", err)
	}
	client := endpointapi.NewClient(conf.AgentSocket)
	var errs []error
	for _, o := range all {
		if valid[o] {
			continue
		}
		p.log().Info("GC: removing stale attachment", "owner", o.String())
		if err := p.teardown(ctx, conf, client, store, o); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cniErr(types.ErrTryAgainLater, "GC: %v", err)
	}
	return nil
}
