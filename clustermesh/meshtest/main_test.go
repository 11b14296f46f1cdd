package meshtest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the package when goroutines of strait's cluster mesh
// packages outlive the tests. Goroutines of the embedded etcd servers and of
// gRPC's global machinery are not ours and are ignored.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(15 * time.Second)
		for len(leaked()) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if g := leaked(); len(g) > 0 {
			fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines\n%s\n", len(g), strings.Join(g, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leaked returns the stacks of goroutines running code of strait's
// clustermesh packages.
func leaked() []string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue
		}
		if strings.Contains(g, "strait-net/strait/clustermesh/") && !strings.Contains(g, "clustermesh/meshtest.TestMain") {
			out = append(out, g)
		}
	}
	return out
}
