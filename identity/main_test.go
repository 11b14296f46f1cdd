package identity

import (
	"os"
	"testing"

	"github.com/strait-net/strait/internal/testkit"
)

// TestMain fails the package when goroutines of strait's code outlive the tests.
func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithLeakCheck(m, "strait-net/strait/clustermesh/", "strait-net/strait/identity."))
}
