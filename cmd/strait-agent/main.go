package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/strait-net/strait/agent"
	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/agent/route"
	"github.com/strait-net/strait/bpf/strict"
	"github.com/strait-net/strait/clustermesh/kvstore"
	"github.com/strait-net/strait/encryption/ipsec"
	"github.com/strait-net/strait/encryption/wireguard"
	"github.com/strait-net/strait/internal/atomicfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCommand(os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strait-agent:", err)
		os.Exit(1)
	}
}

func newCommand(stderr io.Writer) *cobra.Command {
	f := &flags{}
	cmd := &cobra.Command{
		Use:           "strait-agent",
		Short:         "strait node agent: publishes the node and its pods, programs WireGuard peers and routes to every node of the mesh",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := f.validate()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: s.logLevel}))
			return run(cmd.Context(), log, s)
		},
	}
	cmd.SetErr(stderr)
	f.register(cmd.Flags())
	return cmd
}

// Files in /proc/sys of the node's network namespace.
const (
	bootIDFile    = "/proc/sys/kernel/random/boot_id"
	ipForwardFile = "/proc/sys/net/ipv4/ip_forward"
	rpFilterAll   = "/proc/sys/net/ipv4/conf/all/rp_filter"
)

// run starts the agent in the current network namespace (the node's) and
// returns when ctx ends, leaving the datapath in place.
func run(ctx context.Context, log *slog.Logger, s *settings) error {
	bootID, err := os.ReadFile(bootIDFile)
	if err != nil {
		return fmt.Errorf("boot ID: %w", err)
	}
	s.cfg.BootID = strings.TrimSpace(string(bootID))
	// Refuse IPsec on a kernel without ESP before configuring anything.
	if s.cfg.Encryption == agent.EncryptionIPsec {
		if err := ipsec.CheckKernel(); err != nil {
			return fmt.Errorf("--encryption=ipsec: %w", err)
		}
	}
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	// Pods' traffic is forwarded; WireGuard's decrypted packets arrive on
	// the device without a route back through it, so no strict reverse
	// path check (the effective value is the maximum of all and the
	// device's).
	if err := writeSysctl(ipForwardFile, "1"); err != nil {
		return err
	}
	if err := writeSysctl(rpFilterAll, "0"); err != nil {
		return err
	}

	underlay, err := underlayLink(s)
	if err != nil {
		return err
	}
	s.cfg.UnderlayMTU = underlay.Attrs().MTU
	log.Info("Underlay device", "device", underlay.Attrs().Name, "mtu", s.cfg.UnderlayMTU)

	// Strict mode first: nothing may leave in plaintext, even before the
	// first peer or route exists. The filter stays when the agent stops.
	if len(s.strict) > 0 {
		prog, err := strict.Attach(underlay.Attrs().Index, s.strict)
		if err != nil {
			return fmt.Errorf("strict mode on %s: %w", underlay.Attrs().Name, err)
		}
		defer prog.Release()
		log.Info("Strict mode attached", "device", underlay.Attrs().Name, "cidrs", fmt.Sprint(s.strict))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	deps := agent.Deps{Registry: reg}

	if s.cfg.Encryption == agent.EncryptionWireGuard {
		key, created, err := wireguard.LoadOrCreateKey(filepath.Join(s.cfg.StateDir, wireguard.KeyFileName))
		if err != nil {
			return err
		}
		if created {
			log.Info("Generated WireGuard key", "file", filepath.Join(s.cfg.StateDir, wireguard.KeyFileName))
		}
		mtu, err := wireguard.DeviceMTU(s.cfg.UnderlayMTU, 0)
		if err != nil {
			return fmt.Errorf("underlay %s: %w", underlay.Attrs().Name, err)
		}
		dcfg := wireguard.DeviceConfig{
			Name: s.wgDevice, ListenPort: s.wgPort, MTU: mtu, PrivateKey: key,
			Mode: s.wgMode, UserspaceBinary: s.wgBinary, StateDir: s.cfg.StateDir,
		}
		dev, err := wireguard.EnsureDevice(ctx, log, dcfg)
		if err != nil {
			return err
		}
		wgc, err := wgctrl.New()
		if err != nil {
			return fmt.Errorf("wgctrl: %w", err)
		}
		defer wgc.Close()
		rt, err := route.NewKernel()
		if err != nil {
			return err
		}
		defer rt.Close()
		deps.Routes = rt
		deps.WireGuard = &agent.WireGuard{
			Client: wgc, Device: dev.Name(), Type: dev.Type(), Index: dev.Index(), MTU: mtu,
			PublicKey: key.PublicKey(), Port: s.wgPort,
		}
		log.Info("WireGuard device ready", "device", dev.Name(), "type", dev.Type(), "mtu", mtu, "publicKey", key.PublicKey().String())
	}

	// The agent is built after the IPsec manager that calls it back.
	var built atomic.Pointer[agent.Agent]
	if s.cfg.Encryption == agent.EncryptionIPsec {
		rt, err := route.NewKernel()
		if err != nil {
			return err
		}
		defer rt.Close()
		advFile := filepath.Join(s.cfg.StateDir, "ipsec-advertised")
		mgr, err := ipsec.NewManager(ipsec.ManagerConfig{
			Log: log, Kernel: ipsec.NewNetlinkKernel(nil), KeyFile: s.ipsecKeyFile,
			RotationDelay: s.ipsecRotationDelay, BlockCIDRs: s.strict,
			Resume: readAdvertised(advFile, s.cfg.BootID),
			Advertise: func(ctx context.Context, spi uint8) error {
				a := built.Load()
				if a == nil {
					return errors.New("agent not started")
				}
				if err := a.AdvertiseIPsecKey(ctx, spi); err != nil {
					return err
				}
				return writeAdvertised(advFile, spi, s.cfg.BootID)
			},
		})
		if err != nil {
			return fmt.Errorf("--ipsec-key-file: %w", err)
		}
		deps.IPsec, deps.Routes, deps.IPsecAdvertised = mgr, rt, mgr.Advertised()
		deps.Underlay = route.Device{Index: underlay.Attrs().Index, MTU: underlay.Attrs().MTU}
	}

	if s.cfg.Encryption == agent.EncryptionNone {
		// No encryption: remote pod CIDRs are routed via the node's
		// address on the underlay, in plaintext.
		rt, err := route.NewKernel()
		if err != nil {
			return err
		}
		defer rt.Close()
		deps.Routes = rt
		deps.Underlay = route.Device{Index: underlay.Attrs().Index, MTU: underlay.Attrs().MTU}
	}

	kv, err := kvstore.New(ctx, log, kvstore.Config{
		Endpoints: s.kvEndpoints, TrustedCAFile: s.kvCA, CertFile: s.kvCert, KeyFile: s.kvKey,
	})
	if err != nil {
		return fmt.Errorf("kvstore: %w", err)
	}
	// On exit the session lease is not revoked: the node, its ipcache
	// entries and identity references stay published (for the lease TTL)
	// while the agent restarts, and remote peers keep their routes to
	// this node.
	defer kv.CloseKeepLease()
	deps.KV = kv

	a, err := agent.New(log, s.cfg, deps)
	if err != nil {
		return err
	}
	built.Store(a)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Run(gctx) })
	g.Go(func() error { return endpointapi.Serve(gctx, log, s.socket, a.Backend()) })
	if s.metricsAddr != "" {
		l, err := net.Listen("tcp", s.metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		srv := &http.Server{Handler: metricsMux(reg), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			go func() {
				<-gctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics: %w", err)
			}
			return nil
		})
		log.Info("Serving metrics", "addr", l.Addr().String())
	}
	log.Info("Agent running", "socket", s.socket)
	err = g.Wait()
	log.Info("Agent stopped; device, peers and routes left in place")
	return err
}

