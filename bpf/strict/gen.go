package strict

// The program is compiled by bpf2go (pinned in go.mod with cilium/ebpf) with
// the clang on PATH; `make generate` runs this. The objects and Go bindings it
// writes (strict_bpfel.*, strict_bpfeb.*) are committed, so building strait
// does not need clang. ../include holds shims for <asm/*.h>, which clang's BPF
// target does not find in the host's multiarch include directory.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -type lpm_key strict bpf/strict.c -- -I../include
