// Package bpf will hold the eBPF C sources, their committed bpf2go
// objects, map wrappers and TC/cgroup attach. Not built yet.
package bpf
