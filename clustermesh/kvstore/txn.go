package kvstore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// This file implements identity.Backend: the etcd transactions of the
// identity allocator (identity/allocator.go), which claims, shares, releases
// and collects numeric identities without locks. Keys and values are plain
// strings so that neither package imports the other.

// identityListPage is the number of keys IdentityList fetches per request.
const identityListPage = 1000

// IdentityCreate claims a new identity in one transaction:
//
//	if   create_revision(refPrefix*) = 0   // no node references the labels
//	and  create_revision(idKey) = 0        // the ID is free
//	then put idKey=labels; put refKey=id (session lease)
//	else get refPrefix* (limit 1)
//
// On failure it returns one existing reference (key and value), or "" when
// there is none, meaning idKey was taken.
func (c *Client) IdentityCreate(ctx context.Context, idKey, labels, refPrefix, refKey, id string) (created bool, otherRefKey string, otherRefValue []byte, err error) {
	lease, err := c.LeaseID(ctx)
	if err != nil {
		return false, "", nil, fmt.Errorf("kvstore: create identity %s: %w", idKey, err)
	}
	resp, err := c.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(refPrefix), "=", 0).WithPrefix(),
		clientv3.Compare(clientv3.CreateRevision(idKey), "=", 0),
	).Then(
		clientv3.OpPut(idKey, labels),
		clientv3.OpPut(refKey, id, clientv3.WithLease(lease)),
	).Else(
		clientv3.OpGet(refPrefix, clientv3.WithPrefix(), clientv3.WithLimit(1)),
	).Commit()
	if err != nil {
		return false, "", nil, fmt.Errorf("kvstore: create identity %s: %w", idKey, err)
	}
	if resp.Succeeded {
		return true, "", nil, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		return false, string(kvs[0].Key), kvs[0].Value, nil
	}
	return false, "", nil, nil
}

// IdentityJoin adds a reference to an existing identity in one
// transaction. etcd fails a value compare over an empty range, so the
// "no reference yet" case is a nested transaction in the else branch:
//
//	if   value(idKey) = labels and value(refPrefix*) = id   // all agree
//	then put refKey=id (session lease)
//	else if value(idKey) = labels and create_revision(refPrefix*) = 0
//	     then put refKey=id (session lease)
func (c *Client) IdentityJoin(ctx context.Context, idKey, labels, refPrefix, refKey, id string) (joined bool, err error) {
	lease, err := c.LeaseID(ctx)
	if err != nil {
		return false, fmt.Errorf("kvstore: join identity %s: %w", idKey, err)
	}
	put := clientv3.OpPut(refKey, id, clientv3.WithLease(lease))
	empty := clientv3.OpTxn(
		[]clientv3.Cmp{
			clientv3.Compare(clientv3.Value(idKey), "=", labels),
			clientv3.Compare(clientv3.CreateRevision(refPrefix), "=", 0).WithPrefix(),
		},
		[]clientv3.Op{put}, nil)
	resp, err := c.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(idKey), "=", labels),
		clientv3.Compare(clientv3.Value(refPrefix), "=", id).WithPrefix(),
	).Then(put).Else(empty).Commit()
	if err != nil {
		return false, fmt.Errorf("kvstore: join identity %s: %w", idKey, err)
	}
	if resp.Succeeded {
		return true, nil
	}
	return resp.Responses[0].GetResponseTxn().GetSucceeded(), nil
}

// IdentityRelease deletes this node's reference refKey.
func (c *Client) IdentityRelease(ctx context.Context, refKey string) error {
	if _, err := c.cli.Delete(ctx, refKey); err != nil {
		return fmt.Errorf("kvstore: release identity reference %.200s: %w", refKey, err)
	}
	return nil
}

// IdentityCollect deletes an unreferenced identity in one transaction:
//
//	if mod_revision(idKey) = modRevision
//	then if   create_revision(refPrefix*) = 0 then delete idKey  // no references
//	     elif value(refPrefix*) != id          then delete idKey  // none names id
func (c *Client) IdentityCollect(ctx context.Context, idKey string, modRevision int64, refPrefix, id string) (deleted bool, err error) {
	del := clientv3.OpDelete(idKey)
	others := clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(refPrefix), "!=", id).WithPrefix()},
		[]clientv3.Op{del}, nil)
	unreferenced := clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(refPrefix), "=", 0).WithPrefix()},
		[]clientv3.Op{del}, []clientv3.Op{others})
	resp, err := c.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(idKey), "=", modRevision),
	).Then(unreferenced).Commit()
	if err != nil {
		return false, fmt.Errorf("kvstore: collect identity %s: %w", idKey, err)
	}
	if !resp.Succeeded {
		return false, nil
	}
	inner := resp.Responses[0].GetResponseTxn()
	if inner.GetSucceeded() {
		return true, nil
	}
	return inner.GetResponses()[0].GetResponseTxn().GetSucceeded(), nil
}

// IdentityList calls fn for every key under prefix in key order, paging
// through one revision so the listing is consistent.
func (c *Client) IdentityList(ctx context.Context, prefix string, fn func(key string, value []byte, modRevision int64)) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(identityListPage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.cli.Get(ctx, from, opts...)
		if err != nil {
			return fmt.Errorf("kvstore: list %s: %w", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			fn(string(kv.Key), kv.Value, kv.ModRevision)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// IdentityWatch adapts ListAndWatch to callbacks: onEvent for upserts and
// deletes, onSynced after the initial list. It returns when ctx ends.
func (c *Client) IdentityWatch(ctx context.Context, prefix string, onEvent func(deleted bool, key string, value []byte), onSynced func()) {
	for ev := range c.ListAndWatch(ctx, prefix) {
		switch ev.Kind {
		case EventUpsert:
			onEvent(false, ev.Key, ev.Value)
		case EventDelete:
			onEvent(true, ev.Key, nil)
		case EventListDone:
			onSynced()
		}
	}
}

// IdentityLeaseLost returns a channel closed when the current session lease
// is lost, granting a lease if there is none.
func (c *Client) IdentityLeaseLost(ctx context.Context) (<-chan struct{}, error) {
	_, lost, err := c.Lease(ctx)
	if err != nil {
		return nil, fmt.Errorf("kvstore: session lease: %w", err)
	}
	return lost, nil
}
