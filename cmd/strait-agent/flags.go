package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/strait-net/strait/agent"
	"github.com/strait-net/strait/agent/endpointapi"
	"github.com/strait-net/strait/bpf/strict"
	"github.com/strait-net/strait/clustermesh/schema"
	"github.com/strait-net/strait/encryption/wireguard"
	"github.com/strait-net/strait/identity"
)

// flags are the raw command-line values.
type flags struct {
	clusterName, nodeName, nodeIP, podCIDR string
	clusterID, maxClusters                 uint32
	kvEndpoints                            string
	kvCA, kvCert, kvKey                    string
	stateDir, socket                       string
	encryption                             string
	wgMode, wgDevice, wgBinary             string
	wgPort                                 int
	underlay                               string
	strictCIDRs                            string
	ipsecKeyFile                           string
	ipsecRotationDelay                     time.Duration
	metricsAddr, logLevel                  string
}

func (f *flags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.clusterName, "cluster-name", "", "this cluster's name (required)")
	fs.Uint32Var(&f.clusterID, "cluster-id", 0, "this cluster's ID, 1..max-connected-clusters (required)")
	fs.Uint32Var(&f.maxClusters, "max-connected-clusters", 255, "mesh size: 255 or 511")
	fs.StringVar(&f.nodeName, "node-name", "", "this node's name (required)")
	fs.StringVar(&f.nodeIP, "node-ip", "", "this node's IPv4 underlay address, the WireGuard endpoint (required)")
	fs.StringVar(&f.podCIDR, "pod-cidr", "", "this node's IPv4 pod CIDR (required)")
	fs.StringVar(&f.kvEndpoints, "kvstore-endpoints", "", "https://host:port of the cluster's strait-apiserver, comma-separated (required)")
	fs.StringVar(&f.kvCA, "kvstore-ca-file", "", "CA of the cluster's strait-apiserver (required)")
	fs.StringVar(&f.kvCert, "kvstore-cert-file", "", "client certificate for the strait-apiserver (required)")
	fs.StringVar(&f.kvKey, "kvstore-key-file", "", "key of the client certificate (required)")
	fs.StringVar(&f.stateDir, "state-dir", "/var/lib/strait", "state directory: wireguard.key, endpoints.json, strait-wireguard log and pid")
	fs.StringVar(&f.socket, "socket", endpointapi.DefaultSocket, "endpoint API socket (for strait-cni and straitctl)")
	fs.StringVar(&f.encryption, "encryption", agent.EncryptionWireGuard, "wireguard, ipsec or none")
	fs.StringVar(&f.wgMode, "wireguard-mode", string(wireguard.ModeAuto), "auto (kernel if available), kernel or userspace")
	fs.StringVar(&f.wgDevice, "wireguard-device", wireguard.DefaultDevice, "WireGuard device name")
	fs.IntVar(&f.wgPort, "wireguard-port", wireguard.DefaultPort, "WireGuard UDP port (the same on every node)")
	fs.StringVar(&f.wgBinary, "wireguard-binary", "", "strait-wireguard program for userspace mode (default: beside strait-agent, else $PATH)")
	fs.StringVar(&f.underlay, "underlay-device", "", "underlay device (default: the device holding --node-ip); its MTU is the underlay MTU")
	fs.StringVar(&f.strictCIDRs, "strict-mode-cidr", "", "strict mode: drop unencrypted egress to these IPv4 CIDRs on the underlay device (comma-separated)")
	fs.StringVar(&f.ipsecKeyFile, "ipsec-key-file", "", "IPsec key file (ipsec mode)")
	fs.DurationVar(&f.ipsecRotationDelay, "ipsec-rotation-delay", 5*time.Minute, "how long old IPsec keys are kept after a rotation (ipsec mode)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "host:port to serve Prometheus metrics on /metrics (optional)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
}

