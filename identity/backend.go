package identity

import "context"

// Backend is the part of an etcd client the allocator uses. It takes and
// returns only plain types, so that clustermesh/kvstore.Client satisfies it
// without either package importing the other; its implementation lives in
// clustermesh/kvstore/txn.go.
//
// "Session lease" is the client's lease, kept alive while the process lives
// and expiring (with every key attached to it) about a TTL after it dies.
// Every method that writes does so in one etcd transaction, which is what
// makes the allocator safe without locks.
type Backend interface {
	// IdentityCreate claims a new identity: atomically, if no key exists
	// under refPrefix and idKey does not exist, it puts idKey=labels (no
	// lease) and refKey=id (session lease) and reports created. Otherwise
	// it writes nothing and returns one existing key under refPrefix with
	// its value (refKey is "" when there is none, which means idKey was
	// taken).
	IdentityCreate(ctx context.Context, idKey, labels, refPrefix, refKey, id string) (created bool, otherRefKey string, otherRefValue []byte, err error)

	// IdentityJoin adds a reference to an existing identity: atomically,
	// if idKey holds labels and every key under refPrefix (possibly none)
	// holds id, it puts refKey=id under the session lease and reports
	// joined. Otherwise it writes nothing.
	IdentityJoin(ctx context.Context, idKey, labels, refPrefix, refKey, id string) (joined bool, err error)

	// IdentityRelease deletes refKey; a missing key is not an error.
	IdentityRelease(ctx context.Context, refKey string) error

	// IdentityCollect deletes idKey atomically if its mod revision is still
	// modRevision and no key under refPrefix holds id, and reports deleted.
	IdentityCollect(ctx context.Context, idKey string, modRevision int64, refPrefix, id string) (deleted bool, err error)

	// IdentityList calls fn for every key under prefix, in key order, with
	// its value and mod revision, reading consistently from one revision.
	IdentityList(ctx context.Context, prefix string, fn func(key string, value []byte, modRevision int64)) error

	// IdentityWatch lists every key under prefix (onEvent with
	// deleted=false), calls onSynced once the initial list is complete, then
	// reports every change until ctx ends, resuming after connection
	// losses. It returns when ctx ends.
	IdentityWatch(ctx context.Context, prefix string, onEvent func(deleted bool, key string, value []byte), onSynced func())

	// IdentityLeaseLost returns a channel closed when the current session
	// lease is lost (granting one if there is none). Keys written under the
	// lost lease are gone or about to be.
	IdentityLeaseLost(ctx context.Context) (<-chan struct{}, error)
}
