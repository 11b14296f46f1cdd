package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/strait-net/strait/encryption/wireguard"
	"github.com/strait-net/strait/internal/binaries"
	"github.com/strait-net/strait/tools/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "datapath:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	duration      time.Duration
	rttIterations int
	rounds        int
	binDir        string
	logLevel      string
	// differences adds hand-built variants of the routed baseline, each
	// with one of strait's differences, to measure each one's cost.
	differences bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("datapath", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "bulk TCP throughput measurement time per setup")
	fs.IntVar(&o.rttIterations, "rtt-iterations", 20000, "1-byte TCP round trips per setup")
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds; each setup gets duration/rounds and rtt-iterations/rounds per round")
	fs.StringVar(&o.binDir, "bin-dir", "", "strait binaries (default $STRAIT_BIN_DIR, else built)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log level of the lab")
	fs.BoolVar(&o.differences, "differences", false, "also measure the hand-built routed baseline with each of strait's differences applied alone, and all together")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.duration < time.Second || o.duration > 10*time.Minute {
		return o, fmt.Errorf("-duration %v: must be 1s..10m", o.duration)
	}
	if o.rttIterations < 100 || o.rttIterations > 10_000_000 {
		return o, fmt.Errorf("-rtt-iterations %d: must be 100..10000000", o.rttIterations)
	}
	if o.rounds < 1 || o.rounds > 100 || o.duration/time.Duration(o.rounds) < 500*time.Millisecond {
		return o, fmt.Errorf("-rounds %d: must be 1..100 with at least 500ms of -duration per round", o.rounds)
	}
	return o, nil
}

