package vm

import (
	"bufio"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The guest's init prints these around the binary's run, each on a line of
// its own and followed by the run's random nonce, so that nothing the
// binary prints can be taken for them.
const (
	StartMarker = "STRAIT-VMTEST-START"
	ExitMarker  = "STRAIT-VMTEST-EXIT"
	// InitNotePrefix starts the init's own messages (modules that did not
	// load, ...); they are always shown on the diagnostics writer.
	InitNotePrefix = "vmtest-init: "
)

// MarkerKind says which marker a line holds.
type MarkerKind int

const (
	// MarkerNone: no marker of this run.
	MarkerNone MarkerKind = iota
	// MarkerStart: the init is about to run the binary.
	MarkerStart
	// MarkerExit: the binary ended with Marker.Status.
	MarkerExit
)

// Marker is a parsed marker line.
type Marker struct {
	Kind   MarkerKind
	Status int // MarkerExit: 0..255
}

// ParseMarker finds this run's marker (nonce) in a console line. The marker
// may sit after other text on the line (a kernel message printed on the
// same line); the status must be a decimal 0..255 followed by the end of
// the line or a space.
func ParseMarker(line, nonce string) Marker {
	if nonce == "" {
		return Marker{}
	}
	line = strings.TrimRight(line, "\r\n")
	if i := strings.Index(line, ExitMarker+" "+nonce+" "); i >= 0 {
		rest := line[i+len(ExitMarker)+len(nonce)+2:]
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			rest = rest[:j]
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 && n <= 255 && rest == strconv.Itoa(n) {
			return Marker{Kind: MarkerExit, Status: n}
		}
		return Marker{}
	}
	if i := strings.Index(line, StartMarker+" "+nonce); i >= 0 {
		rest := line[i+len(StartMarker)+1+len(nonce):]
		if rest == "" || rest[0] == ' ' {
			return Marker{Kind: MarkerStart}
		}
	}
	return Marker{}
}

// kernelLine matches a printk line with its timestamp: "[    1.234567] ...".
var kernelLine = regexp.MustCompile(`^\[\s*\d+\.\d+\] `)

// IsKernelLine reports whether a console line is a kernel message.
func IsKernelLine(line string) bool { return kernelLine.MatchString(line) }

// Console splits the guest's serial console: the binary's output (between
// the start and exit markers, kernel messages removed) goes to Out; the
// init's notes to Diag; boot and kernel lines to Kernel when it is set.
// The last lines that were not shown are kept for error messages.
type Console struct {
	Nonce  string
	Out    io.Writer
	Diag   io.Writer        // may be nil
	Kernel io.Writer        // may be nil: boot and kernel lines are dropped
	Now    func() time.Time // default time.Now
	// TailLines is how many unshown lines to keep (default 40).
	TailLines int
	// OnExit, when set, is called once when the exit marker arrives.
	OnExit func(status int)
}

// ConsoleResult is what Copy saw.
type ConsoleResult struct {
	Started   bool
	Exited    bool
	Status    int
	StartedAt time.Time
	ExitedAt  time.Time
	Panic     string   // the first "Kernel panic" line, if any
	Tail      []string // last boot/kernel lines not shown
}

// Copy reads the console until EOF (the guest powered off, or the reader
// was closed) and returns what it saw. Errors are those of the writers or
// of reading (other than EOF).
func (c *Console) Copy(r io.Reader) (ConsoleResult, error) {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	keep := c.TailLines
	if keep <= 0 {
		keep = 40
	}
	var res ConsoleResult
	pendingBlank := 0
	remember := func(line string) {
		res.Tail = append(res.Tail, line)
		if len(res.Tail) > keep {
			res.Tail = res.Tail[len(res.Tail)-keep:]
		}
	}
	aside := func(line string) error {
		remember(line)
		if c.Kernel != nil {
			_, err := io.WriteString(c.Kernel, line+"\n")
			return err
		}
		return nil
	}
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		raw, rerr := br.ReadSlice('\n')
		complete := len(raw) > 0 && raw[len(raw)-1] == '\n'
		line := strings.TrimRight(string(raw), "\r\n")
		if len(raw) > 0 {
			if res.Panic == "" && strings.Contains(line, "Kernel panic") {
				res.Panic = strings.TrimSpace(line)
			}
			var err error
			switch m := ParseMarker(line, c.Nonce); {
			case m.Kind == MarkerExit && !res.Exited:
				res.Exited, res.Status, res.ExitedAt = true, m.Status, now()
				pendingBlank = 0
				if c.OnExit != nil {
					c.OnExit(m.Status)
				}
			case m.Kind == MarkerStart && !res.Started:
				res.Started, res.StartedAt = true, now()
			case !res.Started || res.Exited:
				if strings.HasPrefix(line, InitNotePrefix) && c.Diag != nil {
					_, err = io.WriteString(c.Diag, line+"\n")
				} else {
					err = aside(line)
				}
			case IsKernelLine(line):
				err = aside(line)
			case line == "" && complete:
				// The init prints an empty line before the exit marker in
				// case the binary's last line had no newline: hold blank
				// lines back until more output follows.
				pendingBlank++
			default:
				for ; pendingBlank > 0 && err == nil; pendingBlank-- {
					_, err = io.WriteString(c.Out, "\n")
				}
				if err == nil {
					if complete {
						line += "\n"
					}
					_, err = io.WriteString(c.Out, line)
				}
			}
			if err != nil {
				return res, err
			}
		}
		switch {
		case rerr == nil, errors.Is(rerr, bufio.ErrBufferFull):
		case errors.Is(rerr, io.EOF):
			return res, nil
		default:
			return res, rerr
		}
	}
}
