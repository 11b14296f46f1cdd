package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strait-apiserver:", err)
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

// newRootCommand builds the command tree; out receives what a user reads
// (how to reach the server), stderr the logs.
func newRootCommand(out, stderr io.Writer) *cobra.Command {
	g := &globals{stderr: stderr}
	root := &cobra.Command{
		Use:           "strait-apiserver",
		Short:         "etcd front of one strait cluster: TLS client-cert auth, ClusterMesh users and roles, cluster config, heartbeat",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(newRunCommand(g), newRunLocalCommand(g), newCertsCommand(g))
	return root
}

// flagError names the flag at fault.
func flagError(flag string, err error) error {
	return fmt.Errorf("invalid --%s: %w", flag, err)
}
