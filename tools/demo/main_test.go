package demo

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/binaries"
	"github.com/strait-net/strait/internal/testkit"
)

// bins builds (or finds, with STRAIT_BIN_DIR) the binaries once, for the
// tests that run the demo; TestMain removes a directory it built.
var bins struct {
	once sync.Once
	dir  string
	err  error
}

// binDir returns the binary directory, building it on first use.
func binDir(t *testing.T) string {
	t.Helper()
	bins.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		bins.dir, bins.err = binaries.Dir(ctx)
	})
	if bins.err != nil {
		t.Fatalf("binaries: %v", bins.err)
	}
	return bins.dir
}

// Environment of the child process TestDownAfterCrash starts and kills.
const (
	envChildDir  = "STRAIT_DEMO_CHILD_DIR"
	envChildName = "STRAIT_DEMO_CHILD_NAME"
	envChildBin  = "STRAIT_DEMO_CHILD_BIN"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envChildDir); dir != "" {
		os.Exit(crashChild(dir))
	}
	code := testkit.RunWithLeakCheck(m, "strait/tools/demo.", "strait/tools/lab.")
	if bins.dir != "" {
		binaries.Remove(bins.dir)
	}
	os.Exit(code)
}

// crashChild runs a demo until its parent test kills it.
func crashChild(dir string) int {
	opts := Options{Dir: dir, Name: os.Getenv(envChildName), BinDir: os.Getenv(envChildBin), Nodes: 1, Pods: 1, Keep: true}
	_, err := Run(context.Background(), slog.New(slog.DiscardHandler), opts, os.Stdout)
	fmt.Fprintln(os.Stderr, "demo child: run returned before being killed:", err)
	time.Sleep(time.Hour) // the parent kills us
	return 1
}
