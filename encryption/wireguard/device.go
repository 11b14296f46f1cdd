package wireguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Mode selects how the device is implemented.
type Mode string

const (
	// ModeAuto uses a kernel link when the kernel has WireGuard, else userspace.
	ModeAuto Mode = "auto"
	// ModeKernel requires the kernel's WireGuard (netlink link type wireguard).
	ModeKernel Mode = "kernel"
	// ModeUserspace runs the device in a strait-wireguard process (TUN).
	ModeUserspace Mode = "userspace"
)

// ParseMode parses a --wireguard-mode value; "" is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeKernel, ModeUserspace:
		return m, nil
	}
	return "", fmt.Errorf("%w: mode %q: want auto, kernel or userspace", ErrInvalidConfig, s)
}

// DeviceConfig describes the device EnsureDevice makes (or adopts).
type DeviceConfig struct {
	Name         string // link name; default DefaultDevice
	ListenPort   int    // UDP port; default DefaultPort
	FirewallMark int    // mark on the device's own packets; default FirewallMark
	MTU          int    // required, 1280..65535 (from DeviceMTU)
	PrivateKey   wgtypes.Key
	Mode         Mode // default ModeAuto
	// UserspaceBinary is the strait-wireguard program; default: the file
	// named UserspaceBinaryName beside os.Executable(), else found on $PATH.
	UserspaceBinary string
	// StateDir receives the userspace process's LogFileName and PidFileName;
	// required when a userspace process is started.
	StateDir string
}

// withDefaults fills defaults and validates.
func (cfg DeviceConfig) withDefaults() (DeviceConfig, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultDevice
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = DefaultPort
	}
	if cfg.FirewallMark == 0 {
		cfg.FirewallMark = FirewallMark
	}
	m, err := ParseMode(string(cfg.Mode))
	if err != nil {
		return cfg, err
	}
	cfg.Mode = m
	if err := ValidateDeviceName(cfg.Name); err != nil {
		return cfg, err
	}
	switch {
	case cfg.ListenPort < 1 || cfg.ListenPort > 65535:
		return cfg, fmt.Errorf("%w: listen port %d outside 1..65535", ErrInvalidConfig, cfg.ListenPort)
	case cfg.FirewallMark < 0 || int64(cfg.FirewallMark) > 0xFFFFFFFF:
		return cfg, fmt.Errorf("%w: firewall mark %#x outside 32 bits", ErrInvalidConfig, cfg.FirewallMark)
	case cfg.MTU < minMTU || cfg.MTU > 65535:
		return cfg, fmt.Errorf("%w: MTU %d outside %d..65535", ErrInvalidConfig, cfg.MTU, minMTU)
	case cfg.PrivateKey == (wgtypes.Key{}):
		return cfg, fmt.Errorf("%w: private key is all zero", ErrInvalidConfig)
	}
	return cfg, nil
}

// ValidateDeviceName reports whether name is a usable Linux interface name
// (1..15 bytes, no '/', ':', '%' or whitespace, not "." or "..", not
// starting with '-'), also usable as the UAPI socket's file name.
func ValidateDeviceName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty device name", ErrInvalidConfig)
	case len(name) > unix.IFNAMSIZ-1:
		return fmt.Errorf("%w: device name %q longer than %d bytes", ErrInvalidConfig, name, unix.IFNAMSIZ-1)
	case name == "." || name == "..":
		return fmt.Errorf("%w: device name %q", ErrInvalidConfig, name)
	case name[0] == '-':
		return fmt.Errorf("%w: device name %q starts with '-'", ErrInvalidConfig, name)
	}
	for _, r := range name {
		if r <= ' ' || r == '/' || r == ':' || r == '%' || r >= 0x7f {
			return fmt.Errorf("%w: device name %q contains %q", ErrInvalidConfig, name, r)
		}
	}
	return nil
}

// Device is a WireGuard device in the network namespace EnsureDevice ran in.
type Device struct {
	name  string
	typ   string
	index int
	pid   int
}

// Name is the link name.
func (d *Device) Name() string { return d.name }

// Type is "kernel" or "userspace".
func (d *Device) Type() string { return d.typ }

// Index is the link index in the device's network namespace.
func (d *Device) Index() int { return d.index }

// Pid is the process serving a userspace device (0 for a kernel device).
func (d *Device) Pid() int { return d.pid }

