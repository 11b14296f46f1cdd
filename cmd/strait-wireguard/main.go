package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/strait-net/strait/encryption/wireguard"
)

const tunPath = "/dev/net/tun"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed command line.
type options struct {
	mtu      int
	logLevel int
	name     string
}

// parseArgs parses args; help reports that usage was printed on request.
func parseArgs(args []string, stdout io.Writer) (opts options, help bool, err error) {
	fs := flag.NewFlagSet("strait-wireguard", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	mtu := fs.Int("mtu", device.DefaultMTU, "MTU of the TUN link (576..65535); the agent sets the final MTU itself")
	level := fs.String("log-level", "info", "debug, info, error or silent")
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: strait-wireguard [--mtu N] [--log-level L] IFNAME\n\n"+
			"Runs the userspace WireGuard device IFNAME in the foreground, configurable through\n"+
			"the UAPI socket %s/IFNAME.sock (wgctrl, wg). Exits on SIGTERM or SIGINT.\n\nFlags:\n", wireguard.SocketDir)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return opts, true, nil
		}
		return opts, false, err
	}
	if *mtu < 576 || *mtu > 65535 {
		return opts, false, fmt.Errorf("--mtu %d outside 576..65535", *mtu)
	}
	opts.mtu = *mtu
	switch *level {
	case "debug":
		opts.logLevel = device.LogLevelVerbose
	case "info", "error":
		opts.logLevel = device.LogLevelError
	case "silent":
		opts.logLevel = device.LogLevelSilent
	default:
		return opts, false, fmt.Errorf("--log-level %q: want debug, info, error or silent", *level)
	}
	switch fs.NArg() {
	case 0:
		return opts, false, errors.New("missing interface name")
	case 1:
	default:
		return opts, false, fmt.Errorf("want exactly one interface name, got %q (flags go before the name)", fs.Args())
	}
	opts.name = fs.Arg(0)
	if err := wireguard.ValidateDeviceName(opts.name); err != nil {
		return opts, false, fmt.Errorf("interface name: %w", err)
	}
	return opts, false, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, help, err := parseArgs(args, stdout)
	if help {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "strait-wireguard: %v\nRun 'strait-wireguard --help' for usage.\n", err)
		return wireguard.ExitUsage
	}
	logf := func(format string, a ...any) {
		if opts.logLevel != device.LogLevelSilent {
			fmt.Fprintf(stderr, "strait-wireguard: (%s) "+format+"\n", append([]any{opts.name}, a...)...)
		}
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "strait-wireguard: "+format+"\n", a...)
		return code
	}

	// Probe the clone device first, so its absence gets its own message and
	// exit status rather than a generic TUN error.
	if f, err := os.OpenFile(tunPath, os.O_RDWR, 0); err != nil {
		return fail(wireguard.ExitNoTUN, "%s: %v (userspace WireGuard needs the tun module)", tunPath, err)
	} else {
		f.Close()
	}
	tdev, err := tun.CreateTUN(opts.name, opts.mtu)
	if err != nil {
		return fail(wireguard.ExitTUNCreateErr, "create TUN %s: %v", opts.name, err)
	}
	uapiFile, err := ipc.UAPIOpen(opts.name)
	if err != nil {
		tdev.Close()
		if strings.Contains(err.Error(), "in use") {
			return fail(wireguard.ExitSocketInUse, "UAPI socket %s/%s.sock: %v (another process serves %s)",
				wireguard.SocketDir, opts.name, err, opts.name)
		}
		return fail(wireguard.ExitFailure, "UAPI socket %s/%s.sock: %v", wireguard.SocketDir, opts.name, err)
	}
	logger := device.NewLogger(opts.logLevel, fmt.Sprintf("strait-wireguard: (%s) ", opts.name))
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), logger)
	uapi, err := ipc.UAPIListen(opts.name, uapiFile)
	if err != nil {
		dev.Close()
		return fail(wireguard.ExitFailure, "listen on UAPI socket: %v", err)
	}
	errs := make(chan error, 1)
	go func() {
		for {
			c, err := uapi.Accept()
			if err != nil {
				errs <- err
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	term := make(chan os.Signal, 1)
	signal.Notify(term, unix.SIGTERM, os.Interrupt)
	logf("device running, pid %d, UAPI socket %s/%s.sock", os.Getpid(), wireguard.SocketDir, opts.name)

	code := 0
	select {
	case sig := <-term:
		logf("%v: shutting down", sig)
	case err := <-errs:
		logf("UAPI listener failed: %v", err)
		code = wireguard.ExitFailure
	case <-dev.Wait():
		logf("device closed (TUN link removed?)")
		code = wireguard.ExitFailure
	}
	uapi.Close()
	// The listener came from a file, so closing it does not unlink the
	// socket; remove it so wgctrl stops listing a dead device.
	_ = os.Remove(fmt.Sprintf("%s/%s.sock", wireguard.SocketDir, opts.name))
	dev.Close()
	return code
}
