package identity

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// KVStorePrefix is where Cilium's kvstore allocator keeps identities:
//
//	cilium/state/identities/v1/id/<id>              → label string (no lease)
//	cilium/state/identities/v1/value/<labels>/<node> → id (leased, one per node)
//
// It equals clustermesh/schema.IdentitiesPrefix, which this package may not
// import.
const KVStorePrefix = "cilium/state/identities/v1"

var (
	// ErrMalformedKey is returned for an etcd key under the identity prefix
	// that is not an id or value key of the expected shape.
	ErrMalformedKey = errors.New("identity: malformed identity key")
	// ErrMalformedValue is returned for an ID stored in etcd that is not a
	// canonical decimal number.
	ErrMalformedValue = errors.New("identity: malformed identity value")
	// ErrInvalidNode is returned for a node name that cannot end a value
	// key (empty or containing '/').
	ErrInvalidNode = errors.New("identity: invalid node name")
)

// Keys builds and parses the keys of one identity prefix.
type Keys struct {
	// Prefix is the base, normally KVStorePrefix (no trailing '/').
	Prefix string
}

// IDPrefix is "<prefix>/id/".
func (k Keys) IDPrefix() string { return k.Prefix + "/id/" }

// ValuePrefix is "<prefix>/value/".
func (k Keys) ValuePrefix() string { return k.Prefix + "/value/" }

// IDKey is "<prefix>/id/<id>".
func (k Keys) IDKey(id NumericIdentity) string {
	return k.IDPrefix() + strconv.FormatUint(uint64(id), 10)
}

// RefPrefix is "<prefix>/value/<labels>/": every node's reference to the
// label set. labels ends in ';' and sources never hold '/', so no other
// label set's references share this prefix.
func (k Keys) RefPrefix(labels string) string { return k.ValuePrefix() + labels + "/" }

// RefKey is "<prefix>/value/<labels>/<node>".
func (k Keys) RefKey(labels, node string) string { return k.RefPrefix(labels) + node }

// ParseIDKey parses "<prefix>/id/<id>". The ID must be canonical decimal
// (no sign, no leading zeros) and a global identity. Errors wrap
// ErrMalformedKey or ErrNodeLocal and name the key.
func (k Keys) ParseIDKey(key string) (NumericIdentity, error) {
	s, ok := strings.CutPrefix(key, k.IDPrefix())
	if !ok {
		return 0, fmt.Errorf("%w: %q is not under %q", ErrMalformedKey, abbrev(key), k.IDPrefix())
	}
	id, err := parseID(s)
	if err != nil {
		return 0, fmt.Errorf("%w: key %q: %w", ErrMalformedKey, abbrev(key), err)
	}
	return id, nil
}

// ParseRefKey parses "<prefix>/value/<labels>/<node>" into the label string
// (validated by ParseLabels) and the node. Errors wrap ErrMalformedKey and
// name the key.
func (k Keys) ParseRefKey(key string) (labels Labels, node string, err error) {
	s, ok := strings.CutPrefix(key, k.ValuePrefix())
	if !ok {
		return nil, "", fmt.Errorf("%w: %q is not under %q", ErrMalformedKey, abbrev(key), k.ValuePrefix())
	}
	i := strings.LastIndexByte(s, '/')
	if i < 0 || i == len(s)-1 {
		return nil, "", fmt.Errorf("%w: %q has no node suffix", ErrMalformedKey, abbrev(key))
	}
	labels, err = ParseLabels(s[:i])
	if err != nil {
		return nil, "", fmt.Errorf("%w: key %q: %w", ErrMalformedKey, abbrev(key), err)
	}
	return labels, s[i+1:], nil
}

// ParseIDValue parses the ID stored in a value key. key names the source in
// errors, which wrap ErrMalformedValue.
func ParseIDValue(key string, value []byte) (NumericIdentity, error) {
	id, err := parseID(string(value))
	if err != nil {
		return 0, fmt.Errorf("%w: %q at %q: %w", ErrMalformedValue, abbrev(string(value)), abbrev(key), err)
	}
	return id, nil
}

// parseID parses a canonical decimal global identity.
func parseID(s string) (NumericIdentity, error) {
	if s == "" {
		return 0, errors.New("empty id")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("id %q has leading zeros", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("id %q is not a decimal number", s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("id %q: %w", s, err)
	}
	id := NumericIdentity(v)
	if id.IsNodeLocal() {
		return 0, fmt.Errorf("%w: %d", ErrNodeLocal, v)
	}
	return id, nil
}

// validateNode reports ErrInvalidNode unless node can end a value key.
func validateNode(node string) error {
	if node == "" || strings.ContainsRune(node, '/') {
		return fmt.Errorf("%w: %q (must be non-empty without '/')", ErrInvalidNode, node)
	}
	return nil
}