// startTimeout bounds the wait for a new userspace process when ctx has a
// later (or no) deadline.
const startTimeout = 15 * time.Second

// EnsureDevice creates or adopts the device cfg describes in the current
// network namespace. Callers that switch namespaces must call it from a
// goroutine locked to a thread in the target namespace (it does all netlink
// work, /proc/sys writes and the fork of strait-wireguard on that thread and
// starts no goroutine that does).
//
// Adoption: if a link named cfg.Name exists and wgctrl can read it as a
// WireGuard device served in this namespace, only what differs from cfg
// (private key, listen port, firewall mark, MTU, up, rp_filter) is changed;
// its peers are never touched, so an agent restart does not disturb traffic.
// A link of that name that is not such a device (or is of the other Mode
// than an explicit cfg.Mode) is an error wrapping ErrNotWireGuard.
//
// Creation: ModeKernel adds a netlink link of type wireguard
// (ErrNoKernelSupport if the kernel has none); ModeUserspace starts
// cfg.UserspaceBinary detached (own session, stdin /dev/null, output appended
// to StateDir/LogFileName, pid in StateDir/PidFileName) and waits, bounded by
// ctx and startTimeout, for its UAPI socket SocketDir/<name>.sock and its
// link; ModeAuto tries the kernel first. The link is set up before the listen
// port is configured, so a port that is already bound fails now with
// ErrPortInUse. A device created by this call is removed again if a later
// step fails.
//
// Errors wrap ErrInvalidConfig, ErrNoTUN, ErrPortInUse, ErrNoKernelSupport,
// ErrUserspaceStart, ErrNotWireGuard, or the netlink/wgctrl error with the
// step that failed.
func EnsureDevice(ctx context.Context, log *slog.Logger, cfg DeviceConfig) (*Device, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("wireguard device %s: open wgctrl: %w", cfg.Name, err)
	}
	defer c.Close()

	d := &Device{name: cfg.Name}
	var created bool
	link, err := netlink.LinkByName(cfg.Name)
	switch {
	case err == nil:
		if err := adopt(c, link, cfg, d); err != nil {
			return nil, err
		}
		log.Info("wireguard device adopted", "device", cfg.Name, "type", d.typ, "pid", d.pid)
	case isLinkNotFound(err):
		if err := create(ctx, log, c, cfg, d); err != nil {
			return nil, err
		}
		created = true
		if link, err = netlink.LinkByName(cfg.Name); err != nil {
			err = fmt.Errorf("wireguard device %s: find new link: %w", cfg.Name, err)
			return nil, rollback(ctx, log, cfg, err)
		}
	default:
		return nil, fmt.Errorf("wireguard device %s: look up link: %w", cfg.Name, err)
	}
	d.index = link.Attrs().Index

	if err := configure(log, c, link, cfg); err != nil {
		if created {
			return nil, rollback(ctx, log, cfg, err)
		}
		return nil, err
	}
	return d, nil
}

// rollback removes a device this EnsureDevice created and returns err.
func rollback(ctx context.Context, log *slog.Logger, cfg DeviceConfig, err error) error {
	if derr := DeleteDevice(context.WithoutCancel(ctx), log, cfg); derr != nil {
		return fmt.Errorf("%w (and removing the new device: %v)", err, derr)
	}
	return err
}

