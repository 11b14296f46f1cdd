package guestcheck

import (
	"fmt"
	"os"
	"testing"
)

// TestInGuest runs every check inside the vmtest guest (hack/test-vm.sh
// runs it there). On the host it skips: the host kernel has no WireGuard
// module and no ESP, and the checks would change the host's links.
func TestInGuest(t *testing.T) {
	if !InGuest() {
		t.Skip("needs the vmtest guest kernel (" + GuestFlag + " on /proc/cmdline): run hack/test-vm.sh")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, links and XFRM states")
	}
	env := NewEnv(fmt.Sprintf("vmt%d", os.Getpid()))
	t.Cleanup(env.Close)
	for _, c := range All() {
		if err := c.Run(env); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		t.Logf("ok %s", c.Name)
	}
}

func TestHasGuestFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cmdline string
		want    bool
	}{
		{"guest", "console=ttyS0 quiet strait.vmtest=1 panic=-1\n", true},
		{"last", "console=ttyS0 strait.vmtest=1", true},
		{"host", "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro", false},
		{"other value", "strait.vmtest=0", false},
		{"prefix only", "xstrait.vmtest=1 strait.vmtest=10", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hasGuestFlag(tc.cmdline); got != tc.want {
				t.Fatalf("hasGuestFlag(%q) = %v, want %v", tc.cmdline, got, tc.want)
			}
		})
	}
}
