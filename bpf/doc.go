// Package bpf holds strait's eBPF datapath: C sources, the objects bpf2go
// compiled from them (committed, so building strait needs no clang), and the
// Go code that loads, fills and attaches them.
//
//   - bpf/strict: strict mode, a tc egress classifier on the node's underlay
//     device that drops unencrypted IPv4 packets to remote pod CIDRs
//     (strait-agent --strict-mode-cidr).
//   - bpf/include: header shims shared by the C sources (see
//     bpf/include/asm/types.h).
//
// `make generate` (go generate ./bpf/...) rebuilds the objects; it needs clang,
// llvm-strip (Debian: clang, llvm) and the libbpf headers (libbpf-dev).
package bpf