// result is one setup's figures, summed over the rounds.
type result struct {
	name    string
	bytes   int64
	elapsed time.Duration
	samples []time.Duration
	bps     float64
	rtt     RTT
	// roundBps is each round's throughput (bytes/s), for per-round ratios.
	roundBps []float64
	// roundRTT is each round's mean round trip (µs).
	roundRTT []float64
	// cpu is the wireguard-go processes' CPU time during the bulk
	// transfers (0 when unknown); cpuPerGB is cpu per 1e9 bytes received.
	cpu      time.Duration
	cpuPerGB float64
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: builds network namespaces")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: %w", o.logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	if o.binDir == "" {
		if o.binDir, err = binaries.Dir(ctx); err != nil {
			return err
		}
		defer binaries.Remove(o.binDir)
	}
	if err := binaries.Require(o.binDir, "strait-apiserver", "strait-agent", "strait-wireguard", "strait-cni"); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "strait-bench-datapath-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// Every setup is built first and measured in interleaved rounds, so
	// that load from elsewhere on the machine hits all of them alike.
	l, err := lab.Up(ctx, log, lab.Spec{
		Name: fmt.Sprintf("bd%d", os.Getpid()%100000), Clusters: 2, NodesPerCluster: 1, PodsPerNode: 1,
		BinDir: o.binDir, WorkDir: filepath.Join(work, "lab"), Connect: true, WireGuardMode: "userspace", LogLevel: o.logLevel,
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if cerr := l.Close(cctx); cerr != nil {
			log.Error("lab close", "err", cerr)
		}
	}()
	pods := l.Pods()
	pair, err := newHandPair(ctx, o.binDir, work)
	if err != nil {
		return err
	}
	defer pair.close()
	var straitPids []int
	for _, n := range l.Nodes() {
		b, err := os.ReadFile(filepath.Join(n.StateDir, wireguard.PidFileName))
		if err != nil {
			return fmt.Errorf("strait-wireguard of %s: %w", n.Key(), err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("strait-wireguard of %s: pid file: %w", n.Key(), err)
		}
		straitPids = append(straitPids, pid)
	}
	setups := []setup{
		{name: "strait (pod → remote pod)", src: pods[0].Netns, dst: pods[1].Netns, addr: pods[1].IP, pids: straitPids},
		{name: "wireguard-go by hand", src: pair.a, dst: pair.b, addr: pair.wgB, pids: pair.pids()},
		{name: "plaintext veth", src: pair.a, dst: pair.b, addr: pair.vethB},
	}
	for _, v := range routedVariants(o.differences) {
		r, err := newRoutedPair(ctx, o.binDir, work, v.variant)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		defer r.close()
		setups = append(setups, setup{name: v.name, src: r.podA, dst: r.podB, addr: r.dst, pids: r.pids()})
	}
	results := make([]result, len(setups))
	for r := 0; r < o.rounds; r++ {
		for i, s := range setups {
			fmt.Fprintf(stderr, "round %d/%d: %s\n", r+1, o.rounds, s.name)
			cpu0 := cpuTime(s.pids)
			n, el, err := bulk(ctx, s.src, s.dst, netip.AddrPortFrom(s.addr, 5201), o.duration/time.Duration(o.rounds))
			if err != nil {
				return fmt.Errorf("%s: throughput: %w", s.name, err)
			}
			results[i].cpu += cpuTime(s.pids) - cpu0
			results[i].roundBps = append(results[i].roundBps, float64(n)/el.Seconds())
			rs, err := rttSamples(ctx, s.src, s.dst, netip.AddrPortFrom(s.addr, 5202), o.rttIterations/o.rounds)
			if err != nil {
				return fmt.Errorf("%s: rtt: %w", s.name, err)
			}
			results[i].name = s.name
			results[i].bytes += n
			results[i].elapsed += el
			results[i].samples = append(results[i].samples, rs...)
			results[i].roundRTT = append(results[i].roundRTT, us(summarize(rs).Mean))
		}
	}
	for i := range results {
		results[i].bps = float64(results[i].bytes) / results[i].elapsed.Seconds()
		results[i].rtt = summarize(results[i].samples)
		if results[i].cpu > 0 && results[i].bytes > 0 {
			results[i].cpuPerGB = results[i].cpu.Seconds() / float64(results[i].bytes) * 1e9
		}
	}
	report(stdout, o, results)
	return nil
}

// setup is one path to measure: from namespace src to addr in dst.
type setup struct {
	name     string
	src, dst string
	addr     netip.Addr
	// pids are the wireguard-go processes on the path (none for
	// plaintext), whose CPU time is reported per byte.
	pids []int
}

// namedVariant is a routed baseline and its name in the report.
type namedVariant struct {
	name    string
	variant routedVariant
}

// routedVariants returns the routed baselines to build: the plain one,
// and with differences each of strait's differences alone, all of them
// together, and the plain one with wireguard-go in this program's session
// (how the baselines were started before; see baseline.setsid).
func routedVariants(differences bool) []namedVariant {
	out := []namedVariant{{name: "wireguard-go by hand, pods behind nodes"}}
	if !differences {
		return out
	}
	return append(out,
		namedVariant{"  + fwmark 0x1E00", routedVariant{tag: "f", fwmark: true}},
		namedVariant{"  + node /32 in allowed IPs", routedVariant{tag: "n", nodeIP: true}},
		namedVariant{"  + route mtu 1420 proto 0xC8", routedVariant{tag: "m", routeMTU: true}},
		namedVariant{"  + strait-cni pod setup", routedVariant{tag: "c", cniPods: true}},
		namedVariant{"  + IPv6 disabled", routedVariant{tag: "6", noIPv6: true}},
		namedVariant{"  + all of the above", routedVariant{tag: "a", fwmark: true, nodeIP: true, routeMTU: true, cniPods: true, noIPv6: true}},
		namedVariant{"  plain, wireguard-go in the benchmark's session", routedVariant{tag: "s", sharedSession: true}},
		namedVariant{"  plaintext, pods behind nodes (no WireGuard)", routedVariant{tag: "p", plaintext: true}},
		namedVariant{"  plain, qdisc noqueue on the WireGuard devices", routedVariant{tag: "q", noqueue: true}},
	)
}

// cpuTime returns the summed user+system CPU time of pids (0 for those
// that cannot be read).
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces and is
		// closed by the last ')'): state is field 3, utime 14, stime 15.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + k
	}
	// USER_HZ is 100 on Linux for every architecture Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond
}

