package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/clustermesh/connect"
	"github.com/strait-net/strait/internal/binaries"
	"github.com/strait-net/strait/tools/lab"
	"github.com/strait-net/strait/tools/lab/capture"
)

// Binaries the demo runs, all from Options.BinDir.
var requiredBinaries = []string{"strait-apiserver", "strait-agent", "strait-wireguard", "strait-cni", "straitctl"}

const (
	// echoPort is where every pod echoes TCP.
	echoPort = 7000
	// teardownTimeout bounds the teardown (its own context, so it runs
	// after a cancellation too).
	teardownTimeout = 2 * time.Minute
	// pollInterval is how often the readiness of the agents is read.
	pollInterval = 100 * time.Millisecond
	// stopGrace is how long the demo's processes get to exit on SIGTERM
	// before they are killed.
	stopGrace = 10 * time.Second
	// trafficBudget bounds the traffic step: a pair that failed is tried
	// again until it has passed; tcpTry and icmpTry bound each try.
	trafficBudget = 25 * time.Second
	tcpTry        = 5 * time.Second
	icmpTry       = 2 * time.Second
	// workers bounds the pod pairs tried at once.
	workers = 8
)

// Run builds the demo's clusters (tools/lab, left unconnected), connects
// them as `straitctl connect --mode mesh` does, waits until every agent
// sees every remote cluster and node, sends TCP and ICMP from every pod to
// every pod of the other clusters while capturing the underlay, checks
// that the underlay carried only encrypted pod traffic, and tears
// everything down unless opts.Keep. Progress lines, the summary table and
// (with Keep) how to explore go to out.
//
// A failure returns a *StepError naming the step (wrapping ErrUnreached,
// ErrNotEncrypted, ErrLeftover, the lab's or straitctl's error...) with
// the tail of the relevant log, after everything was torn down; the
// Summary is returned too when the traffic ran. A cancelled ctx (Ctrl-C)
// tears down and returns the step it interrupted.
func Run(ctx context.Context, log *slog.Logger, opts Options, out io.Writer) (*Summary, error) {
	start := time.Now()
	o, err := opts.withDefaults()
	if err != nil {
		return nil, &StepError{StepPreflight, err}
	}
	if err := preflight(&o); err != nil {
		return nil, &StepError{StepPreflight, err}
	}
	r := &runner{log: log, o: o, out: out, start: start}
	return r.run(ctx)
}

// preflight checks what the demo needs before anything is created, picks
// the lab name and prepares the work directory.
func preflight(o *Options) error {
	if err := binaries.Require(o.BinDir, requiredBinaries...); err != nil {
		return optionError(FlagBinDir, "%v (build them with `make demo`, or `go build -o %s/ ./cmd/...`)", err, o.BinDir)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: it builds network namespaces (run it as root, e.g. with sudo)", ErrNotRoot)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("iproute2's ip: %w (install iproute2)", err)
	}
	if o.Name == "" {
		name, err := chooseName()
		if err != nil {
			return err
		}
		o.Name = name
	} else if left, err := namespaces(o.Name); err != nil {
		return err
	} else if len(left) > 0 {
		return optionError(FlagName, "namespaces of a lab named %q exist (%s): remove that lab first", o.Name, left[0])
	}
	return prepareDir(o.Dir)
}

// runner is one run of the demo.
type runner struct {
	log   *slog.Logger
	o     Options
	out   io.Writer
	start time.Time
}

