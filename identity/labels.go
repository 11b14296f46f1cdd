package identity

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Label sources used by Cilium and strait.
const (
	SourceK8s       = "k8s"
	SourceContainer = "container"
	SourceReserved  = "reserved"
	SourceCIDR      = "cidr"
	SourceUnspec    = "unspec"
	SourceAny       = "any"
)

// ClusterLabel is the label key every endpoint identity carries (with
// source k8s) to name its cluster, so identical pods in two clusters get
// distinct identities.
const ClusterLabel = "io.cilium.k8s.policy.cluster"

// MaxLabelsBytes bounds the kvstore form of a label set. The join
// transaction carries the string eight times (value compare, range compare
// with its range end, reference key, and again in the nested transaction)
// and etcd rejects requests over 1.5 MiB by default (--max-request-bytes),
// so 128 KiB leaves headroom for the key prefixes and framing.
const MaxLabelsBytes = 128 << 10

// abbrev shortens s for error messages: label sets may be large.
func abbrev(s string) string {
	const n = 256
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:n], len(s))
}

var (
	// ErrMalformedLabel is returned for a label string that is not
	// "source:key=value" (kvstore form) or "source:key[=value]" (human form).
	ErrMalformedLabel = errors.New("identity: malformed label")
	// ErrNoSource is returned for a label without a "source:" part.
	ErrNoSource = errors.New("identity: label has no source")
	// ErrDuplicateKey is returned for a label set holding one key twice.
	ErrDuplicateKey = errors.New("identity: duplicate label key")
	// ErrNotCanonical is returned for a kvstore label string that is not in
	// the sorted form Labels.KVStoreString produces, which would give one
	// label set two etcd keys.
	ErrNotCanonical = errors.New("identity: label string is not in canonical sorted form")
	// ErrLabelsTooLarge is returned for a label set whose kvstore form
	// exceeds MaxLabelsBytes.
	ErrLabelsTooLarge = errors.New("identity: label set too large for etcd")
	// ErrNoLabels is returned when allocating an identity for an empty set.
	ErrNoLabels = errors.New("identity: empty label set")
)

// Label is one source:key=value triple, e.g. k8s:app=web.
type Label struct {
	Source string
	Key    string
	Value  string
}

// String is the human form: source:key=value, or source:key when the value
// is empty (Cilium's Label.String).
func (l Label) String() string {
	if l.Value == "" {
		return l.Source + ":" + l.Key
	}
	return l.Source + ":" + l.Key + "=" + l.Value
}

// Validate reports ErrMalformedLabel or ErrNoSource when l cannot be written
// in kvstore form and read back unchanged: the source must be non-empty and
// free of ':', ';', '=' and '/'; the key non-empty and free of '=' and ';';
// the value free of ';'.
func (l Label) Validate() error {
	switch {
	case l.Source == "":
		return fmt.Errorf("%w: %q", ErrNoSource, abbrev(l.String()))
	case strings.ContainsAny(l.Source, ":;=/"):
		return fmt.Errorf("%w: source %q of %q contains one of \":;=/\"", ErrMalformedLabel, l.Source, abbrev(l.String()))
	case l.Key == "":
		return fmt.Errorf("%w: %q has an empty key", ErrMalformedLabel, abbrev(l.String()))
	case strings.ContainsAny(l.Key, "=;"):
		return fmt.Errorf("%w: key %q of %q contains '=' or ';'", ErrMalformedLabel, l.Key, abbrev(l.String()))
	case strings.ContainsRune(l.Value, ';'):
		return fmt.Errorf("%w: value of %q contains ';'", ErrMalformedLabel, abbrev(l.String()))
	}
	return nil
}

// ParseLabel parses the human form "source:key=value" or "source:key". The
// source is everything before the first ':', the key runs to the first '='
// (so keys may hold ':' and values may hold '='), as in Cilium's
// ParseLabel. Unlike Cilium, a missing source is an error (ErrNoSource)
// rather than "unspec", since an identity must never depend on a guess.
func ParseLabel(s string) (Label, error) {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return Label{}, fmt.Errorf("%w: %q", ErrNoSource, abbrev(s))
	}
	l := Label{Source: s[:i]}
	rest := s[i+1:]
	if j := strings.IndexByte(rest, '='); j >= 0 {
		l.Key, l.Value = rest[:j], rest[j+1:]
	} else {
		l.Key = rest
	}
	if err := l.Validate(); err != nil {
		return Label{}, err
	}
	return l, nil
}

// Labels is a label set sorted by key with unique keys, the shape Cilium
// keeps (its Labels are keyed by Key). Build it with NewLabels or
// ParseLabels; treat it as immutable.
type Labels []Label

// NewLabels validates ls and returns them sorted by key. Errors:
// ErrMalformedLabel, ErrNoSource, ErrDuplicateKey.
func NewLabels(ls ...Label) (Labels, error) {
	out := slices.Clone(ls)
	slices.SortFunc(out, func(a, b Label) int { return strings.Compare(a.Key, b.Key) })
	for i, l := range out {
		if err := l.Validate(); err != nil {
			return nil, err
		}
		if i > 0 && out[i-1].Key == l.Key {
			return nil, fmt.Errorf("%w: %q and %q", ErrDuplicateKey, out[i-1].String(), abbrev(l.String()))
		}
	}
	return Labels(out), nil
}

