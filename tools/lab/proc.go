package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one long-running process the lab started: detached (own
// session, stdin /dev/null, output appended to its log), so it outlives a
// `lab up` CLI that exits; Destroy finds it again through its pid file.
type process struct {
	name    string // e.g. "agent cluster1/node1"
	binary  string // base name, checked against /proc/<pid>/cmdline
	logPath string
	pidPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd.Wait returns
	waitErr error
}

// startProcess starts argv with its output appended to logPath and its pid
// written to pidPath.
func startProcess(name, binary, logPath, pidPath string, env []string, argv ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", name, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== lab: %s: %s\n", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	p := &process{name: name, binary: binary, logPath: logPath, pidPath: pidPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return nil, fmt.Errorf("%s: pid file: %w", name, err)
	}
	return p, nil
}

// running reports whether the process has not exited.
func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exitErr describes how the process ended, with the tail of its log.
func (p *process) exitErr() error {
	return fmt.Errorf("%s exited (%v); log %s:\n%s", p.name, p.waitErr, p.logPath, logTail(p.logPath, 25))
}

// stop sends sig and waits up to grace for the exit, then kills it.
func (p *process) stop(sig syscall.Signal, grace time.Duration) error {
	if !p.running() {
		os.Remove(p.pidPath)
		return nil
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		if sig != syscall.SIGKILL {
			os.Remove(p.pidPath)
			return fmt.Errorf("%s: still running %v after %v, killed", p.name, sig, grace)
		}
	}
	os.Remove(p.pidPath)
	return nil
}

// killPidFile stops the process named by a pid file, if its command line
// still names binary (so a recycled pid is never hit): SIGTERM, then
// SIGKILL after grace.
func killPidFile(pidPath, binary string, grace time.Duration) error {
	b, err := os.ReadFile(pidPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pid file %s: %w", pidPath, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("pid file %s: bad pid %q", pidPath, strings.TrimSpace(string(b)))
	}
	if !pidRuns(pid, binary) {
		os.Remove(pidPath)
		return nil
	}
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for pidRuns(pid, binary) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pidRuns(pid, binary) {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && pidRuns(pid, binary); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	os.Remove(pidPath)
	return nil
}

// pidRuns reports whether pid is a live (not zombie) process whose command
// line mentions binary.
func pidRuns(pid int, binary string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(binary)) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// logTail returns the last n lines of a log file (or why it cannot).
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// waitFor polls check every interval until it reports done, ctx ends (the
// error then carries check's last description) or check fails hard.
func waitFor(ctx context.Context, interval time.Duration, what string, check func(ctx context.Context) (done bool, state string, err error)) error {
	var last string
	for {
		done, state, err := check(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w; last state: %s", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// mkdirs creates directories 0700.
func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("directory %s: %w", d, err)
		}
	}
	return nil
}

// copyFile copies src to dst with mode.
func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Clean(dst))
}
