package wireguard

import "fmt"

// DeviceMTU returns the MTU for the WireGuard device on an underlay whose MTU
// is underlayMTU, when packets are additionally wrapped in a tunnel header of
// tunnelOverhead bytes (0 without a tunnel): underlayMTU - Overhead -
// tunnelOverhead. It is an error (wrapping ErrMTU) when underlayMTU is not in
// 1..65535, tunnelOverhead is negative, or the result is below 1280, the IPv6
// minimum.
func DeviceMTU(underlayMTU, tunnelOverhead int) (int, error) {
	if underlayMTU <= 0 || underlayMTU > 65535 {
		return 0, fmt.Errorf("%w: underlay MTU %d outside 1..65535", ErrMTU, underlayMTU)
	}
	if tunnelOverhead < 0 {
		return 0, fmt.Errorf("%w: negative tunnel overhead %d", ErrMTU, tunnelOverhead)
	}
	mtu := underlayMTU - Overhead - tunnelOverhead
	if mtu < minMTU {
		return 0, fmt.Errorf("%w: underlay MTU %d - %d (WireGuard) - %d (tunnel) = %d is below %d, the IPv6 minimum",
			ErrMTU, underlayMTU, Overhead, tunnelOverhead, mtu, minMTU)
	}
	return mtu, nil
}

// minMTU is the smallest MTU IPv6 allows on a link.
const minMTU = 1280
