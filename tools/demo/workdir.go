package demo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strait-net/strait/tools/lab"
)

// MarkerFile marks a directory as a demo's work directory, so a later run
// or Down may remove what an earlier run left there (and nothing else).
const MarkerFile = "strait-demo"

const markerText = "work directory of `straitctl demo`: removed by `straitctl demo down --dir <this directory>`\n"

// clusterDirRe matches the per-cluster directories tools/lab creates in
// its work directory.
var clusterDirRe = regexp.MustCompile(`^cluster[1-9]$`)

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// prepareDir makes dir ready for a new lab: created when absent; refused
// when it holds a lab record (a demo is up or crashed) or foreign files;
// cleared of a previous run's files when it is a demo directory.
func prepareDir(dir string) error {
	if exists(filepath.Join(dir, lab.RecordFile)) {
		return fmt.Errorf("%s: %w (or it crashed): remove it with `straitctl demo down --dir %s`", dir, ErrExists, dir)
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return optionError(FlagDir, "%v", err)
		}
	case err != nil:
		return optionError(FlagDir, "%v", err)
	case len(ents) > 0 && !exists(filepath.Join(dir, MarkerFile)):
		return optionError(FlagDir, "%s is not empty and not a demo directory (no %s file): name an empty or new directory", dir, MarkerFile)
	default:
		if err := removeWorkFiles(dir); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, MarkerFile), []byte(markerText), 0o600); err != nil {
		return optionError(FlagDir, "%v", err)
	}
	return nil
}

// removeWorkFiles removes what tools/lab writes into its work directory
// (cluster<N>/, ipsec.key in ipsec mode, the record's temporary file);
// the marker and anything else stay.
func removeWorkFiles(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("work directory %s: %w", dir, err)
	}
	for _, e := range ents {
		if clusterDirRe.MatchString(e.Name()) || e.Name() == lab.RecordFile+".tmp" || e.Name() == "ipsec.key" {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("work directory %s: %w", dir, err)
			}
		}
	}
	return nil
}

// clearDir removes a finished demo's files, the marker, and dir itself
// when nothing else is left in it.
func clearDir(dir string) error {
	if err := removeWorkFiles(dir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, MarkerFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("work directory %s: %w", dir, err)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
		os.Remove(dir)
	}
	return nil
}

// chooseName picks the lab name: DefaultName unless namespaces of another
// lab of that name exist, then "d<pid>".
func chooseName() (string, error) {
	left, err := namespaces(DefaultName)
	if err != nil {
		return "", err
	}
	if len(left) == 0 {
		return DefaultName, nil
	}
	return "d" + strconv.Itoa(os.Getpid()%10_000_000), nil
}

// namespaces lists the named network namespaces of lab name.
func namespaces(name string) ([]string, error) {
	ents, err := os.ReadDir(lab.NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), lab.Prefix+name+"-") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// processes lists the live processes (pid → command line) of the demo in
// dir: strait processes (see ours) whose command line names dir or whose
// output goes to a log under dir (an agent's strait-wireguard names no
// path on its command line), and those named by a pid file under dir.
func processes(dir string) (map[int]string, error) {
	out := map[int]string{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cl, ok := liveCmdline(pid)
		if !ok {
			continue
		}
		if !ours(cl) {
			continue
		}
		if strings.Contains(cl, dir+"/") || outputUnder(pid, dir) {
			out[pid] = cl
		}
	}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pid") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			return nil
		}
		if cl, ok := liveCmdline(pid); ok && ours(cl) {
			out[pid] = cl
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pid files under %s: %w", dir, err)
	}
	return out, nil
}

// ours reports whether a command line is one a lab starts: a strait
// binary, or the `ip netns exec` / `sh -c` wrapper that is about to exec
// one (never, say, a `tail -f` of a log in the work directory).
func ours(cmdline string) bool {
	argv0, _, _ := strings.Cut(cmdline, " ")
	switch filepath.Base(argv0) {
	case "ip", "sh":
		return strings.Contains(cmdline, "/strait-")
	}
	return strings.HasPrefix(filepath.Base(argv0), "strait-")
}

// outputUnder reports whether process pid writes its standard output or
// error to a file under dir (every process of a lab logs into its work
// directory).
func outputUnder(pid int, dir string) bool {
	for _, fd := range []int{1, 2} {
		if p, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); err == nil && strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// liveCmdline returns the command line of a live (not zombie) process.
func liveCmdline(pid int) (string, bool) {
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cl) == 0 {
		return "", false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return "", false
	}
	return string(bytes.ReplaceAll(bytes.TrimRight(cl, "\x00"), []byte{0}, []byte{' '})), true
}

// Leftovers reports what a demo of lab name in dir left running: its
// namespaces and processes. Empty slices: nothing.
func Leftovers(name, dir string) (netns []string, procs []string, err error) {
	netns, err = namespaces(name)
	if err != nil {
		return nil, nil, err
	}
	ps, err := processes(dir)
	if err != nil {
		return nil, nil, err
	}
	for pid, cl := range ps {
		procs = append(procs, fmt.Sprintf("%d %s", pid, cl))
	}
	return netns, procs, nil
}

// logTail returns the last n lines of a log file, indented (or why it
// cannot).
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("  (%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// stopAll sends SIGTERM to every process of procs at once, waits up to
// grace for all to exit, then kills the rest. Stopping the apiservers
// together matters: each one's etcd waits, when it stops, for the watches
// of the others' remote-cluster caches, which end when those stop too.
// Only processes whose command line is still the recorded one are
// signalled (a pid reused since is left alone).
func stopAll(procs map[int]string, grace time.Duration) {
	alive := func() []int {
		var out []int
		for pid, cl := range procs {
			if now, ok := liveCmdline(pid); ok && now == cl {
				out = append(out, pid)
			}
		}
		return out
	}
	for _, pid := range alive() {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for len(alive()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range alive() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
