package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/strait-net/strait/cni/plugin"
)

// about is the usage skel prints when CNI_COMMAND is missing: only when no
// CNI_ variable is set at all (a person running the binary); a runtime that
// forgot CNI_COMMAND gets the CNI error naming it.
func about() string {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CNI_") {
			return ""
		}
	}
	return "strait-cni: strait's CNI plugin (veth, node-local IPAM, strait-agent endpoints); see its README"
}

// timeout bounds one command, so a hung agent never hangs the runtime.
const timeout = 60 * time.Second

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	ctx, cancelT := context.WithTimeout(ctx, timeout)
	level := slog.LevelWarn
	if os.Getenv("STRAIT_CNI_DEBUG") != "" {
		level = slog.LevelDebug
	}
	p := &plugin.Plugin{
		Log:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Stdout: os.Stdout,
	}
	e := skel.PluginMainFuncsWithError(p.Funcs(ctx), plugin.VersionInfo(), about())
	cancelT()
	cancel()
	if e != nil {
		if err := e.Print(); err != nil {
			os.Stderr.WriteString("strait-cni: writing error: " + err.Error() + "\n")
		}
		os.Exit(1)
	}
}