func metricsMux(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// underlayLink returns --underlay-device, or the link holding --node-ip.
func underlayLink(s *settings) (netlink.Link, error) {
	if s.underlay != "" {
		l, err := netlink.LinkByName(s.underlay)
		if err != nil {
			return nil, fmt.Errorf("--underlay-device %s: %w", s.underlay, err)
		}
		return l, nil
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IP.Equal(s.cfg.NodeIP.AsSlice()) {
			l, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("device of --node-ip %s: %w", s.cfg.NodeIP, err)
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("--node-ip %s: no device in this network namespace holds it (set --underlay-device)", s.cfg.NodeIP)
}

func writeSysctl(path, value string) error {
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == value {
		return nil
	}
	if err := os.WriteFile(path, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", path, value, err)
	}
	return nil
}

// readAdvertised returns the IPsec key index recorded in path by this
// boot (the file holds "SPI BOOTID"), or 0.
func readAdvertised(path, bootID string) uint8 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var spi uint8
	var boot string
	if _, err := fmt.Sscanf(string(b), "%d %s", &spi, &boot); err != nil || boot != bootID {
		return 0
	}
	return spi
}

// writeAdvertised records the advertised key index with the boot ID.
func writeAdvertised(path string, spi uint8, bootID string) error {
	if err := atomicfile.Write(path, []byte(fmt.Sprintf("%d %s\n", spi, bootID)), 0o600); err != nil {
		return fmt.Errorf("record advertised ipsec key: %w", err)
	}
	return nil
}
