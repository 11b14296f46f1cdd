package schema

import (
	"strconv"
	"time"
)

// Canary is a sync canary: cluster has written the complete initial content
// of Prefix at Time. Stored at cilium/synced/<cluster>/<prefix> with an
// RFC 3339 timestamp as value.
type Canary struct {
	Cluster string
	Prefix  string
	Time    time.Time
}

// Key is cilium/synced/<Cluster>/<Prefix>.
func (c *Canary) Key() string { return CanaryKey(c.Cluster, c.Prefix) }

// Marshal encodes the canary value: Time in RFC 3339, to the second.
func (c *Canary) Marshal() ([]byte, error) { return CanaryValue(c.Time), nil }

// CanaryValue is the value of a canary written at t.
func CanaryValue(t time.Time) []byte {
	return t.Truncate(time.Second).AppendFormat(nil, time.RFC3339)
}

// DecodeCanary decodes the canary stored at key read from the cluster from.
// The key's cluster must be from.Cluster and its prefix lie under
// cilium/state/ or cilium/cache/; the value must be an RFC 3339 time
// (fractions of a second are dropped). Errors are *Error as for DecodeNode.
func DecodeCanary(key string, value []byte, from Origin) (*Canary, error) {
	if err := from.Validate(); err != nil {
		return nil, originErr(key, err)
	}
	k, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	if k.Kind != KindCanary {
		return nil, errKey(key, "not a synced canary key")
	}
	if err := from.checkCluster(key, "", k.Cluster); err != nil {
		return nil, err
	}
	t, err := time.Parse(time.RFC3339, string(value))
	if err != nil {
		return nil, errCause(key, "", ErrInvalidValue, err, "value "+strconv.Quote(string(value))+" is not an RFC 3339 time")
	}
	t = t.Truncate(time.Second)
	if t.Year() < 0 || t.Year() > 9999 {
		return nil, errField(key, "", ErrInvalidValue, "value "+strconv.Quote(string(value))+" is out of range")
	}
	return &Canary{Cluster: k.Cluster, Prefix: k.Prefix, Time: t}, nil
}
