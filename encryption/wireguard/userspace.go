package wireguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
)

func socketPath(name string) string { return filepath.Join(SocketDir, name+".sock") }

// userspaceBinary resolves cfg.UserspaceBinary.
func userspaceBinary(cfg DeviceConfig) (string, error) {
	if cfg.UserspaceBinary != "" {
		return cfg.UserspaceBinary, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), UserspaceBinaryName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	p, err := exec.LookPath(UserspaceBinaryName)
	if err != nil {
		return "", fmt.Errorf("%w: %s not beside this executable nor on $PATH: %w", ErrUserspaceStart, UserspaceBinaryName, err)
	}
	return p, nil
}

// startUserspace starts strait-wireguard for cfg.Name detached from this
// process, on the calling thread (so it inherits the thread's network and
// mount namespaces), and waits until wgctrl can read the device and its link
// exists. It returns the process id.
func startUserspace(ctx context.Context, log *slog.Logger, c *wgctrl.Client, cfg DeviceConfig) (int, error) {
	bin, err := userspaceBinary(cfg)
	if err != nil {
		return 0, fmt.Errorf("wireguard device %s: %w", cfg.Name, err)
	}
	if cfg.StateDir == "" {
		return 0, fmt.Errorf("wireguard device %s: %w: StateDir is required to start %s", cfg.Name, ErrInvalidConfig, bin)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return 0, fmt.Errorf("wireguard device %s: create state dir: %w", cfg.Name, err)
	}
	logPath := filepath.Join(cfg.StateDir, LogFileName)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return 0, fmt.Errorf("wireguard device %s: open log: %w", cfg.Name, err)
	}
	defer logFile.Close()
	logStart, _ := logFile.Seek(0, io.SeekEnd)

	level := "info"
	if log.Enabled(context.Background(), slog.LevelDebug) {
		level = "debug"
	}
	cmd := exec.Command(bin, "--mtu", strconv.Itoa(cfg.MTU), "--log-level", level, cfg.Name)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("wireguard device %s: %w: start %s: %w", cfg.Name, ErrUserspaceStart, bin, err)
	}
	pid := cmd.Process.Pid
	// Reap the child whenever it exits (it normally outlives this call and
	// often this process); the goroutine does no namespace-bound work.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	log.Info("wireguard userspace process started", "device", cfg.Name, "binary", bin, "pid", pid, "log", logPath)
	if err := writePidFile(filepath.Join(cfg.StateDir, PidFileName), pid); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return 0, fmt.Errorf("wireguard device %s: %w", cfg.Name, err)
	}

	pidFile := filepath.Join(cfg.StateDir, PidFileName)
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			_ = os.Remove(pidFile)
			tail := logTail(logPath, logStart)
			code := -1
			if cmd.ProcessState != nil {
				code = cmd.ProcessState.ExitCode()
			}
			switch code {
			case ExitNoTUN:
				return 0, fmt.Errorf("wireguard device %s: %w: %s exited with status %d: %s", cfg.Name, ErrNoTUN, bin, code, tail)
			default:
				return 0, fmt.Errorf("wireguard device %s: %w: %s exited (%v) before its device appeared; log %s: %s",
					cfg.Name, ErrUserspaceStart, bin, waitErr, logPath, tail)
			}
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			_ = os.Remove(pidFile)
			return 0, fmt.Errorf("wireguard device %s: %w: %s (pid %d) did not serve %s: %w; log %s: %s",
				cfg.Name, ErrUserspaceStart, bin, pid, socketPath(cfg.Name), ctx.Err(), logPath, logTail(logPath, logStart))
		case <-tick.C:
		}
		if _, err := os.Stat(socketPath(cfg.Name)); err != nil {
			continue
		}
		if _, err := netlink.LinkByName(cfg.Name); err != nil {
			continue
		}
		if _, err := c.Device(cfg.Name); err != nil {
			continue
		}
		// The socket must be served by our child, not a same-named device
		// of another namespace.
		if p, err := socketPeerPid(cfg.Name); err != nil || p != pid {
			continue
		}
		return pid, nil
	}
}

func logTail(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const max = 2048
	fi, err := f.Stat()
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if fi.Size()-from > max {
		from = fi.Size() - max
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return "(no log: " + err.Error() + ")"
	}
	b, _ := io.ReadAll(f)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(log empty)"
	}
	return s
}

func writePidFile(path string, pid int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file %s: bad pid %q", path, bytes.TrimSpace(b))
	}
	return pid, nil
}

// isOurProcess reports whether pid is a live strait-wireguard serving name in
// this network namespace.
func isOurProcess(pid int, name string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != UserspaceBinaryName || args[len(args)-1] != name {
		return false
	}
	same, err := sameNetns(pid)
	return err == nil && same
}

// socketPeerPid connects to the UAPI socket of name and returns the pid of
// the process serving it (SO_PEERCRED).
func socketPeerPid(name string) (int, error) {
	conn, err := net.DialTimeout("unix", socketPath(name), time.Second)
	if err != nil {
		return 0, fmt.Errorf("connect UAPI socket: %w", err)
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("UAPI socket: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("UAPI socket: %w", err)
	}
	if credErr != nil {
		return 0, fmt.Errorf("UAPI socket peer credentials: %w", credErr)
	}
	return int(cred.Pid), nil
}

// sameNetns reports whether process pid is in the calling thread's network
// namespace.
func sameNetns(pid int) (bool, error) {
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return false, fmt.Errorf("network namespace of pid %d: %w", pid, err)
	}
	ours, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		return false, fmt.Errorf("own network namespace: %w", err)
	}
	return theirs == ours, nil
}

// processGone reports whether pid no longer runs (absent or a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// Field 3, after "(comm)" which may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// stopProcess sends SIGTERM and waits for pid to exit; when ctx ends first
// it sends SIGKILL and waits a little more.
func stopProcess(ctx context.Context, pid int) error {
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("SIGTERM: %w", err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !processGone(pid) {
		select {
		case <-ctx.Done():
			_ = unix.Kill(pid, unix.SIGKILL)
			deadline := time.Now().Add(5 * time.Second)
			for !processGone(pid) {
				if time.Now().After(deadline) {
					return fmt.Errorf("still running after SIGKILL: %w", ctx.Err())
				}
				time.Sleep(10 * time.Millisecond)
			}
			return nil
		case <-tick.C:
		}
	}
	return nil
}
