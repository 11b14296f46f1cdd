package demo

import "errors"

var (
	// ErrOption: an option (flag) is invalid; the message names the flag.
	ErrOption = errors.New("demo: invalid option")
	// ErrNotRoot: the demo builds network namespaces and needs root.
	ErrNotRoot = errors.New("demo: needs root")
	// ErrExists: the work directory holds a running (or crashed) demo;
	// remove it with Down (straitctl demo down) first.
	ErrExists = errors.New("demo: a demo is already up in the work directory")
	// ErrNoDemo: Down found no demo in the work directory.
	ErrNoDemo = errors.New("demo: no demo in the work directory")
	// ErrUnreached: pods of different clusters did not reach each other.
	ErrUnreached = errors.New("demo: pods unreachable")
	// ErrNotEncrypted: the underlay carried something other than encrypted
	// pod traffic, control-plane TCP and ARP (or no encrypted traffic).
	ErrNotEncrypted = errors.New("demo: underlay not encrypted only")
	// ErrLeftover: teardown left namespaces or processes behind.
	ErrLeftover = errors.New("demo: teardown left things behind")
)

// Steps of a run, as StepError names them.
const (
	StepPreflight = "preflight"
	StepClusters  = "build clusters"
	StepCapture   = "start underlay capture"
	StepConnect   = "connect"
	StepReady     = "wait for the mesh"
	StepTraffic   = "traffic"
	StepProof     = "underlay proof"
	StepTeardown  = "teardown"
)

// StepError is a failed step of Run: the step's name and what went wrong
// (with the tail of the relevant log where there is one).
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return "demo: " + e.Step + ": " + e.Err.Error() }

func (e *StepError) Unwrap() error { return e.Err }
