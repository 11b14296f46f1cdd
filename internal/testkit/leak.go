package testkit

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// RunWithLeakCheck runs the tests of m and, when they pass, fails the run if
// goroutines running code of any of pkgs (substrings of a stack, such as
// "strait/clustermesh/kvstore.") outlive them by more than 15 s. Goroutines
// of embedded etcd servers and of gRPC's global machinery are not ours and
// are not matched. Use it as os.Exit(testkit.RunWithLeakCheck(m, ...)).
func RunWithLeakCheck(m *testing.M, pkgs ...string) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(leaked(pkgs)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if g := leaked(pkgs); len(g) > 0 {
		fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines\n%s\n", len(g), strings.Join(g, "\n\n"))
		return 1
	}
	return 0
}

// leaked returns the stacks of goroutines, other than the caller's, that run
// code of pkgs.
func leaked(pkgs []string) []string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || strings.Contains(g, "internal/testkit.RunWithLeakCheck") {
			continue
		}
		for _, p := range pkgs {
			if strings.Contains(g, p) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}
