package ipsec

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// MemKernel is an in-memory twin of the kernel's XFRM tables for tests (this
// package's and the agent's). It keeps the kernel's identities and errors:
// AddState returns EEXIST for a taken (Dst, SPI), deletes return ENOENT for
// absent objects, UpdatePolicy replaces by (Dir, Src, Dst, Priority). Safe for
// concurrent use.
type MemKernel struct {
	mu       sync.Mutex
	states   map[stateID]State
	policies map[policyID]Policy
	writes   int
	// OnWrite, when set, is called after every successful write (with the
	// lock released) with a description of it: tests check invariants there.
	OnWrite func(op string)
}

// NewMemKernel returns empty tables.
func NewMemKernel() *MemKernel {
	return &MemKernel{states: map[stateID]State{}, policies: map[policyID]Policy{}}
}

// Writes counts successful writes so far.
func (m *MemKernel) Writes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writes
}

func (m *MemKernel) wrote(op string) {
	m.writes++
	hook := m.OnWrite
	m.mu.Unlock()
	if hook != nil {
		hook(op)
	}
	m.mu.Lock()
}

// States implements Kernel (sorted).
func (m *MemKernel) States(context.Context) ([]State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]State, 0, len(m.states))
	for _, s := range m.states {
		out = append(out, s)
	}
	sortStates(out)
	return out, nil
}

// AddState implements Kernel.
func (m *MemKernel) AddState(_ context.Context, s State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.states[s.id()]; ok {
		return fmt.Errorf("add %s: %w", s, unix.EEXIST)
	}
	m.states[s.id()] = s
	m.wrote("add " + s.String())
	return nil
}

// DeleteState implements Kernel.
func (m *MemKernel) DeleteState(_ context.Context, s State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.states[s.id()]; !ok {
		return fmt.Errorf("delete %s: %w", s, unix.ENOENT)
	}
	delete(m.states, s.id())
	m.wrote("delete " + s.String())
	return nil
}

// Policies implements Kernel (sorted).
func (m *MemKernel) Policies(context.Context) ([]Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Policy, 0, len(m.policies))
	for _, p := range m.policies {
		out = append(out, p)
	}
	sortPolicies(out)
	return out, nil
}

// UpdatePolicy implements Kernel.
func (m *MemKernel) UpdatePolicy(_ context.Context, p Policy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policies[p.id()] = p
	m.wrote("update " + p.String())
	return nil
}

// DeletePolicy implements Kernel.
func (m *MemKernel) DeletePolicy(_ context.Context, p Policy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.policies[p.id()]; !ok {
		return fmt.Errorf("delete %s: %w", p, unix.ENOENT)
	}
	delete(m.policies, p.id())
	m.wrote("delete " + p.String())
	return nil
}

// String renders the tables as sorted text, one object per line.
func (m *MemKernel) String() string {
	st, _ := m.States(context.Background())
	pol, _ := m.Policies(context.Background())
	var b strings.Builder
	for _, s := range st {
		b.WriteString(s.String() + "\n")
	}
	for _, p := range pol {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}
