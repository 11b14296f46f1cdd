package ipsec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"
)

// Reconciler makes the kernel's strait-owned XFRM states and policies equal
// to a Desired. It owns exactly: ESP states with reqid ReqID, policies whose
// template has reqid ReqID, BLOCK policies at BlockPriority and OUT allow
// policies without a template (bypass) at PolicyPriority. Everything else in the tables is left alone.
type Reconciler struct {
	k   Kernel
	log *slog.Logger
}

// NewReconciler returns a Reconciler writing through k.
func NewReconciler(k Kernel, log *slog.Logger) *Reconciler {
	return &Reconciler{k: k, log: log}
}

// Stats counts the writes of one Reconcile.
type Stats struct {
	StatesAdded, StatesReplaced, StatesRemoved      int
	PoliciesAdded, PoliciesUpdated, PoliciesRemoved int
}

// Writes is the total number of kernel writes.
func (s Stats) Writes() int {
	return s.StatesAdded + 2*s.StatesReplaced + s.StatesRemoved + s.PoliciesAdded + s.PoliciesUpdated + s.PoliciesRemoved
}

func ownsState(s State) bool { return s.ReqID == ReqID }

func ownsPolicy(p Policy) bool {
	switch {
	case p.Block:
		return p.Priority == BlockPriority && !p.TmplDst.IsValid() && p.ReqID == 0
	case !p.TmplDst.IsValid():
		// bypass policy: allow without template
		return p.Priority == PolicyPriority && p.Dir == DirOut && p.ReqID == 0
	}
	return p.ReqID == ReqID
}

// Reconcile reads the kernel's tables and writes only what differs from d,
// in an order that never lets pod traffic out in plaintext nor points a
// policy at a missing state:
//
//  1. missing BLOCK policies are added first;
//  2. missing states are added; a state whose (Dst, SPI) exists with other
//     content (a peer rebooted: new boot ID, new key) is deleted and re-added
//     (packets in that instant are dropped by the policy, not leaked);
//  3. policies are added or replaced in place (XFRM_MSG_UPDPOLICY is atomic:
//     no window without a policy);
//  4. owned policies no longer desired are deleted, then owned states no
//     longer desired, and last owned BLOCK policies no longer desired.
//
// Equal tables cause no write at all, so a restarted agent reconciling the
// same Desired changes nothing. Errors of single writes are collected; the
// first phase's failure stops before later phases that depend on it.
func (r *Reconciler) Reconcile(ctx context.Context, d Desired) (Stats, error) {
	var st Stats
	curStates, err := r.k.States(ctx)
	if err != nil {
		return st, err
	}
	curPolicies, err := r.k.Policies(ctx)
	if err != nil {
		return st, err
	}
	haveS := map[stateID]State{}
	for _, s := range curStates {
		if ownsState(s) {
			haveS[s.id()] = s
		}
	}
	haveP := map[policyID]Policy{}
	foreignP := map[policyID]bool{}
	for _, p := range curPolicies {
		if ownsPolicy(p) {
			haveP[p.id()] = p
		} else {
			foreignP[p.id()] = true
		}
	}
	wantS := map[stateID]State{}
	for _, s := range d.States {
		wantS[s.id()] = s
	}
	wantP := map[policyID]Policy{}
	for _, p := range d.Policies {
		wantP[p.id()] = p
	}

	// 1. block policies first.
	for _, p := range d.Policies {
		if !p.Block {
			continue
		}
		if cur, ok := haveP[p.id()]; ok && cur == p {
			continue
		}
		if err := r.k.UpdatePolicy(ctx, p); err != nil {
			return st, fmt.Errorf("install block policy: %w", err)
		}
		st.PoliciesAdded++
		r.log.Debug("xfrm block policy installed", "policy", p.String())
	}

	// 2. states before the policies that reference them.
	var errs []error
	for _, s := range d.States {
		cur, ok := haveS[s.id()]
		if ok && cur == s {
			continue
		}
		if !ok {
			if err := r.k.AddState(ctx, s); err != nil {
				if errors.Is(err, unix.EEXIST) {
					err = fmt.Errorf("%w (a state not owned by strait holds this destination and SPI)", err)
				}
				errs = append(errs, err)
				continue
			}
			st.StatesAdded++
			r.log.Debug("xfrm state added", "state", s.String())
			continue
		}
		if err := r.k.DeleteState(ctx, cur); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
			continue
		}
		if err := r.k.AddState(ctx, s); err != nil {
			errs = append(errs, err)
			continue
		}
		st.StatesReplaced++
		r.log.Info("xfrm state replaced (peer key changed)", "state", s.String())
	}
	if len(errs) > 0 {
		// Policies could point at missing states: stop here.
		return st, fmt.Errorf("install xfrm states: %w", errors.Join(errs...))
	}

	// 3. policies, replaced in place.
	for _, p := range d.Policies {
		if p.Block {
			continue
		}
		cur, ok := haveP[p.id()]
		if ok && cur == p {
			continue
		}
		if !ok && foreignP[p.id()] {
			errs = append(errs, fmt.Errorf("install %s: a policy not owned by strait has the same selector and priority", p))
			continue
		}
		if err := r.k.UpdatePolicy(ctx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			st.PoliciesUpdated++
			r.log.Debug("xfrm policy updated", "policy", p.String())
		} else {
			st.PoliciesAdded++
			r.log.Debug("xfrm policy added", "policy", p.String())
		}
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("install xfrm policies: %w", errors.Join(errs...))
	}

	// 4. removals: policies, states, then block policies.
	for _, p := range curPolicies {
		if !ownsPolicy(p) || p.Block {
			continue
		}
		if _, ok := wantP[p.id()]; ok {
			continue
		}
		if err := r.k.DeletePolicy(ctx, p); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
			continue
		}
		st.PoliciesRemoved++
		r.log.Debug("xfrm policy removed", "policy", p.String())
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("remove xfrm policies: %w", errors.Join(errs...))
	}
	for _, s := range curStates {
		if !ownsState(s) {
			continue
		}
		if _, ok := wantS[s.id()]; ok {
			continue
		}
		if err := r.k.DeleteState(ctx, s); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
			continue
		}
		st.StatesRemoved++
		r.log.Debug("xfrm state removed", "state", s.String())
	}
	for _, p := range curPolicies {
		if !ownsPolicy(p) || !p.Block {
			continue
		}
		if _, ok := wantP[p.id()]; ok {
			continue
		}
		if err := r.k.DeletePolicy(ctx, p); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
			continue
		}
		st.PoliciesRemoved++
	}
	if st.Writes() > 0 {
		r.log.Info("xfrm reconciled", "states_added", st.StatesAdded, "states_replaced", st.StatesReplaced, "states_removed", st.StatesRemoved,
			"policies_added", st.PoliciesAdded, "policies_updated", st.PoliciesUpdated, "policies_removed", st.PoliciesRemoved)
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("remove xfrm objects: %w", errors.Join(errs...))
	}
	return st, nil
}
