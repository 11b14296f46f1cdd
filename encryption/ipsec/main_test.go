package ipsec

import (
	"os"
	"testing"

	"github.com/strait-net/strait/internal/testkit"
)

func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithLeakCheck(m, "strait/encryption/ipsec."))
}
