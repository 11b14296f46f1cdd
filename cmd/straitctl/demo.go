package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/strait-net/strait/tools/demo"
)

// newDemoCmd is `straitctl demo` and `straitctl demo down` (tools/demo).
func newDemoCmd() *cobra.Command {
	opts := demo.Options{
		Clusters: demo.DefaultClusters, Nodes: demo.DefaultNodes, Pods: demo.DefaultPods,
		Encryption: demo.DefaultEncryption, Dir: demo.DefaultDir, Timeout: demo.DefaultTimeout,
	}
	cmd := &cobra.Command{
		Use:   "demo [--clusters 2] [--nodes 2] [--pods 2] [--encryption wireguard|ipsec|none] [--keep] [--dir .strait-demo]",
		Short: "build clusters in network namespaces, mesh them, prove pod traffic crosses only encrypted, tear down",
		Long: `demo builds --clusters clusters of --nodes nodes with --pods pods each in network
namespaces on this machine (a strait-apiserver with an embedded etcd per
cluster, a strait-agent per node, pods created through strait-cni), connects
them with straitctl connect --mode mesh, waits until every agent sees every
remote cluster, sends TCP and ICMP from every pod to every pod of the other
clusters while capturing the underlay, checks that only encrypted pod traffic
crossed it, prints a summary and tears everything down. With --keep the
clusters stay up; 'straitctl demo down' removes them. Needs root.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := demoLogger(cmd)
			if err != nil {
				return err
			}
			if opts.BinDir == "" {
				if opts.BinDir, err = executableDir(); err != nil {
					return fmt.Errorf("invalid --bin-dir: default (this straitctl's directory): %w", err)
				}
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			_, err = demo.Run(cmd.Context(), log, opts, cmd.OutOrStdout())
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Clusters, demo.FlagClusters, opts.Clusters, "clusters (2..9)")
	f.IntVar(&opts.Nodes, demo.FlagNodes, opts.Nodes, "nodes per cluster (1..9)")
	f.IntVar(&opts.Pods, demo.FlagPods, opts.Pods, "pods per node (1..9)")
	f.StringVar(&opts.Encryption, demo.FlagEncryption, opts.Encryption, "wireguard, ipsec or none")
	f.BoolVar(&opts.Keep, "keep", false, "leave the clusters running (remove them with 'straitctl demo down')")
	f.StringVar(&opts.Dir, demo.FlagDir, opts.Dir, "work directory: certificates, etcd data, logs, context files")
	f.StringVar(&opts.BinDir, demo.FlagBinDir, "", "directory of strait-apiserver, strait-agent, strait-wireguard, strait-cni, straitctl (default: this straitctl's directory)")
	f.DurationVar(&opts.Timeout, demo.FlagTimeout, opts.Timeout, "bound on the run before teardown")
	f.StringVar(&opts.Name, demo.FlagName, "", "lab name in every namespace name, sl-<name>-... (default demo)")
	cmd.AddCommand(newDemoDownCmd())
	return cmd
}

func newDemoDownCmd() *cobra.Command {
	dir := demo.DefaultDir
	cmd := &cobra.Command{
		Use:   "down [--dir .strait-demo]",
		Short: "remove a demo left by --keep or by a crash: its processes, namespaces and files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := demoLogger(cmd)
			if err != nil {
				return err
			}
			err = demo.Down(cmd.Context(), log, dir)
			if errors.Is(err, demo.ErrNoDemo) {
				fmt.Fprintf(cmd.OutOrStdout(), "no demo in %s: nothing to remove\n", dir)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "demo in %s removed\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, demo.FlagDir, dir, "the demo's work directory")
	return cmd
}

// demoLogger logs to the command's stderr at the root's --log-level
// (warn when the command runs on its own).
func demoLogger(cmd *cobra.Command) (*slog.Logger, error) {
	level := "warn"
	if f := cmd.Flag("log-level"); f != nil {
		level = f.Value.String()
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level: %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lv})), nil
}

// executableDir is the directory of the running straitctl, where `make
// demo` puts every binary.
func executableDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	return filepath.Dir(exe), nil
}
