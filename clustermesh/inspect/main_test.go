package inspect

import (
	"os"
	"testing"

	"github.com/strait-net/strait/internal/testkit"
)

// TestMain fails the package when goroutines of strait's cluster mesh
// packages outlive the tests.
func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithLeakCheck(m, "strait-net/strait/clustermesh/"))
}
