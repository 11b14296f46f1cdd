package wireguard_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/strait-net/strait/internal/testkit"
)

// binDir holds strait-wireguard for the root tests: $STRAIT_BIN_DIR when set
// (prebuilt, e.g. inside the kernel VM), else built once here.
var binDir, binErr = "", error(nil)

// TestMain builds strait-wireguard for the root tests and fails the package
// when goroutines of this package (e.g. the reaper of a userspace process
// nobody stopped) outlive the tests.
func TestMain(m *testing.M) {
	code := func() int {
		switch {
		case os.Getenv("STRAIT_BIN_DIR") != "":
			binDir = os.Getenv("STRAIT_BIN_DIR")
		case os.Geteuid() == 0:
			dir, err := os.MkdirTemp("", "swg-bin-")
			if err != nil {
				binErr = err
				break
			}
			defer os.RemoveAll(dir)
			out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/strait-net/strait/cmd/strait-wireguard").CombinedOutput()
			if err != nil {
				binErr = fmt.Errorf("go build ./cmd/strait-wireguard: %v\n%s", err, out)
			}
			binDir = dir
		}
		return testkit.RunWithLeakCheck(m, "strait-net/strait/encryption/wireguard")
	}()
	os.Exit(code)
}

func userspaceBinary(t *testing.T) string {
	t.Helper()
	if binErr != nil {
		t.Fatal(binErr)
	}
	p := filepath.Join(binDir, "strait-wireguard")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("strait-wireguard binary: %v (set STRAIT_BIN_DIR where there is no Go toolchain)", err)
	}
	return p
}
