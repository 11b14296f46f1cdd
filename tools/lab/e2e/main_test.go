package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/binaries"
)

// binDir holds the binaries TestMain found or built.
var binDir string

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		dir, err := binaries.Dir(ctx)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: binaries:", err)
			os.Exit(1)
		}
		if err := binaries.Require(dir, "strait-apiserver", "strait-agent", "strait-wireguard", "strait-cni"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(1)
		}
		binDir = dir
		code := m.Run()
		binaries.Remove(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and runs agents in them")
	}
}