// say prints a progress line.
func (r *runner) say(format string, args ...any) {
	fmt.Fprintf(r.out, "[%5.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// stepErr wraps err as step's failure, saying so when ctx was cancelled or
// the run's timeout passed.
func (r *runner) stepErr(parent context.Context, step string, err error) error {
	switch {
	case parent.Err() != nil:
		err = fmt.Errorf("interrupted (%v): %w", context.Cause(parent), err)
	case errors.Is(err, context.DeadlineExceeded):
		err = fmt.Errorf("--timeout %s passed: %w", r.o.Timeout, err)
	}
	return &StepError{step, err}
}

func (r *runner) run(parent context.Context) (*Summary, error) {
	o := r.o
	ctx, cancel := context.WithTimeout(parent, o.Timeout)
	defer cancel()
	r.say("building %d clusters × %d nodes × %d pods (encryption %s) in %s", o.Clusters, o.Nodes, o.Pods, o.Encryption, o.Dir)
	spec := lab.Spec{
		Name: o.Name, Clusters: o.Clusters, NodesPerCluster: o.Nodes, PodsPerNode: o.Pods,
		Encryption: o.Encryption, BinDir: o.BinDir, WorkDir: o.Dir, Connect: false,
	}
	if r.log.Enabled(ctx, slog.LevelDebug) {
		// Debugging the demo: the agents and apiservers log in detail too.
		spec.LogLevel = "debug"
	}
	l, err := lab.Up(ctx, r.log, spec)
	if err != nil {
		// lab.Up tore down what it built.
		r.say("failed; logs kept in %s", o.Dir)
		return nil, r.stepErr(parent, StepClusters, err)
	}
	sum := r.newSummary(l)
	sum.Times.Build = time.Since(r.start)
	r.say("%d apiservers, %d agents and %d pods up (clusters not connected yet)", len(l.Clusters()), len(l.Nodes()), len(l.Pods()))

	stepErr := r.mesh(ctx, parent, l, sum)
	if stepErr == nil && o.Keep {
		sum.Kept = true
		sum.Times.Total = time.Since(r.start)
		if err := sum.WriteTable(r.out); err != nil {
			return sum, err
		}
		return sum, sum.WriteExplore(r.out)
	}
	t0 := time.Now()
	tdErr := r.teardown(parent, l)
	sum.Times.Teardown = time.Since(t0)
	sum.Times.Total = time.Since(r.start)
	if tdErr == nil && stepErr == nil {
		if err := clearDir(o.Dir); err != nil {
			tdErr = &StepError{StepTeardown, err}
		}
	}
	if tdErr == nil {
		r.say("everything torn down")
	}
	if sum.Pairs > 0 && sum.TCPReached+sum.ICMPReached > 0 {
		if err := sum.WriteTable(r.out); err != nil {
			return sum, err
		}
	}
	if stepErr != nil || tdErr != nil {
		r.say("failed; logs kept in %s (removed by the next demo or `straitctl demo down --dir %s`)", o.Dir, o.Dir)
	}
	if tdErr == nil {
		return sum, stepErr
	}
	if stepErr == nil {
		return sum, tdErr
	}
	return sum, errors.Join(stepErr, tdErr)
}

// newSummary fills what the lab's layout tells.
func (r *runner) newSummary(l *lab.Lab) *Summary {
	s := &Summary{
		Name: r.o.Name, Dir: r.o.Dir, BinDir: r.o.BinDir, Encryption: r.o.Encryption,
		Clusters: r.o.Clusters, NodesPerCluster: r.o.Nodes, PodsPerNode: r.o.Pods,
		Peers: map[string]int{},
	}
	if r.o.Encryption == lab.EncryptionWireGuard {
		s.ExpectedPeers = len(l.Nodes()) - 1
	}
	for _, c := range l.Clusters() {
		s.Contexts = append(s.Contexts, c.ContextFile)
	}
	s.StatusNetns = l.Clusters()[0].Netns
	pods := l.Pods()
	for _, a := range pods {
		for _, b := range pods {
			if a.Cluster != b.Cluster {
				s.Pairs++
				if s.ExamplePod == "" {
					s.ExamplePod, s.ExampleRemoteIP = a.Netns, b.IP.String()
				}
			}
		}
	}
	return s
}

// mesh runs the steps on a built lab: capture, connect, ready, traffic,
// proof. It returns the first step's error.
func (r *runner) mesh(ctx, parent context.Context, l *lab.Lab, sum *Summary) error {
	marker := newMarker()
	cfg, clusterOf := captureConfig(l, marker)
	capt, err := capture.Start(ctx, r.log, l.Underlay(), cfg)
	if err != nil {
		return r.stepErr(parent, StepCapture, err)
	}
	defer capt.Stop()
	watch, err := startCrossWatch(l.Underlay(), cfg, clusterOf)
	if err != nil {
		return r.stepErr(parent, StepCapture, err)
	}
	defer watch.Stop()

	// Connect, exactly as `straitctl connect --mode mesh` does (it is
	// straitctl, run in an apiserver's namespace: the host has no route to
	// the lab's underlay).
	r.say("connecting the clusters: straitctl connect --mode mesh")
	t0 := time.Now()
	args := []string{"connect", "--mode", string(connect.ModeMesh)}
	for _, c := range sum.Contexts {
		args = append(args, "--context", c)
	}
	if _, err := r.straitctl(ctx, sum.StatusNetns, args...); err != nil {
		return r.stepErr(parent, StepConnect, err)
	}
	connected := time.Now()
	sum.Times.Connect = connected.Sub(t0)

	// From now on one pod offers traffic to every other cluster, so the
	// first encrypted cross-cluster packet leaves as soon as a node can
	// send it.
	pctx, stopProbe := context.WithCancel(ctx)
	var probes sync.WaitGroup
	probes.Add(1)
	go func() {
		defer probes.Done()
		r.probe(pctx, l)
	}()
	err = r.waitReady(ctx, l)
	stopProbe()
	probes.Wait()
	if err != nil {
		return r.stepErr(parent, StepReady, err)
	}
	sum.Times.Ready = time.Since(connected)
	if r.o.Encryption == lab.EncryptionWireGuard {
		r.say("mesh ready: every agent sees every remote cluster ready and every other node as a WireGuard peer")
	} else {
		r.say("mesh ready: every agent sees every remote cluster ready")
	}
	if err := r.confirmStatus(ctx, sum); err != nil {
		return r.stepErr(parent, StepReady, err)
	}

	t1 := time.Now()
	r.say("sending TCP (with a marker) and ICMP from each of %d pods to every pod of the other clusters (%d pairs)", len(l.Pods()), sum.Pairs)
	trafficErr := r.traffic(ctx, l, marker, sum)
	settle(ctx, capt)
	st, capErr := capt.Stop()
	first, firstDesc := watch.First()
	watchErr := watch.Stop()
	sum.EncryptedPackets = st.Count(capture.ClassWireGuard) + st.Count(capture.ClassIPsec)
	sum.EncryptedBytes = st.EncryptedBytes
	sum.PlaintextPackets = st.Count(capture.ClassPlaintextPod)
	sum.OtherPackets = st.Count(capture.ClassOther)
	sum.MarkerHits = st.MarkerHits
	if !first.IsZero() {
		sum.FirstEncrypted = first.Sub(connected)
		r.log.Info("first encrypted cross-cluster packet", "packet", firstDesc, "afterConnect", sum.FirstEncrypted)
	}
	r.readPeers(ctx, l, sum)
	sum.Times.Traffic = time.Since(t1)
	if trafficErr != nil {
		return r.stepErr(parent, StepTraffic, trafficErr)
	}
	r.say("every pair reached over TCP and ICMP")
	if err := errors.Join(capErr, watchErr); err != nil {
		return r.stepErr(parent, StepProof, err)
	}
	if err := prove(r.o.Encryption, st, !first.IsZero()); err != nil {
		return r.stepErr(parent, StepProof, err)
	}
	if r.o.Encryption == lab.EncryptionNone {
		r.say("encryption none: %d plaintext pod packets crossed the underlay, as asked", sum.PlaintextPackets)
	} else {
		r.say("underlay: %d encrypted packets, no plaintext pod packet, marker never seen", sum.EncryptedPackets)
	}
	return nil
}

// newMarker is a payload no other traffic carries.
func newMarker() []byte {
	b := make([]byte, 8)
	rand.Read(b)
	return []byte("STRAIT-DEMO-" + hex.EncodeToString(b))
}

// captureConfig describes the lab to the classifier; clusterOf maps each
// node address to its cluster.
func captureConfig(l *lab.Lab, marker []byte) (capture.Config, map[netip.Addr]int) {
	clusterOf := map[netip.Addr]int{}
	for _, n := range l.Nodes() {
		clusterOf[n.IP] = n.Cluster
	}
	return l.CaptureConfig(marker), clusterOf
}

// straitctl runs straitctl with args in namespace ns and returns its
// standard output; a failure carries its output.
func (r *runner) straitctl(ctx context.Context, ns string, args ...string) ([]byte, error) {
	bin := filepath.Join(r.o.BinDir, "straitctl")
	argv := append([]string{"netns", "exec", ns, bin}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r.log.Debug("running", "cmd", "ip "+strings.Join(argv, " "))
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("straitctl %s: %w:\n%s", args[0], err, indent(strings.TrimSpace(stderr.String()+"\n"+stdout.String())))
	}
	return stdout.Bytes(), nil
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// probe pings, until ctx ends, from the first pod to the first pod of
// every other cluster; failures are expected until the mesh is up.
func (r *runner) probe(ctx context.Context, l *lab.Lab) {
	pods := l.Pods()
	src := pods[0]
	var dsts []lab.Pod
	for _, p := range pods {
		if p.Cluster != src.Cluster && !slices.ContainsFunc(dsts, func(d lab.Pod) bool { return d.Cluster == p.Cluster }) {
			dsts = append(dsts, p)
		}
	}
	for seq := 1; ctx.Err() == nil; seq++ {
		for i, d := range dsts {
			pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			err := lab.Ping(pctx, src.Netns, d.IP, 0x5d00+i, seq, []byte("strait-demo-probe"))
			cancel()
			r.log.Debug("probe", "from", src.Name, "to", d.Name, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollInterval):
		}
	}
}

// waitReady polls every agent until it sees every other cluster ready and
// (WireGuard) every other node as a peer with its pod CIDR. A timeout
// names the agent waited for, its last state and its log's tail.
func (r *runner) waitReady(ctx context.Context, l *lab.Lab) error {
	nodes := l.Nodes()
	var lastNode lab.Node
	var last string
	for {
		ready := true
		for _, n := range nodes {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := l.Agent(n).Status(sctx)
			cancel()
			why := ""
			if err != nil {
				why = fmt.Sprintf("agent %s: %v", n.Key(), err)
			} else {
				why = agentNotReady(n, l.Clusters(), nodes, r.o.Encryption, st)
			}
			if why != "" {
				ready, lastNode, last = false, n, why
				break
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last state: %s; log %s:\n%s", ctx.Err(), last, l.AgentLog(lastNode), logTail(l.AgentLog(lastNode), 20))
		case <-time.After(pollInterval):
		}
	}
}

// agentNotReady says what node n's agent still misses ("" when nothing).
func agentNotReady(n lab.Node, clusters []lab.Cluster, nodes []lab.Node, encryption string, st endpointapi.Status) string {
	for _, c := range clusters {
		if c.ID == n.Cluster {
			continue
		}
		i := slices.IndexFunc(st.Clusters, func(cs endpointapi.ClusterStatus) bool { return cs.Name == c.Name })
		if i < 0 || !st.Clusters[i].Ready {
			return fmt.Sprintf("agent %s: remote cluster %s not ready (clusters %+v, problems %+v)", n.Key(), c.Name, st.Clusters, st.Problems)
		}
	}
	if encryption != lab.EncryptionWireGuard {
		return ""
	}
	for _, o := range nodes {
		if o.Netns == n.Netns {
			continue
		}
		if !slices.ContainsFunc(st.Peers, func(p endpointapi.PeerStatus) bool {
			return p.Node == o.Key() && slices.Contains(p.AllowedIPs, o.PodCIDR.String())
		}) {
			return fmt.Sprintf("agent %s: no WireGuard peer %s with %s yet (problems %+v)", n.Key(), o.Key(), o.PodCIDR, st.Problems)
		}
	}
	return ""
}

// confirmStatus runs `straitctl status --wait -o json` and requires it to
// report the mesh ready (apiservers, their caches of every remote, agents).
func (r *runner) confirmStatus(ctx context.Context, sum *Summary) error {
	args := []string{"status", "--wait", "--wait-timeout", "30s", "-o", "json"}
	for _, c := range sum.Contexts {
		args = append(args, "--context", c)
	}
	out, err := r.straitctl(ctx, sum.StatusNetns, args...)
	if err != nil {
		return err
	}
	var clusters []string
	for i := 1; i <= sum.Clusters; i++ {
		clusters = append(clusters, fmt.Sprintf("cluster%d", i))
	}
	return checkStatus(out, clusters)
}

// checkStatus decodes `straitctl status -o json` output and requires it
// to list exactly the clusters named, each reachable with every other one
// as a ready remote, and to say Ready. Errors name what is missing.
func checkStatus(out []byte, clusters []string) error {
	var st connect.Status
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("straitctl status -o json: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("straitctl status -o json: more than one JSON value")
	}
	var got []string
	for _, c := range st.Clusters {
		got = append(got, c.Name)
		if !c.Reachable {
			return fmt.Errorf("straitctl status: cluster %q: apiserver not reachable (errors %+v)", c.Name, c.Errors)
		}
		for _, other := range clusters {
			if other == c.Name {
				continue
			}
			i := slices.IndexFunc(c.Remotes, func(rs connect.RemoteStatus) bool { return rs.Name == other })
			if i < 0 || !c.Remotes[i].Ready {
				return fmt.Errorf("straitctl status: cluster %q: remote %q not ready (remotes %+v, errors %+v)", c.Name, other, c.Remotes, c.Errors)
			}
		}
	}
	if !slices.Equal(got, clusters) {
		return fmt.Errorf("straitctl status: clusters %q, want %q", got, clusters)
	}
	if !st.Ready {
		return fmt.Errorf("straitctl status: not ready: %s", bytes.TrimSpace(out))
	}
	return nil
}

// traffic tries every pod pair of different clusters once over TCP (an
// echo carrying the marker) and once over ICMP.
func (r *runner) traffic(ctx context.Context, l *lab.Lab, marker []byte, sum *Summary) error {
	pods := l.Pods()
	for _, p := range pods {
		srv, err := lab.StartEchoServer(p.Netns, echoPort)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	type pair struct {
		a, b lab.Pod
		id   int
	}
	var pairs []pair
	for _, a := range pods {
		for _, b := range pods {
			if a.Cluster != b.Cluster {
				pairs = append(pairs, pair{a, b, 0x5e00 + len(pairs)})
			}
		}
	}
	deadline := time.Now().Add(trafficBudget)
	var (
		mu     sync.Mutex
		failed []pair
		wg     sync.WaitGroup
		work   = make(chan pair)
	)
	record := func(p pair, what string, tries int, err error, reached *int) {
		mu.Lock()
		defer mu.Unlock()
		if tries > 1 {
			sum.Retried++
			r.log.Info("pair needed a retry", "proto", what, "from", p.a.Name, "to", p.b.Name, "tries", tries, "err", err)
		}
		if err == nil {
			*reached++
			return
		}
		failed = append(failed, p)
		if len(sum.Failures) < 8 {
			sum.Failures = append(sum.Failures, fmt.Sprintf("%s %s (%s) → %s (%s) after %d tries: %v", what, p.a.Name, p.a.IP, p.b.Name, p.b.IP, tries, err))
		}
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if time.Now().After(deadline) {
					err := fmt.Errorf("not tried: the traffic step's %s had passed", trafficBudget)
					record(p, "TCP", 0, err, &sum.TCPReached)
					record(p, "ICMP", 0, err, &sum.ICMPReached)
					continue
				}
				payload := append([]byte(p.a.Name+">"+p.b.Name+":"), marker...)
				tries, err := attempt(ctx, deadline, tcpTry, func(ctx context.Context, _ int) error {
					return lab.Echo(ctx, p.a.Netns, netip.AddrPortFrom(p.b.IP, echoPort), payload)
				})
				record(p, "TCP", tries, err, &sum.TCPReached)
				tries, err = attempt(ctx, deadline, icmpTry, func(ctx context.Context, i int) error {
					return lab.Ping(ctx, p.a.Netns, p.b.IP, p.id, i, marker)
				})
				record(p, "ICMP", tries, err, &sum.ICMPReached)
			}
		}()
	}
	for _, p := range pairs {
		select {
		case work <- p:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if len(failed) == 0 {
		return ctx.Err()
	}
	n, m := l.NodeOf(failed[0].a), l.NodeOf(failed[0].b)
	peers := ""
	if r.o.Encryption == lab.EncryptionWireGuard {
		peers = peerState(ctx, l, n) + "; " + peerState(ctx, l, m) + "; "
	}
	return fmt.Errorf("%w: %d/%d pairs over TCP and %d/%d over ICMP within %s; first: %s; %slog of %s (%s):\n%s",
		ErrUnreached, sum.TCPReached, sum.Pairs, sum.ICMPReached, sum.Pairs, trafficBudget, sum.Failures[0],
		peers, n.Key(), l.AgentLog(n), logTail(l.AgentLog(n), 20))
}

// peerState describes node n's WireGuard peers as its agent reports them
// (handshake, bytes), for a traffic failure.
func peerState(ctx context.Context, l *lab.Lab, n lab.Node) string {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	st, err := l.Agent(n).Status(sctx)
	if err != nil {
		return fmt.Sprintf("agent %s: %v", n.Key(), err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "agent %s (%s device): peers", n.Key(), st.DeviceType)
	for _, p := range st.Peers {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = time.Since(p.LastHandshake).Round(time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(&b, " [%s at %s %v handshake %s rx %d tx %d]", p.Node, p.Endpoint, p.AllowedIPs, hs, p.RxBytes, p.TxBytes)
	}
	if len(st.Problems) > 0 {
		fmt.Fprintf(&b, ", problems %+v", st.Problems)
	}
	return b.String()
}

// attempt calls try (with a context bounded by per, and the try's number
// from 1) until it succeeds or deadline has passed; it returns the number
// of tries and the last error. WireGuard may need one handshake retry when
// both ends initiate at once (wireguard-go drops the crossed response and
// retries after 15 s), so one failure is not the end.
func attempt(ctx context.Context, deadline time.Time, per time.Duration, try func(context.Context, int) error) (int, error) {
	for i := 1; ; i++ {
		tctx, cancel := context.WithTimeout(ctx, per)
		err := try(tctx, i)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			cancel()
			return i, err
		}
		<-tctx.Done() // pace the retries: at most one try per period
		cancel()
	}
}

// settle waits until the capture saw no new frame for a moment (frames
// still queued on its socket are counted before it stops), at most 2 s.
func settle(ctx context.Context, capt *capture.Capture) {
	total := func(s capture.Stats) (n int) {
		for _, p := range s.Packets {
			n += p
		}
		return n
	}
	prev := total(capt.Stats())
	for i := 0; i < 10 && ctx.Err() == nil; i++ {
		time.Sleep(200 * time.Millisecond)
		now := total(capt.Stats())
		if now == prev {
			return
		}
		prev = now
	}
}

// readPeers records each agent's WireGuard peer count.
func (r *runner) readPeers(ctx context.Context, l *lab.Lab, sum *Summary) {
	for _, n := range l.Nodes() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := l.Agent(n).Status(sctx)
		cancel()
		if err != nil {
			r.log.Warn("agent status", "node", n.Key(), "err", err)
			continue
		}
		sum.Peers[n.Key()] = len(st.Peers)
	}
}

// prove checks the capture for the encryption mode: no plaintext pod
// packet, no marker, nothing unexpected, and encrypted traffic of the
// right kind between nodes of different clusters. Without encryption
// there is nothing to prove.
func prove(encryption string, st capture.Stats, crossSeen bool) error {
	if encryption == lab.EncryptionNone {
		return nil
	}
	var problems []string
	if n := st.Count(capture.ClassPlaintextPod); n > 0 {
		problems = append(problems, fmt.Sprintf("%d plaintext pod packets (e.g. %s)", n, strings.Join(st.Samples[capture.ClassPlaintextPod], "; ")))
	}
	if st.MarkerHits > 0 {
		problems = append(problems, fmt.Sprintf("the payload marker crossed %d times (e.g. %s)", st.MarkerHits, strings.Join(st.MarkerSamples, "; ")))
	}
	if n := st.Count(capture.ClassOther); n > 0 {
		problems = append(problems, fmt.Sprintf("%d unexpected packets (e.g. %s)", n, strings.Join(st.Samples[capture.ClassOther], "; ")))
	}
	want, other := capture.ClassWireGuard, capture.ClassIPsec
	if encryption == lab.EncryptionIPsec {
		want, other = other, want
	}
	if n := st.Count(other); n > 0 {
		problems = append(problems, fmt.Sprintf("%d %s packets in %s mode", n, other, encryption))
	}
	if st.Count(want) == 0 {
		problems = append(problems, fmt.Sprintf("no %s packet at all", want))
	} else if !crossSeen {
		problems = append(problems, fmt.Sprintf("no %s packet between nodes of different clusters", want))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s (capture: %s)", ErrNotEncrypted, strings.Join(problems, "; "), st.String())
	}
	return nil
}

// teardown closes the lab under a fresh bounded context and checks that
// nothing of it is left.
func (r *runner) teardown(parent context.Context, l *lab.Lab) error {
	r.say("tearing down")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), teardownTimeout)
	defer cancel()
	before, _ := processes(r.o.Dir)
	stopAll(before, stopGrace)
	err := l.Close(ctx)
	if lerr := r.leftovers(before); lerr != nil {
		err = errors.Join(err, lerr)
	}
	if err != nil {
		return &StepError{StepTeardown, err}
	}
	return nil
}

// leftovers reports namespaces of the lab and processes (those seen
// before teardown and any found now) still there.
func (r *runner) leftovers(before map[int]string) error {
	netns, procs, err := Leftovers(r.o.Name, r.o.Dir)
	if err != nil {
		return err
	}
	for pid, cl := range before {
		if now, ok := liveCmdline(pid); ok && now == cl {
			s := fmt.Sprintf("%d %s", pid, cl)
			if !slices.Contains(procs, s) {
				procs = append(procs, s)
			}
		}
	}
	if len(netns) == 0 && len(procs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: namespaces %v, processes %v (try `straitctl demo down --dir %s`)", ErrLeftover, netns, procs, r.o.Dir)
}

// Down removes the demo recorded in dir: after `straitctl demo --keep`, or
// after a crash. It stops its processes and deletes its namespaces
// (lab.Destroy, from the lab record), then removes the demo's files.
// ErrNoDemo: dir holds neither a lab record nor a demo marker.
func Down(ctx context.Context, log *slog.Logger, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return optionError(FlagDir, "%v", err)
	}
	record := exists(filepath.Join(dir, lab.RecordFile))
	if !record && !exists(filepath.Join(dir, MarkerFile)) {
		return fmt.Errorf("%s: %w (nothing to remove)", dir, ErrNoDemo)
	}
	if record {
		if os.Geteuid() != 0 {
			return fmt.Errorf("%w: removing network namespaces", ErrNotRoot)
		}
		spec, err := lab.ReadSpec(dir)
		if err != nil {
			return err
		}
		if procs, err := processes(dir); err == nil {
			stopAll(procs, stopGrace)
		}
		if err := lab.Destroy(ctx, log, dir); err != nil {
			return fmt.Errorf("demo %s in %s: %w", spec.Name, dir, err)
		}
		netns, procs, err := Leftovers(spec.Name, dir)
		if err != nil {
			return err
		}
		if len(netns) > 0 || len(procs) > 0 {
			return fmt.Errorf("%w: namespaces %v, processes %v", ErrLeftover, netns, procs)
		}
	}
	return clearDir(dir)
}