func report(w io.Writer, o options, rs []result) {
	fmt.Fprintf(w, "datapath benchmark, %s, %d CPUs, %d interleaved rounds; throughput: 1 TCP connection, %v in all per setup; RTT: %d × 1-byte TCP request/response per setup\n\n",
		time.Now().UTC().Format("2006-01-02"), numCPU(), o.rounds, o.duration, o.rttIterations)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "setup\tthroughput Gbit/s\tRTT mean µs\tp50 µs\tp99 µs\twireguard-go CPU s/GB\t")
	for _, r := range rs {
		cpu := "-"
		if r.cpuPerGB > 0 {
			cpu = fmt.Sprintf("%.2f", r.cpuPerGB)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.1f\t%.1f\t%.1f\t%s\t\n", r.name, r.bps*8/1e9, us(r.rtt.Mean), us(r.rtt.P50), us(r.rtt.P99), cpu)
	}
	tw.Flush()
	if len(rs) >= 2 {
		s, h := rs[0], rs[1]
		fmt.Fprintf(w, "\nstrait / wireguard-go by hand: throughput %.3f (goal ≥ 0.95), RTT mean %.3f, p50 %.3f, p99 %.3f (goal ≤ 1.10)\n",
			s.bps/h.bps, ratio(s.rtt.Mean, h.rtt.Mean), ratio(s.rtt.P50, h.rtt.P50), ratio(s.rtt.P99, h.rtt.P99))
	}
	if len(rs) >= 3 {
		s, p := rs[0], rs[2]
		fmt.Fprintf(w, "strait / plaintext veth:       throughput %.3f, RTT mean %.3f\n", s.bps/p.bps, ratio(s.rtt.Mean, p.rtt.Mean))
	}
	if len(rs) >= 4 {
		s, r := rs[0], rs[3]
		fmt.Fprintf(w, "strait / wireguard-go by hand with pods behind nodes (same topology): throughput %.3f, RTT mean %.3f, p50 %.3f, p99 %.3f\n",
			s.bps/r.bps, ratio(s.rtt.Mean, r.rtt.Mean), ratio(s.rtt.P50, r.rtt.P50), ratio(s.rtt.P99, r.rtt.P99))
	}
	if len(rs) >= 2 {
		fmt.Fprintf(w, "\nper-round ratios: throughput median [rounds]; RTT mean median [rounds]; wireguard-go CPU per byte over all rounds\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, b := range []int{1, 3} {
			if b >= len(rs) {
				continue
			}
			for i, r := range rs {
				if i == b || i == 2 {
					continue
				}
				rr := roundRatios(r.roundBps, rs[b].roundBps)
				cpu := "-"
				if r.cpuPerGB > 0 && rs[b].cpuPerGB > 0 {
					cpu = fmt.Sprintf("%.3f", r.cpuPerGB/rs[b].cpuPerGB)
				}
				rt := roundRatios(r.roundRTT, rs[b].roundRTT)
				fmt.Fprintf(tw, "%s / %s\tthroughput %.3f %s\tRTT %.3f %s\tCPU/byte %s\n", strings.TrimSpace(r.name), strings.TrimSpace(rs[b].name), median(rr), fmtRatios(rr), median(rt), fmtRatios(rt), cpu)
			}
		}
		tw.Flush()
	}
}

// roundRatios returns a[i]/b[i] for each round.
func roundRatios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRatios(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func us(d time.Duration) float64       { return float64(d) / float64(time.Microsecond) }
func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}
