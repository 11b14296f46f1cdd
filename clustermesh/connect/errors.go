package connect

import "errors"

// Errors of this package. Every returned error wraps one of them and names
// the clusters (and files) concerned and, for refusals, the fix.
var (
	// ErrContext: a context file is unreadable or a field is invalid.
	ErrContext = errors.New("connect: invalid context file")
	// ErrUnreachable: a cluster's apiserver could not be dialled or read.
	ErrUnreachable = errors.New("connect: apiserver unreachable")
	// ErrCertificate: a file of a cluster's certDir is missing or unusable.
	ErrCertificate = errors.New("connect: unusable certificate")
	// ErrClusterConfig: what the apiserver announces in
	// cilium/cluster-config/<cluster> disagrees with the context file.
	ErrClusterConfig = errors.New("connect: cluster config does not match the context")
	// ErrNameClash: two listed clusters have the same name.
	ErrNameClash = errors.New("connect: cluster names clash")
	// ErrIDClash: two clusters have the same cluster ID.
	ErrIDClash = errors.New("connect: cluster IDs clash")
	// ErrIDRange: a cluster's ID is above its peer's max-connected-clusters.
	ErrIDRange = errors.New("connect: cluster ID out of the peer's range")
	// ErrMaxMismatch: the clusters run different max-connected-clusters.
	ErrMaxMismatch = errors.New("connect: max-connected-clusters differ")
	// ErrPodCIDROverlap: pod CIDRs of two clusters overlap.
	ErrPodCIDROverlap = errors.New("connect: pod CIDRs overlap")
	// ErrCAMismatch: a cluster's apiserver serves a certificate that the
	// trust bundle written for it would not verify (see doc.go).
	ErrCAMismatch = errors.New("connect: CA mismatch")
	// ErrAlreadyConnected: a cluster already has a different config for a peer.
	ErrAlreadyConnected = errors.New("connect: already connected")
	// ErrUsage: bad options (mode, number of contexts).
	ErrUsage = errors.New("connect: invalid usage")
	// ErrApply: writing or removing a file failed; everything done so far
	// was undone (the error says whether the undo itself failed).
	ErrApply = errors.New("connect: applying the change failed")
	// ErrNotReady: WaitStatus ended before every cluster was ready.
	ErrNotReady = errors.New("connect: mesh not ready")
)
