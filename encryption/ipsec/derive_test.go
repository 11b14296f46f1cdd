package ipsec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
)

const (
	bootA = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	bootB = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
)

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// The expected values were computed outside Go (Python hashlib) from the
// byte strings spelled out in each case.
func TestDeriveNodePairKeyVectors(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.2.11")
	tests := []struct {
		name             string
		global           []byte
		src, dst         netip.Addr
		srcBoot, dstBoot string
		want             string
	}{
		// sha256(00..13 ‖ c6 12 01 0b ‖ c6 12 02 0b ‖ bootA ‖ bootB)[:20]
		{name: "gcm A to B", global: seq(20), src: a, dst: b, srcBoot: bootA, dstBoot: bootB, want: "89594534e1f56c05b36decd5b88ed1c27e2e2873"},
		{name: "gcm B to A", global: seq(20), src: b, dst: a, srcBoot: bootB, dstBoot: bootA, want: "482f86a9f84e7e28daf142cf81d8b303a1aa4afd"},
		{name: "v4-mapped enters as 4 bytes", global: seq(20), src: netip.MustParseAddr("::ffff:198.18.1.11"), dst: b, srcBoot: bootA, dstBoot: bootB, want: "89594534e1f56c05b36decd5b88ed1c27e2e2873"},
		{name: "boot IDs longer than 36 are cut", global: seq(20), src: a, dst: b, srcBoot: bootA + "\n", dstBoot: bootB + "xyz", want: "89594534e1f56c05b36decd5b88ed1c27e2e2873"},
		{name: "ipv6 16 bytes", global: seq(20), src: netip.MustParseAddr("fd00::1"), dst: netip.MustParseAddr("fd00::2"), srcBoot: bootA, dstBoot: bootB, want: "3d2238ad14c4ac78ef477315c64f723fe6ada5fa"},
		// 64-byte key (> 32): sha512
		{name: "sha512 above 32 bytes", global: seq(64), src: a, dst: b, srcBoot: bootA, dstBoot: bootB,
			want: "385f49e5a3ecc0ab3482db1fa824a3a028bb0dbd4db6371d1b2f70e785e74c11f1dba5020ef63914ba154df9b1042bdeaa09a1b30e8bbcc0403035f5c2e027eb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeriveNodePairKey(tt.global, tt.src, tt.dst, tt.srcBoot, tt.dstBoot)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != tt.want {
				t.Errorf("got %x\nwant %s", got, tt.want)
			}
		})
	}
}

// The same vector again, hashed by hand in Go from the concatenated bytes.
func TestDeriveNodePairKeyByHand(t *testing.T) {
	in := append(seq(20), 198, 18, 1, 11, 198, 18, 2, 11)
	in = append(in, bootA...)
	in = append(in, bootB...)
	sum := sha256.Sum256(in)
	got, err := DeriveNodePairKey(seq(20), netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.2.11"), bootA, bootB)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sum[:20]) {
		t.Errorf("got %x want %x", got, sum[:20])
	}
}

func TestDeriveNodePairKeyProperties(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.2.11")
	global := seq(20)
	aOut, _ := DeriveNodePairKey(global, a, b, bootA, bootB)
	aIn, _ := DeriveNodePairKey(global, b, a, bootB, bootA)
	// B computes with its own view: local B, remote A.
	bOut, _ := DeriveNodePairKey(global, b, a, bootB, bootA)
	bIn, _ := DeriveNodePairKey(global, a, b, bootA, bootB)
	if !bytes.Equal(aOut, bIn) || !bytes.Equal(bOut, aIn) {
		t.Fatal("A's OUT key differs from B's IN key")
	}
	if bytes.Equal(aOut, aIn) {
		t.Fatal("both directions share a key")
	}
	const rebooted = "0f0e0d0c-0b0a-4908-8706-050403020100"
	aOut2, _ := DeriveNodePairKey(global, a, b, rebooted, bootB)
	if bytes.Equal(aOut, aOut2) {
		t.Fatal("a new boot ID kept the key")
	}
	if bytes.Equal(aOut[16:], global[16:]) {
		t.Fatal("GCM salt not derived")
	}
}

func TestDeriveNodePairKeyErrors(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.2.11")
	if _, err := DeriveNodePairKey(seq(20), a, b, "short", bootB); !errors.Is(err, ErrBootID) {
		t.Errorf("short source boot ID: %v", err)
	}
	if _, err := DeriveNodePairKey(seq(20), a, b, bootA, ""); !errors.Is(err, ErrBootID) {
		t.Errorf("empty destination boot ID: %v", err)
	}
	if _, err := DeriveNodePairKey(seq(20), netip.Addr{}, b, bootA, bootB); !errors.Is(err, ErrNode) {
		t.Errorf("invalid address: %v", err)
	}
}
