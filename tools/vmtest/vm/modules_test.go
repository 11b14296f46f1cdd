package vm

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A cut of the cloud kernel's modules.dep.
const sampleModulesDep = `kernel/arch/x86/crypto/chacha-x86_64.ko: kernel/lib/crypto/libchacha.ko
kernel/arch/x86/crypto/poly1305-x86_64.ko:
kernel/arch/x86/crypto/curve25519-x86_64.ko: kernel/lib/crypto/libcurve25519-generic.ko
kernel/lib/crypto/libchacha.ko:
kernel/lib/crypto/libcurve25519-generic.ko:
kernel/lib/crypto/libchacha20poly1305.ko: kernel/arch/x86/crypto/chacha-x86_64.ko kernel/arch/x86/crypto/poly1305-x86_64.ko kernel/lib/crypto/libchacha.ko
kernel/net/ipv4/udp_tunnel.ko:
kernel/net/ipv6/ip6_udp_tunnel.ko:
kernel/drivers/net/wireguard/wireguard.ko: kernel/lib/crypto/libchacha20poly1305.ko kernel/arch/x86/crypto/chacha-x86_64.ko kernel/arch/x86/crypto/poly1305-x86_64.ko kernel/net/ipv6/ip6_udp_tunnel.ko kernel/net/ipv4/udp_tunnel.ko kernel/arch/x86/crypto/curve25519-x86_64.ko kernel/lib/crypto/libcurve25519-generic.ko kernel/lib/crypto/libchacha.ko
kernel/net/xfrm/xfrm_algo.ko:
kernel/net/ipv4/esp4.ko: kernel/net/xfrm/xfrm_algo.ko
kernel/crypto/gf128mul.ko:
kernel/crypto/ghash-generic.ko: kernel/crypto/gf128mul.ko
kernel/crypto/gcm.ko:
kernel/drivers/net/veth.ko:
`

const sampleBuiltin = "kernel/crypto/aes_generic.ko\nkernel/net/packet/af_packet.ko\n"

func sampleIndex(t *testing.T) *ModuleIndex {
	t.Helper()
	ix, err := ParseModulesDep(strings.NewReader(sampleModulesDep), "modules.dep")
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.AddBuiltin(strings.NewReader(sampleBuiltin), "modules.builtin"); err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestModuleClosure(t *testing.T) {
	ix := sampleIndex(t)
	for _, tc := range []struct {
		name    string
		modules []string
		paths   []string
		want    []string
		wantErr error
	}{
		{
			name:    "wireguard pulls its crypto and tunnels",
			modules: []string{"wireguard"},
			want: []string{
				"kernel/arch/x86/crypto/chacha-x86_64.ko", "kernel/arch/x86/crypto/curve25519-x86_64.ko",
				"kernel/arch/x86/crypto/poly1305-x86_64.ko", "kernel/drivers/net/wireguard/wireguard.ko",
				"kernel/lib/crypto/libchacha.ko", "kernel/lib/crypto/libchacha20poly1305.ko",
				"kernel/lib/crypto/libcurve25519-generic.ko", "kernel/net/ipv4/udp_tunnel.ko", "kernel/net/ipv6/ip6_udp_tunnel.ko",
			},
		},
		{
			name:    "dash and underscore spellings, shared deps once",
			modules: []string{"ghash_generic", "ghash-generic", "esp4", "gcm"},
			want:    []string{"kernel/crypto/gcm.ko", "kernel/crypto/gf128mul.ko", "kernel/crypto/ghash-generic.ko", "kernel/net/ipv4/esp4.ko", "kernel/net/xfrm/xfrm_algo.ko"},
		},
		{
			name:    "built-in needs no file",
			modules: []string{"aes_generic", "af_packet", "veth"},
			want:    []string{"kernel/drivers/net/veth.ko"},
		},
		{
			name:  "paths with deps",
			paths: ix.Under("kernel/crypto"),
			want:  []string{"kernel/crypto/gcm.ko", "kernel/crypto/gf128mul.ko", "kernel/crypto/ghash-generic.ko"},
		},
		{name: "unknown", modules: []string{"veth", "nosuchmod"}, wantErr: ErrUnknownModule},
		{name: "path not in index", paths: []string{"kernel/x.ko"}, wantErr: ErrModulesDep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ix.Closure(tc.modules, tc.paths)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("closure (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseModulesDepErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, wantMsg string
	}{
		{"no colon", "kernel/a.ko\n", "modules.dep:1: no ':'"},
		{"absolute path", "kernel/a.ko:\n/lib/b.ko: kernel/a.ko\n", "modules.dep:2: module path \"/lib/b.ko\""},
		{"not a module", "kernel/a.txt:\n", "modules.dep:1: module path"},
		{"bad dependency", "kernel/a.ko: ../b.ko\n", "modules.dep:1: dependency \"../b.ko\""},
		{"listed twice", "kernel/a.ko:\n\nkernel/a.ko:\n", "modules.dep:3: module \"kernel/a.ko\" listed twice"},
		{"dependency missing", "kernel/a.ko: kernel/b.ko\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := ParseModulesDep(strings.NewReader(tc.in), "modules.dep")
			if tc.wantMsg == "" {
				// Parses, but the closure names the missing dependency.
				if err != nil {
					t.Fatal(err)
				}
				_, err = ix.Closure([]string{"a"}, nil)
				if !errors.Is(err, ErrModulesDep) || !strings.Contains(err.Error(), "kernel/b.ko of kernel/a.ko") {
					t.Fatalf("closure error %v", err)
				}
				return
			}
			if !errors.Is(err, ErrModulesDep) || !strings.HasPrefix(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q, want prefix %q and ErrModulesDep", err, tc.wantMsg)
			}
		})
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/crypto/ghash-generic.ko":            "ghash_generic",
		"kernel/net/ipv4/esp4.ko.xz":                "esp4",
		"kernel/arch/x86/crypto/aesni-intel.ko.zst": "aesni_intel",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseModulesDep: any input parses or fails with ErrModulesDep; a
// parsed index resolves every module it lists or reports a missing
// dependency, and every path of a closure is in the index.
func FuzzParseModulesDep(f *testing.F) {
	f.Add([]byte(sampleModulesDep))
	f.Add([]byte("kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n"))
	f.Add([]byte("kernel/a.ko\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := ParseModulesDep(strings.NewReader(string(data)), "fuzz")
		if err != nil {
			if !errors.Is(err, ErrModulesDep) && !strings.Contains(err.Error(), "token too long") {
				t.Fatalf("error %v is not ErrModulesDep", err)
			}
			return
		}
		for p := range ix.deps {
			got, err := ix.Closure([]string{ModuleName(p)}, nil)
			if err != nil {
				if !errors.Is(err, ErrModulesDep) {
					t.Fatalf("closure of %s: %v", p, err)
				}
				continue
			}
			for _, q := range got {
				if _, ok := ix.deps[q]; !ok {
					t.Fatalf("closure of %s holds %s, not in the index", p, q)
				}
			}
		}
	})
}
