package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strait-net/strait/clustermesh/connect"
	"github.com/strait-net/strait/clustermesh/inspect"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/clustermesh/schema"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "straitctl:", err)
		os.Exit(1)
	}
}

// globals are the flags every subcommand shares.
type globals struct {
	logLevel string
	stderr   io.Writer
}

func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, flagError("log-level", fmt.Errorf("%q: want debug, info, warn or error", g.logLevel))
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level})), nil
}

// flagError names the flag at fault.
func flagError(flag string, err error) error {
	return fmt.Errorf("invalid --%s: %w", flag, err)
}

// newRootCommand builds the command tree; out receives the results,
// stderr the logs.
func newRootCommand(out, stderr io.Writer) *cobra.Command {
	g := &globals{stderr: stderr}
	root := &cobra.Command{
		Use:           "straitctl",
		Short:         "operate strait cluster meshes: connect, disconnect, status, inspect",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	root.AddCommand(newConnectCommand(g), newDisconnectCommand(g), newStatusCommand(g), newInspectCommand(g), newDemoCmd())
	return root
}

// loadContexts reads every --context file.
func loadContexts(paths []string) ([]*connect.Context, error) {
	if len(paths) == 0 {
		return nil, flagError("context", errors.New("missing: name a context file per cluster (--context cluster1.yaml)"))
	}
	var cs []*connect.Context
	for _, p := range paths {
		c, err := connect.LoadContext(p)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func parseMode(s string) (connect.Mode, error) {
	switch m := connect.Mode(s); m {
	case connect.ModeBidirectional, connect.ModeMesh, connect.ModeUnicast:
		return m, nil
	}
	return "", flagError("mode", fmt.Errorf("%q: want bidirectional, mesh or unicast", s))
}

func newConnectCommand(g *globals) *cobra.Command {
	var (
		contexts []string
		mode     string
		allowCA  bool
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "connect --context A.yaml --context B.yaml [--mode bidirectional|mesh|unicast] [--allow-mismatching-ca]",
		Short: "connect clusters: validate everything, then write each cluster's remote-cluster files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			m, err := parseMode(mode)
			if err != nil {
				return err
			}
			if timeout <= 0 {
				return flagError("timeout", fmt.Errorf("%s: must be positive", timeout))
			}
			cs, err := loadContexts(contexts)
			if err != nil {
				return err
			}
			res, err := connect.Connect(cmd.Context(), log, cs, connect.Options{Mode: m, AllowMismatchingCA: allowCA, DialTimeout: timeout})
			if err != nil {
				return err
			}
			printResult(cmd.OutOrStdout(), res, "connected", "already connected (identical files), nothing to do")
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&contexts, "context", nil, "context file of a cluster (repeat; the first is the source of bidirectional and unicast)")
	cmd.Flags().StringVar(&mode, "mode", string(connect.ModeBidirectional), "bidirectional, mesh or unicast")
	cmd.Flags().BoolVar(&allowCA, "allow-mismatching-ca", false, "trust both clusters' CAs for each remote (see README)")
	cmd.Flags().DurationVar(&timeout, "timeout", connect.DefaultDialTimeout, "bound on reaching each apiserver")
	return cmd
}

func newDisconnectCommand(g *globals) *cobra.Command {
	var (
		contexts []string
		mode     string
	)
	cmd := &cobra.Command{
		Use:   "disconnect --context A.yaml --context B.yaml [--mode bidirectional|mesh|unicast]",
		Short: "remove exactly the files connect wrote, on every side the mode names",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			m, err := parseMode(mode)
			if err != nil {
				return err
			}
			cs, err := loadContexts(contexts)
			if err != nil {
				return err
			}
			res, err := connect.Disconnect(cmd.Context(), log, cs, connect.Options{Mode: m})
			if err != nil {
				return err
			}
			printResult(cmd.OutOrStdout(), res, "disconnected", "not connected, nothing to do")
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&contexts, "context", nil, "context file of a cluster (repeat)")
	cmd.Flags().StringVar(&mode, "mode", string(connect.ModeBidirectional), "bidirectional, mesh or unicast (as given to connect)")
	return cmd
}

func printResult(w io.Writer, res *connect.Result, changed, unchanged string) {
	for _, p := range res.Changed {
		fmt.Fprintf(w, "%s: %s\n", p, changed)
	}
	for _, p := range res.Unchanged {
		fmt.Fprintf(w, "%s: %s\n", p, unchanged)
	}
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return flagError("output", fmt.Errorf("%q: want table or json", o))
	}
	return nil
}

func newStatusCommand(g *globals) *cobra.Command {
	var (
		contexts    []string
		wait        bool
		waitTimeout time.Duration
		output      string
		timeout     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status --context A.yaml [--context B.yaml ...] [--wait [--wait-timeout 2m]] [-o json|table]",
		Short: "per cluster: apiserver reachability, remote clusters configured/connected/ready, agents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			if waitTimeout <= 0 {
				return flagError("wait-timeout", fmt.Errorf("%s: must be positive", waitTimeout))
			}
			cs, err := loadContexts(contexts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			opts := connect.StatusOptions{DialTimeout: timeout}
			if !wait {
				st, err := connect.CollectStatus(cmd.Context(), log, cs, opts)
				if err != nil {
					return err
				}
				return writeStatus(out, st, output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), waitTimeout)
			defer cancel()
			var progress func(*connect.Status)
			if output == "table" {
				progress = func(st *connect.Status) {
					fmt.Fprintf(out, "--- %s\n", time.Now().Format(time.TimeOnly))
					writeStatusTable(out, st)
				}
			}
			st, err := connect.WaitStatus(ctx, log, cs, opts, time.Second, progress)
			if output == "json" && st != nil {
				if werr := writeStatus(out, st, output); werr != nil {
					return werr
				}
			}
			if err != nil {
				return fmt.Errorf("not ready after %s: %w", waitTimeout, err)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&contexts, "context", nil, "context file of a cluster (repeat)")
	cmd.Flags().BoolVar(&wait, "wait", false, "redraw the status every second until everything is ready (exit 1 on timeout)")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 2*time.Minute, "how long --wait waits")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "bound on reaching each apiserver or agent")
	return cmd
}

func writeStatus(w io.Writer, st *connect.Status, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	writeStatusTable(w, st)
	return nil
}

func writeStatusTable(w io.Writer, st *connect.Status) {
	for _, c := range st.Clusters {
		reach := "reachable"
		if !c.Reachable {
			reach = "UNREACHABLE"
		}
		fmt.Fprintf(w, "cluster %s (id %d): apiserver %s %s\n", c.Name, c.ID, strings.Join(c.Endpoints, ","), reach)
		fmt.Fprintf(w, "  remote clusters: %d configured, %d connected, %d ready\n", c.Configured, c.Connected, c.Ready)
		for _, r := range c.Remotes {
			state := fmt.Sprintf("configured=%t connected=%t ready=%t", r.Configured, r.Connected, r.Ready)
			if len(r.Pending) > 0 {
				state += " pending=" + strings.Join(r.Pending, ",")
			}
			fmt.Fprintf(w, "    %s: %s\n", r.Name, state)
		}
		a := c.Agents
		if a.Total > 0 {
			fmt.Fprintf(w, "  agents: %d/%d reachable", a.Reachable, a.Total)
			if a.Connected != nil {
				fmt.Fprintf(w, ", remote clusters connected min/avg/max %d/%.1f/%d, ready %d/%.1f/%d",
					a.Connected.Min, a.Connected.Avg, a.Connected.Max, a.Ready.Min, a.Ready.Avg, a.Ready.Max)
			}
			fmt.Fprintln(w)
		}
		for _, p := range c.Errors {
			fmt.Fprintf(w, "  error: %s\n    hint: %s\n", p.Message, p.Hint)
		}
	}
	if st.Ready {
		fmt.Fprintln(w, "all clusters ready")
	} else {
		fmt.Fprintln(w, "not ready")
	}
}

func newInspectCommand(g *globals) *cobra.Command {
	var (
		contexts []string
		cluster  string
		output   string
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:       "inspect nodes|ipcache|identities|services|clusters --context F [--cluster NAME] [-o json|table]",
		Short:     "list and validate a cluster's etcd entries: its own and the cached remote ones",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"nodes", "ipcache", "identities", "services", "clusters"},
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			kind := inspect.Kind(args[0])
			valid := false
			for _, k := range inspect.Kinds() {
				valid = valid || k == kind
			}
			if !valid {
				return fmt.Errorf("unknown kind %q: want nodes, ipcache, identities, services or clusters", args[0])
			}
			cs, err := loadContexts(contexts)
			if err != nil {
				return err
			}
			c, err := pickCluster(cs, cluster)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			cli, err := kvstore.New(ctx, log, c.AdminConfig())
			if err != nil {
				return fmt.Errorf("apiserver of cluster %q: %w", c.Cluster, err)
			}
			defer cli.Close()
			r, err := inspect.Read(ctx, inspect.EtcdGetter{Client: cli.Etcd()}, schema.Origin{Cluster: c.Cluster, ClusterID: c.ID, Max: c.Max}, kind)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return inspect.WriteTable(cmd.OutOrStdout(), r)
		},
	}
	cmd.Flags().StringArrayVar(&contexts, "context", nil, "context file of the cluster (repeat to choose with --cluster)")
	cmd.Flags().StringVar(&cluster, "cluster", "", "which cluster's etcd to read (default: the only --context)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "bound on reaching the apiserver and reading")
	return cmd
}

// pickCluster chooses the context named by --cluster.
func pickCluster(cs []*connect.Context, name string) (*connect.Context, error) {
	if name == "" {
		if len(cs) != 1 {
			return nil, flagError("cluster", fmt.Errorf("missing: %d contexts given, name the cluster to inspect", len(cs)))
		}
		return cs[0], nil
	}
	var names []string
	for _, c := range cs {
		if c.Cluster == name {
			return c, nil
		}
		names = append(names, c.Cluster)
	}
	return nil, flagError("cluster", fmt.Errorf("%q is none of the contexts' clusters (%s)", name, strings.Join(names, ", ")))
}