// MustLabels is NewLabels over human-form strings, panicking on error; for
// constants and tests only.
func MustLabels(ss ...string) Labels {
	ls := make([]Label, 0, len(ss))
	for _, s := range ss {
		l, err := ParseLabel(s)
		if err != nil {
			panic(err)
		}
		ls = append(ls, l)
	}
	out, err := NewLabels(ls...)
	if err != nil {
		panic(err)
	}
	return out
}

// KVStoreString is the form used in etcd keys and identity values: each
// label as "source:key=value;" in key order, e.g.
// "k8s:app=web;k8s:io.cilium.k8s.policy.cluster=c1;". It matches Cilium's
// Labels.SortedList byte for byte.
func (ls Labels) KVStoreString() string {
	n := 0
	for _, l := range ls {
		n += len(l.Source) + len(l.Key) + len(l.Value) + 3
	}
	var b strings.Builder
	b.Grow(n)
	for _, l := range ls {
		b.WriteString(l.Source)
		b.WriteByte(':')
		b.WriteString(l.Key)
		b.WriteByte('=')
		b.WriteString(l.Value)
		b.WriteByte(';')
	}
	return b.String()
}

// String is the human form, labels joined by ','.
func (ls Labels) String() string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.String()
	}
	return strings.Join(parts, ",")
}

// Get returns the label with key, if present.
func (ls Labels) Get(key string) (Label, bool) {
	i, ok := slices.BinarySearchFunc(ls, key, func(l Label, k string) int { return strings.Compare(l.Key, k) })
	if !ok {
		return Label{}, false
	}
	return ls[i], true
}

// Cluster returns the value of the k8s cluster label, if present.
func (ls Labels) Cluster() (string, bool) {
	l, ok := ls.Get(ClusterLabel)
	if !ok || l.Source != SourceK8s {
		return "", false
	}
	return l.Value, true
}

// WithCluster returns a copy of ls carrying k8s:io.cilium.k8s.policy.cluster=name,
// replacing any label with that key.
func (ls Labels) WithCluster(name string) Labels {
	out := make(Labels, 0, len(ls)+1)
	for _, l := range ls {
		if l.Key != ClusterLabel {
			out = append(out, l)
		}
	}
	out = append(out, Label{Source: SourceK8s, Key: ClusterLabel, Value: name})
	slices.SortFunc(out, func(a, b Label) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Equal reports whether ls and o hold the same labels.
func (ls Labels) Equal(o Labels) bool { return slices.Equal(ls, o) }

// ParseLabels parses the kvstore form written by KVStoreString (and by
// Cilium): a non-empty sequence of "source:key=value;" in key order with
// the trailing ';'. Anything else is an error naming the input: a missing
// trailing ';' or '=', a label without a source (ErrNoSource), an empty
// key, a duplicate key (ErrDuplicateKey), labels out of order
// (ErrNotCanonical), or more than MaxLabelsBytes (ErrLabelsTooLarge).
func ParseLabels(s string) (Labels, error) {
	if len(s) > MaxLabelsBytes {
		return nil, fmt.Errorf("%w: %q is %d bytes, limit %d", ErrLabelsTooLarge, abbrev(s), len(s), MaxLabelsBytes)
	}
	if s == "" {
		return nil, fmt.Errorf("%w: %q", ErrNoLabels, abbrev(s))
	}
	if !strings.HasSuffix(s, ";") {
		return nil, fmt.Errorf("%w: %q lacks the trailing ';'", ErrMalformedLabel, abbrev(s))
	}
	body := s[:len(s)-1]
	out := make(Labels, 0, strings.Count(body, ";")+1)
	for part := range strings.SplitSeq(body, ";") {
		i := strings.IndexByte(part, ':')
		if i < 0 {
			return nil, fmt.Errorf("%w: %q in %q", ErrNoSource, part, abbrev(s))
		}
		j := strings.IndexByte(part[i+1:], '=')
		if j < 0 {
			return nil, fmt.Errorf("%w: %q in %q lacks '='", ErrMalformedLabel, part, abbrev(s))
		}
		l := Label{Source: part[:i], Key: part[i+1 : i+1+j], Value: part[i+2+j:]}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("parse %q: %w", abbrev(s), err)
		}
		if n := len(out); n > 0 {
			switch c := strings.Compare(out[n-1].Key, l.Key); {
			case c == 0:
				return nil, fmt.Errorf("%w: %q in %q", ErrDuplicateKey, l.Key, abbrev(s))
			case c > 0:
				return nil, fmt.Errorf("%w: %q after %q in %q", ErrNotCanonical, l.Key, out[n-1].Key, abbrev(s))
			}
		}
		out = append(out, l)
	}
	return out, nil
}
