package lab

import "github.com/strait-net/strait/tools/lab/capture"

// CaptureConfig describes the lab's addresses to the underlay classifier:
// apiserver addresses (control plane), node addresses (the only legitimate
// ends of WireGuard and ESP) and pod CIDRs (plaintext if seen), with the
// payload marker to search for.
func (l *Lab) CaptureConfig(marker []byte) capture.Config {
	cfg := capture.Config{Marker: marker}
	for _, c := range l.Clusters() {
		cfg.APIAddrs = append(cfg.APIAddrs, c.APIAddr)
	}
	for _, n := range l.Nodes() {
		cfg.NodeAddrs = append(cfg.NodeAddrs, n.IP)
		cfg.PodCIDRs = append(cfg.PodCIDRs, n.PodCIDR)
	}
	return cfg
}
