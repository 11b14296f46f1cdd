// Package binaries finds strait's binaries for tests and tools that run them
// as processes (tools/lab, its end-to-end tests, tools/bench/datapath).
//
// Dir returns a directory holding strait-apiserver, strait-agent,
// strait-wireguard, strait-cni and straitctl (whatever ./cmd/... builds):
// the directory named by the environment variable STRAIT_BIN_DIR when it is
// set (prebuilt binaries, e.g. inside the kernel VM where there is no Go
// toolchain), otherwise a fresh temporary directory into which it runs
// `go build -o DIR/ ./cmd/...` from the module root. Callers build once (in
// TestMain) and pass the directory on; Remove deletes a directory Dir built
// and leaves a STRAIT_BIN_DIR alone.
//
// Errors: ErrNotDirectory when STRAIT_BIN_DIR is not a directory,
// ErrMissing when a required binary is absent from it, ErrNoModule when
// the module root cannot be found; a failed build returns the compiler's
// output in the error.
package binaries