// adopt checks that link is a WireGuard device of the right kind served in
// this network namespace and fills d.
func adopt(c *wgctrl.Client, link netlink.Link, cfg DeviceConfig, d *Device) error {
	dev, err := c.Device(cfg.Name)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("wireguard device %s: %w: a link of type %q exists and neither the kernel nor a UAPI socket in %s serves it",
			cfg.Name, ErrNotWireGuard, link.Type(), SocketDir)
	}
	if err != nil {
		return fmt.Errorf("wireguard device %s: read existing device: %w", cfg.Name, err)
	}
	switch dev.Type {
	case wgtypes.LinuxKernel:
		d.typ = string(ModeKernel)
	case wgtypes.Userspace:
		d.typ = string(ModeUserspace)
		if t := link.Type(); t != "tuntap" && t != "tun" {
			return fmt.Errorf("wireguard device %s: %w: a UAPI socket serves this name but the link here is of type %q, not tun",
				cfg.Name, ErrNotWireGuard, link.Type())
		}
		pid, err := socketPeerPid(cfg.Name)
		if err != nil {
			return fmt.Errorf("wireguard device %s: %w", cfg.Name, err)
		}
		same, err := sameNetns(pid)
		if err != nil {
			return fmt.Errorf("wireguard device %s: %w", cfg.Name, err)
		}
		if !same {
			return fmt.Errorf("wireguard device %s: %w: its UAPI socket is served by pid %d in another network namespace",
				cfg.Name, ErrNotWireGuard, pid)
		}
		d.pid = pid
		// Keep the pid file current (the state dir may be new) so teardown
		// finds the process even without the socket.
		if cfg.StateDir != "" {
			pidFile := filepath.Join(cfg.StateDir, PidFileName)
			if old, err := readPidFile(pidFile); err != nil || old != pid {
				if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
					return fmt.Errorf("wireguard device %s: create state dir: %w", cfg.Name, err)
				}
				if err := writePidFile(pidFile, pid); err != nil {
					return fmt.Errorf("wireguard device %s: %w", cfg.Name, err)
				}
			}
		}
	default:
		return fmt.Errorf("wireguard device %s: %w: unknown device type %v", cfg.Name, ErrNotWireGuard, dev.Type)
	}
	if cfg.Mode != ModeAuto && string(cfg.Mode) != d.typ {
		return fmt.Errorf("wireguard device %s: %w: existing device is %s, mode %s wants %s; delete it to switch",
			cfg.Name, ErrNotWireGuard, d.typ, cfg.Mode, cfg.Mode)
	}
	return nil
}

func create(ctx context.Context, log *slog.Logger, c *wgctrl.Client, cfg DeviceConfig, d *Device) error {
	switch cfg.Mode {
	case ModeKernel:
		d.typ = string(ModeKernel)
		return createKernel(log, cfg)
	case ModeUserspace:
		d.typ = string(ModeUserspace)
		pid, err := startUserspace(ctx, log, c, cfg)
		d.pid = pid
		return err
	}
	err := createKernel(log, cfg)
	if err == nil {
		d.typ = string(ModeKernel)
		return nil
	}
	if !errors.Is(err, ErrNoKernelSupport) {
		return err
	}
	log.Info("kernel has no wireguard, using userspace device", "device", cfg.Name)
	d.typ = string(ModeUserspace)
	pid, err := startUserspace(ctx, log, c, cfg)
	d.pid = pid
	return err
}

// createKernel adds a kernel WireGuard link.
func createKernel(log *slog.Logger, cfg DeviceConfig) error {
	link := &netlink.Wireguard{LinkAttrs: netlink.NewLinkAttrs()}
	link.LinkAttrs.Name = cfg.Name
	link.LinkAttrs.MTU = cfg.MTU
	if err := netlink.LinkAdd(link); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("wireguard device %s: %w: netlink link type wireguard: %w", cfg.Name, ErrNoKernelSupport, err)
		}
		return fmt.Errorf("wireguard device %s: add kernel link: %w", cfg.Name, err)
	}
	log.Info("wireguard kernel device created", "device", cfg.Name)
	return nil
}

