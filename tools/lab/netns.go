package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NetnsDir is where iproute2 keeps named network namespaces.
const NetnsDir = "/run/netns"

// createNetns creates a named network namespace with iproute2 (which also
// makes NetnsDir a shared mount, so deleting it reaches every mount
// namespace), brings lo up and turns IPv6 off, so captures see no IPv6
// link-local chatter.
func createNetns(ctx context.Context, name string) error {
	if err := runCmd(ctx, "ip", "netns", "add", name); err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	return Do(name, func() error {
		for _, kv := range [][2]string{
			{"net/ipv6/conf/all/disable_ipv6", "1"},
			{"net/ipv6/conf/default/disable_ipv6", "1"},
		} {
			if err := writeSysctl(kv[0], kv[1]); err != nil {
				return fmt.Errorf("netns %s: %w", name, err)
			}
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("netns %s: lo: %w", name, err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("netns %s: lo up: %w", name, err)
		}
		return nil
	})
}

// deleteNetns deletes a named network namespace; a missing one is fine.
func deleteNetns(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join(NetnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := runCmd(ctx, "ip", "netns", "delete", name); err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	return nil
}

// listNetns returns the named network namespaces starting with prefix.
func listNetns(prefix string) ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list netns: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Do runs fn on an OS thread switched into the named network namespace.
// Sockets fn opens belong to that namespace for their whole life, so a
// listener or connection may be used from any goroutine afterwards. The
// thread is discarded when fn returns (never reused in another namespace).
func Do(name string, fn func() error) error {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the goroutine's exit terminates the thread.
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("netns %s: enter: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// DialIn opens a TCP (or other net.Dial network) connection from inside
// the named namespace.
func DialIn(ctx context.Context, nsName, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := Do(nsName, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// ListenIn opens a listener inside the named namespace.
func ListenIn(nsName, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := Do(nsName, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// writeSysctl writes /proc/sys/<key> of the calling thread's namespace.
func writeSysctl(key, value string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// runCmd runs a command and returns its output in the error.
func runCmd(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
