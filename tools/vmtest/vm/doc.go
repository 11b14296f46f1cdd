// Package vm runs a static binary inside a qemu guest booted with Debian's
// cloud kernel, which has what this machine's kernel lacks (the WireGuard
// module, ESP, AEAD crypto templates), and returns the binary's exit
// status. It is the library behind the tools/vmtest command, which is what
// `go test -exec`, hack/test-vm.sh and `make test-vm` use.
//
// # What Run does
//
//  1. Prepare, under an flock on the cache directory (parallel runs share it):
//     EnsurePackages apt-get installs HostPackages when one is missing
//     (`apt-get update` once first; nothing runs when all are there);
//     FetchKernel resolves linux-image-cloud-amd64 to its image package,
//     `apt-get download`s it and `dpkg -x`es it into the cache (never
//     installing it over the host's kernel) and runs `depmod -b`; the
//     resolution is reused while /var/lib/apt/lists is unchanged. The base
//     initramfs (busybox-static and its applet links, iproute2's ip, bridge,
//     tc and ss with the libraries ldd lists, the kernel modules: the
//     dependency closure from modules.dep of DefaultModules plus the crypto,
//     net/sched and net/xfrm directories for the kernel's own on-demand
//     requests) is written once per kernel and module set, gzip-compressed,
//     into the cache.
//  2. A per-run, uncompressed cpio archive is appended (the kernel unpacks
//     concatenated archives): the binary at /opt/vmtest/bin/<name>, the
//     --file trees, WorkDir/testdata at the same path as on the host, and
//     /init, a busybox sh script that mounts proc, sysfs, devtmpfs, devpts,
//     tmpfs on /run, bpffs on /sys/fs/bpf and cgroup2, modprobes the
//     modules, brings lo up, exports the environment (plus
//     STRAIT_VMTEST=1), prints the start marker, runs the binary from the
//     working directory, prints the exit marker with its status, syncs and
//     powers off. /tmp is the initramfs's own tmpfs.
//  3. qemu-system-x86_64 runs under TCG (-accel tcg,thread=multi, -cpu max
//     for AES-NI; nested KVM hangs on these machines) with -nographic
//     -no-reboot and panic=-1; Console splits its serial output: the
//     binary's lines (between the markers, kernel messages removed) go to
//     Config.Stdout, the init's notes to Config.Stderr, boot and kernel
//     lines to Config.Stderr only when Config.Verbose.
//
// The markers carry a random nonce per run, so nothing the binary prints
// can fake them. The guest's console merges the binary's stdout and
// stderr.
//
// # Errors
//
// Run returns the binary's status with a nil error whenever the exit
// marker arrived. Otherwise: ErrDynamicBinary / ErrNotExecutable (the
// binary cannot run in the guest), ErrNeedRoot / ErrApt (packages, kernel),
// ErrBadFlag (Config values), ErrTimeout (Config.Timeout passed) and
// ErrNoMarker (the guest ended without a status: kernel panic, the binary
// powered it off, qemu failed); both of the last carry the kernel's panic
// line, qemu's stderr and the last console lines. Parsers of outside input
// (ParseModulesDep, ParseFileSpec, ParseEnv, ParseModules, ParseMarker,
// Console) return errors naming the file and line or the flag value.
//
// Inside the guest, code can tell where it runs from strait.vmtest=1 on
// /proc/cmdline (tools/vmtest/internal/guestcheck.InGuest) or
// STRAIT_VMTEST=1 in the environment.
package vm
