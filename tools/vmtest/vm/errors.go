package vm

import "errors"

var (
	// ErrCPIOEntry: an archive entry has an invalid name, size or target.
	ErrCPIOEntry = errors.New("vm: invalid cpio entry")
	// ErrCPIOClosed: an entry was written after Close.
	ErrCPIOClosed = errors.New("vm: cpio archive closed")
	// ErrModulesDep: a modules.dep file is malformed (the error names file and line).
	ErrModulesDep = errors.New("vm: malformed modules.dep")
	// ErrUnknownModule: a requested kernel module is neither a loadable module nor built in.
	ErrUnknownModule = errors.New("vm: unknown kernel module")
	// ErrDynamicBinary: the binary to run is dynamically linked; the initramfs has no
	// libraries for it. Build it with CGO_ENABLED=0.
	ErrDynamicBinary = errors.New("vm: dynamically linked binary")
	// ErrNotExecutable: the binary to run is neither an x86-64 ELF executable nor a "#!" script.
	ErrNotExecutable = errors.New("vm: not an x86-64 executable")
	// ErrLibraryNotFound: ldd cannot find a shared library of a host program to copy in.
	ErrLibraryNotFound = errors.New("vm: shared library not found")
	// ErrBadFlag: a --file, --env or --modules value is malformed (the error names the value).
	ErrBadFlag = errors.New("vm: bad flag value")
	// ErrNeedRoot: Debian packages are missing and installing them needs root.
	ErrNeedRoot = errors.New("vm: need root to install packages")
	// ErrApt: apt-get, apt-cache or dpkg failed (the error carries the tail of its output).
	ErrApt = errors.New("vm: package tool failed")
	// ErrNoMarker: the guest stopped (kernel panic, crash, killed) without printing
	// the exit marker, so the binary's exit status is unknown.
	ErrNoMarker = errors.New("vm: guest ended without reporting an exit status")
	// ErrTimeout: the guest did not finish within Config.Timeout.
	ErrTimeout = errors.New("vm: guest timed out")
)
