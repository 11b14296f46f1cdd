package schema

import (
	"errors"
	"strconv"
	"strings"
)

// Errors returned by the key parsers and value decoders. Every decoder
// error is an *Error naming the key and, where one is at fault, the JSON
// field; test for the kind of failure with errors.Is.
var (
	// ErrInvalidKey: the key is not a well-formed v1 key of the expected kind.
	ErrInvalidKey = errors.New("schema: invalid key")
	// ErrInvalidValue: the value is not valid JSON of the expected shape, or
	// a field holds a value the schema does not allow.
	ErrInvalidValue = errors.New("schema: invalid value")
	// ErrKeyMismatch: a field of the value (name, namespace, IP) disagrees
	// with the key it was stored under.
	ErrKeyMismatch = errors.New("schema: value does not match its key")
	// ErrClusterMismatch: the cluster name or ID carried by the key or the
	// value disagrees with the key or with the connection it arrived on.
	ErrClusterMismatch = errors.New("schema: cluster does not match")
	// ErrInvalidClusterName: a cluster name breaks the naming rules.
	ErrInvalidClusterName = errors.New("schema: invalid cluster name")
	// ErrIncompatibleConfig: a remote cluster config cannot join our mesh
	// (different max-connected-clusters, unknown export mode).
	ErrIncompatibleConfig = errors.New("schema: incompatible cluster config")
	// ErrInvalidOrigin: the Origin handed to a decoder is itself invalid;
	// this is a bug of the caller, not of the remote data.
	ErrInvalidOrigin = errors.New("schema: invalid origin")
)

// Error is the error of every decoder and key parser of this package. Its
// text reads like
//
//	cilium/state/nodes/v1/c1/n1: field "Cluster": value "c2" does not match cluster "c1" of the key
//
// Kind is one of the sentinels above; Cause, when set, is the underlying
// error (a JSON syntax error, identity.ErrInvalidClusterID, ...). Both match
// errors.Is.
type Error struct {
	Key    string // the etcd key the value was stored under
	Field  string // the JSON field at fault, "" when the key or the document as a whole is
	Reason string // what is wrong, naming the offending value
	Kind   error  // one of the package sentinels
	Cause  error  // optional underlying error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Key)
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString("field ")
		b.WriteString(strconv.Quote(e.Field))
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the sentinel kind and the cause, so errors.Is matches both.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

func errKey(key, reason string) *Error {
	return &Error{Key: key, Reason: reason, Kind: ErrInvalidKey}
}

func errField(key, field string, kind error, reason string) *Error {
	return &Error{Key: key, Field: field, Reason: reason, Kind: kind}
}

func errCause(key, field string, kind, cause error, reason string) *Error {
	return &Error{Key: key, Field: field, Reason: reason, Kind: kind, Cause: cause}
}

// mismatch builds the common error
// `value "got" does not match <what> "want" of the <where>`.
func mismatch(key, field string, kind error, got, what, want, where string) *Error {
	return errField(key, field, kind,
		"value "+strconv.Quote(got)+" does not match "+what+" "+strconv.Quote(want)+" of the "+where)
}

// originErr wraps an Origin.Validate error (which already wraps
// ErrInvalidOrigin) into an *Error naming the key being decoded.
func originErr(key string, err error) *Error {
	return &Error{Key: key, Reason: err.Error(), Cause: err}
}