// settings are the validated flags.
type settings struct {
	cfg         agent.Config
	kvEndpoints []string
	kvCA        string
	kvCert      string
	kvKey       string
	socket      string
	wgMode      wireguard.Mode
	wgDevice    string
	wgPort      int
	wgBinary    string
	underlay    string
	strict      []netip.Prefix
	metricsAddr string
	logLevel    slog.Level

	ipsecKeyFile       string
	ipsecRotationDelay time.Duration
}

// flagError names the flag at fault.
func flagError(flag string, err error) error {
	return fmt.Errorf("invalid --%s: %w", flag, err)
}

// validate checks every flag, naming the first one at fault, before
// anything starts.
func (f *flags) validate() (*settings, error) {
	s := &settings{}
	if err := s.logLevel.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, flagError("log-level", fmt.Errorf("%q: want debug, info, warn or error", f.logLevel))
	}
	if f.clusterName == "" {
		return nil, flagError("cluster-name", errors.New("required"))
	}
	max := identity.ClusterMax(f.maxClusters)
	if max != identity.ClusterMax255 && max != identity.ClusterMax511 {
		return nil, flagError("max-connected-clusters", fmt.Errorf("%d: want 255 or 511", f.maxClusters))
	}
	if f.clusterID == 0 || f.clusterID > f.maxClusters {
		return nil, flagError("cluster-id", fmt.Errorf("%d: want 1..%d", f.clusterID, f.maxClusters))
	}
	id := identity.ClusterID(f.clusterID)
	if err := schema.ValidateClusterName(f.clusterName, id); err != nil {
		return nil, flagError("cluster-name", err)
	}
	if f.nodeName == "" {
		return nil, flagError("node-name", errors.New("required"))
	}
	if len(f.nodeName) > 253 || strings.ContainsAny(f.nodeName, "/ \t\n") {
		return nil, flagError("node-name", fmt.Errorf("%q: 1-253 characters without '/' or blanks", f.nodeName))
	}
	if f.nodeIP == "" {
		return nil, flagError("node-ip", errors.New("required"))
	}
	nodeIP, err := netip.ParseAddr(f.nodeIP)
	if err != nil || !nodeIP.Is4() || nodeIP.IsUnspecified() || nodeIP.IsMulticast() {
		return nil, flagError("node-ip", fmt.Errorf("%q: not a unicast IPv4 address", f.nodeIP))
	}
	if f.podCIDR == "" {
		return nil, flagError("pod-cidr", errors.New("required"))
	}
	podCIDR, err := netip.ParsePrefix(f.podCIDR)
	if err != nil || !podCIDR.Addr().Is4() || podCIDR != podCIDR.Masked() || podCIDR.Bits() > 30 || podCIDR.Bits() < 8 {
		return nil, flagError("pod-cidr", fmt.Errorf("%q: want a canonical IPv4 prefix between /8 and /30 (e.g. 10.1.1.0/24)", f.podCIDR))
	}
	if podCIDR.Contains(nodeIP) {
		return nil, flagError("pod-cidr", fmt.Errorf("%s contains --node-ip %s", podCIDR, nodeIP))
	}
	if f.kvEndpoints == "" {
		return nil, flagError("kvstore-endpoints", errors.New("required"))
	}
	for _, e := range strings.Split(f.kvEndpoints, ",") {
		e = strings.TrimSpace(e)
		u, err := url.Parse(e)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
			return nil, flagError("kvstore-endpoints", fmt.Errorf("%q: want https://host:port", e))
		}
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			return nil, flagError("kvstore-endpoints", fmt.Errorf("%q: bad port", e))
		}
		s.kvEndpoints = append(s.kvEndpoints, e)
	}
	for _, ff := range []struct{ name, path string }{{"kvstore-ca-file", f.kvCA}, {"kvstore-cert-file", f.kvCert}, {"kvstore-key-file", f.kvKey}} {
		if ff.path == "" {
			return nil, flagError(ff.name, errors.New("required"))
		}
		if st, err := os.Stat(ff.path); err != nil {
			return nil, flagError(ff.name, err)
		} else if !st.Mode().IsRegular() {
			return nil, flagError(ff.name, fmt.Errorf("%s: not a regular file", ff.path))
		}
	}
	s.kvCA, s.kvCert, s.kvKey = f.kvCA, f.kvCert, f.kvKey
	stateDir, err := filepath.Abs(f.stateDir)
	if f.stateDir == "" || err != nil {
		return nil, flagError("state-dir", fmt.Errorf("%q: want a directory path", f.stateDir))
	}
	if f.socket == "" || strings.HasSuffix(f.socket, "/") {
		return nil, flagError("socket", fmt.Errorf("%q: want a file path", f.socket))
	}
	if s.socket, err = filepath.Abs(f.socket); err != nil {
		return nil, flagError("socket", err)
	}
	switch f.encryption {
	case agent.EncryptionWireGuard, agent.EncryptionNone:
		if f.ipsecKeyFile != "" {
			return nil, flagError("ipsec-key-file", fmt.Errorf("only with --encryption=ipsec"))
		}
	case agent.EncryptionIPsec:
		if f.ipsecKeyFile == "" {
			return nil, flagError("ipsec-key-file", errors.New("required with --encryption=ipsec"))
		}
		if st, err := os.Stat(f.ipsecKeyFile); err != nil {
			return nil, flagError("ipsec-key-file", err)
		} else if !st.Mode().IsRegular() {
			return nil, flagError("ipsec-key-file", fmt.Errorf("%s: not a regular file", f.ipsecKeyFile))
		}
	default:
		return nil, flagError("encryption", fmt.Errorf("%q: want wireguard, ipsec or none", f.encryption))
	}
	s.ipsecKeyFile, s.ipsecRotationDelay = f.ipsecKeyFile, f.ipsecRotationDelay
	if f.ipsecRotationDelay <= 0 {
		return nil, flagError("ipsec-rotation-delay", fmt.Errorf("%v: must be positive", f.ipsecRotationDelay))
	}
	if s.wgMode, err = wireguard.ParseMode(f.wgMode); err != nil {
		return nil, flagError("wireguard-mode", err)
	}
	if err := wireguard.ValidateDeviceName(f.wgDevice); err != nil {
		return nil, flagError("wireguard-device", err)
	}
	if f.wgPort < 1 || f.wgPort > 65535 {
		return nil, flagError("wireguard-port", fmt.Errorf("%d: want 1..65535", f.wgPort))
	}
	if f.wgBinary != "" {
		if st, err := os.Stat(f.wgBinary); err != nil {
			return nil, flagError("wireguard-binary", err)
		} else if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			return nil, flagError("wireguard-binary", fmt.Errorf("%s: not an executable file", f.wgBinary))
		}
	}
	s.wgDevice, s.wgPort, s.wgBinary = f.wgDevice, f.wgPort, f.wgBinary
	if f.underlay != "" {
		if err := wireguard.ValidateDeviceName(f.underlay); err != nil {
			return nil, flagError("underlay-device", err)
		}
	}
	s.underlay = f.underlay
	if s.strict, err = strict.ParseCIDRs(f.strictCIDRs); err != nil {
		return nil, flagError("strict-mode-cidr", err)
	}
	if len(s.strict) > 0 && f.encryption == agent.EncryptionNone {
		return nil, flagError("strict-mode-cidr", fmt.Errorf("needs --encryption=wireguard or ipsec"))
	}
	if f.metricsAddr != "" {
		host, port, err := net.SplitHostPort(f.metricsAddr)
		if err != nil {
			return nil, flagError("metrics-addr", err)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return nil, flagError("metrics-addr", fmt.Errorf("%q: bad port", port))
		}
		_ = host
	}
	s.metricsAddr = f.metricsAddr
	s.cfg = agent.Config{
		Cluster: f.clusterName, ClusterID: id, Max: max, NodeName: f.nodeName,
		NodeIP: nodeIP, PodCIDR: podCIDR, StateDir: stateDir, Encryption: f.encryption,
	}
	return s, nil
}
