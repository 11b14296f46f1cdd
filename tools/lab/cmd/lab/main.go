package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/internal/binaries"
	"github.com/strait-net/strait/tools/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	var workDir, logLevel string
	root := &cobra.Command{
		Use:           "lab",
		Short:         "build strait clusters as network namespaces on this machine",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&workDir, "work-dir", ".strait-lab", "directory holding the lab's state, logs and record")
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "debug|info|warn|error")
	logger := func() (*slog.Logger, error) {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(logLevel)); err != nil {
			return nil, fmt.Errorf("--log-level %q: %w", logLevel, err)
		}
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv})), nil
	}

	var spec lab.Spec
	up := &cobra.Command{
		Use:   "up",
		Short: "build a lab and leave it running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger()
			if err != nil {
				return err
			}
			spec.WorkDir = workDir
			spec.LogLevel = logLevel
			if spec.BinDir == "" {
				if spec.BinDir, err = buildBinaries(cmd.Context(), workDir); err != nil {
					return err
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			l, err := lab.Up(ctx, log, spec)
			if err != nil {
				return err
			}
			printLab(stdout, l.Spec(), l.Clusters(), l.Nodes(), l.Pods())
			fmt.Fprintf(stdout, "\nlab %s is up; `lab down --work-dir %s` removes it\n", spec.Name, workDir)
			return nil
		},
	}
	f := up.Flags()
	f.StringVar(&spec.Name, "name", "lab", "lab name, [a-z0-9]{1,8}: namespaces are sl-<name>-*")
	f.IntVar(&spec.Clusters, "clusters", 2, "number of clusters (1..9)")
	f.IntVar(&spec.NodesPerCluster, "nodes", 2, "nodes per cluster (1..9)")
	f.IntVar(&spec.PodsPerNode, "pods", 2, "pods per node (0..9)")
	f.IntVar(&spec.UnderlayMTU, "underlay-mtu", 1500, "MTU of the underlay")
	f.StringVar(&spec.Encryption, "encryption", "wireguard", "wireguard|ipsec|none")
	f.StringVar(&spec.WireGuardMode, "wireguard-mode", "", "the agents' --wireguard-mode (auto|kernel|userspace; empty: the agent's default)")
	f.BoolVar(&spec.StrictMode, "strict", false, "strict mode: agents drop unencrypted traffic to other nodes' pod CIDRs")
	f.BoolVar(&spec.Connect, "connect", true, "connect the clusters in a full mesh (false: leave it to straitctl connect)")
	f.StringVar(&spec.BinDir, "bin-dir", "", "directory with the strait binaries (default: $STRAIT_BIN_DIR, else built into <work-dir>/bin)")

	down := &cobra.Command{
		Use:   "down",
		Short: "remove the lab recorded in --work-dir (also after a crash)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger()
			if err != nil {
				return err
			}
			if err := lab.Destroy(cmd.Context(), log, workDir); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "lab in %s removed (logs kept)\n", workDir)
			return nil
		},
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "show the lab recorded in --work-dir and its agents' status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := lab.ReadSpec(workDir)
			if err != nil {
				return err
			}
			clusters, nodes := lab.Describe(spec)
			printLab(stdout, spec, clusters, nodes, nil)
			fmt.Fprintln(stdout)
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tKVSTORE\tMESH SYNCED\tCLUSTERS READY\tPEERS\tENDPOINTS\tPROBLEMS")
			for _, n := range nodes {
				ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
				st, err := endpointapi.NewClient(n.Socket).Status(ctx)
				cancel()
				if err != nil {
					fmt.Fprintf(tw, "%s\t(%v)\n", n.Key(), err)
					continue
				}
				ready := 0
				for _, c := range st.Clusters {
					if c.Ready {
						ready++
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%d/%d\t%d\t%d\t%d\n", n.Key(), st.KVStore, st.MeshSynced, ready, len(st.Clusters), len(st.Peers), st.Endpoints, len(st.Problems))
			}
			return tw.Flush()
		},
	}
	root.AddCommand(up, down, status)
	return root
}

// buildBinaries returns $STRAIT_BIN_DIR or builds ./cmd/... into
// <workDir>/bin (kept with the lab: the agents restart from there).
func buildBinaries(ctx context.Context, workDir string) (string, error) {
	if os.Getenv(binaries.EnvDir) != "" {
		return binaries.Dir(ctx)
	}
	root, err := binaries.ModuleRoot()
	if err != nil {
		return "", err
	}
	out, err := filepath.Abs(filepath.Join(workDir, "bin"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	return out, binaries.Build(ctx, root, out, "./cmd/...")
}

func printLab(w io.Writer, spec lab.Spec, clusters []lab.Cluster, nodes []lab.Node, pods []lab.Pod) {
	fmt.Fprintf(w, "lab %s: %d clusters × %d nodes × %d pods, underlay MTU %d, encryption %s, work dir %s\n",
		spec.Name, spec.Clusters, spec.NodesPerCluster, spec.PodsPerNode, spec.UnderlayMTU, spec.Encryption, spec.WorkDir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHAT\tNETNS\tADDRESS\tDETAIL")
	for _, c := range clusters {
		fmt.Fprintf(tw, "apiserver %s (id %d)\t%s\t%s\tcontext %s\n", c.Name, c.ID, c.Netns, c.APIAddr, c.ContextFile)
	}
	for _, n := range nodes {
		fmt.Fprintf(tw, "node %s\t%s\t%s\tpods %s, socket %s\n", n.Key(), n.Netns, n.IP, n.PodCIDR, n.Socket)
	}
	for _, p := range pods {
		fmt.Fprintf(tw, "pod %s\t%s\t%s\t\n", p.Name, p.Netns, p.IP)
	}
	tw.Flush()
}