// configure brings link and the WireGuard settings to cfg, changing only
// what differs.
func configure(log *slog.Logger, c *wgctrl.Client, link netlink.Link, cfg DeviceConfig) error {
	attrs := link.Attrs()
	if attrs.MTU != cfg.MTU {
		if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("wireguard device %s: set MTU %d: %w", cfg.Name, cfg.MTU, err)
		}
		log.Info("wireguard device MTU set", "device", cfg.Name, "mtu", cfg.MTU, "was", attrs.MTU)
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			if errors.Is(err, unix.EADDRINUSE) {
				return fmt.Errorf("wireguard device %s: %w: port %d", cfg.Name, ErrPortInUse, cfg.ListenPort)
			}
			return fmt.Errorf("wireguard device %s: set up: %w", cfg.Name, err)
		}
		log.Info("wireguard device set up", "device", cfg.Name)
	}
	dev, err := c.Device(cfg.Name)
	if err != nil {
		return fmt.Errorf("wireguard device %s: read: %w", cfg.Name, err)
	}
	var wc wgtypes.Config
	var changed []string
	if dev.PrivateKey != cfg.PrivateKey {
		wc.PrivateKey = &cfg.PrivateKey
		changed = append(changed, "private key")
	}
	if dev.ListenPort != cfg.ListenPort {
		wc.ListenPort = &cfg.ListenPort
		changed = append(changed, fmt.Sprintf("listen port %d (was %d)", cfg.ListenPort, dev.ListenPort))
	}
	if dev.FirewallMark != cfg.FirewallMark {
		wc.FirewallMark = &cfg.FirewallMark
		changed = append(changed, fmt.Sprintf("firewall mark %#x (was %#x)", cfg.FirewallMark, dev.FirewallMark))
	}
	if len(changed) > 0 {
		if err := c.ConfigureDevice(cfg.Name, wc); err != nil {
			if isAddrInUse(err) {
				return fmt.Errorf("wireguard device %s: %w: UDP port %d is already bound in this network namespace: %w",
					cfg.Name, ErrPortInUse, cfg.ListenPort, err)
			}
			return fmt.Errorf("wireguard device %s: configure %s: %w", cfg.Name, strings.Join(changed, ", "), err)
		}
		log.Info("wireguard device configured", "device", cfg.Name, "changed", strings.Join(changed, ", "))
	}
	if err := disableRPFilter(log, cfg.Name); err != nil {
		return fmt.Errorf("wireguard device %s: %w", cfg.Name, err)
	}
	return nil
}

// isAddrInUse recognises EADDRINUSE from the kernel (generic netlink) and
// from wireguard-go's UAPI ("errno=-98", as text through wgctrl).
func isAddrInUse(err error) bool {
	if errors.Is(err, unix.EADDRINUSE) {
		return true
	}
	return strings.Contains(err.Error(), fmt.Sprintf("errno=%d", -int(unix.EADDRINUSE)))
}

// disableRPFilter sets net.ipv4.conf.<dev>.rp_filter to 0 in the current
// network namespace (decrypted packets arrive on the device with remote pod
// sources that the reverse path would not route back through it).
func disableRPFilter(log *slog.Logger, name string) error {
	path := filepath.Join("/proc/sys/net/ipv4/conf", name, "rp_filter")
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if strings.TrimSpace(string(cur)) == "0" {
		return nil
	}
	if err := os.WriteFile(path, []byte("0\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	log.Info("rp_filter disabled", "device", name, "was", strings.TrimSpace(string(cur)))
	return nil
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// DeleteDevice removes the device cfg names from the current network
// namespace, for teardown (the agent itself never calls it on exit). It stops
// the strait-wireguard process serving the device (found through the UAPI
// socket's peer credentials, else the pid file in cfg.StateDir, and only if
// that process is in this network namespace): SIGTERM, then SIGKILL when ctx
// ends first. Then it deletes the link if it is still there and removes the
// pid file. A device that does not exist is not an error.
func DeleteDevice(ctx context.Context, log *slog.Logger, cfg DeviceConfig) error {
	name := cfg.Name
	if name == "" {
		name = DefaultDevice
	}
	if err := ValidateDeviceName(name); err != nil {
		return err
	}
	pid := 0
	if p, err := socketPeerPid(name); err == nil {
		if same, _ := sameNetns(p); same {
			pid = p
		}
	}
	pidFile := ""
	if cfg.StateDir != "" {
		pidFile = filepath.Join(cfg.StateDir, PidFileName)
		if pid == 0 {
			if p, err := readPidFile(pidFile); err == nil && isOurProcess(p, name) {
				pid = p
			}
		}
	}
	if pid != 0 {
		if err := stopProcess(ctx, pid); err != nil {
			return fmt.Errorf("wireguard device %s: stop userspace process %d: %w", name, pid, err)
		}
		log.Info("wireguard userspace process stopped", "device", name, "pid", pid)
		// The process unlinks its socket on a clean exit; after a kill it
		// stays behind and would make the next start probe it first.
		_ = os.Remove(socketPath(name))
	}
	if link, err := netlink.LinkByName(name); err == nil {
		if err := netlink.LinkDel(link); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("wireguard device %s: delete link: %w", name, err)
		}
		log.Info("wireguard link deleted", "device", name)
	} else if !isLinkNotFound(err) {
		return fmt.Errorf("wireguard device %s: look up link: %w", name, err)
	}
	if pidFile != "" {
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wireguard device %s: remove %s: %w", name, pidFile, err)
		}
	}
	return nil
}
