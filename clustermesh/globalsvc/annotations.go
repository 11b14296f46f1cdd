package globalsvc

import (
	"errors"
	"fmt"
	"strings"
)

// Service annotations read from the local Kubernetes Service. When both the
// current name and its legacy alias are set, the current name wins (as in
// Cilium's annotation.Get).
const (
	// AnnotationGlobal: "true" makes the service global (includeExternal).
	AnnotationGlobal = "service.cilium.io/global"
	// AnnotationGlobalLegacy is the legacy alias of AnnotationGlobal.
	AnnotationGlobalLegacy = "io.cilium/global-service"
	// AnnotationShared: "false" stops exporting the local backends of a
	// global service; it still consumes remote ones. Defaults to true for
	// global services and is ignored for the others.
	AnnotationShared = "service.cilium.io/shared"
	// AnnotationSharedLegacy is the legacy alias of AnnotationShared.
	AnnotationSharedLegacy = "io.cilium/shared-service"
	// AnnotationAffinity: "local", "remote" or "none" (backend preference of
	// a global service). Ignored for non-global services.
	AnnotationAffinity = "service.cilium.io/affinity"
	// AnnotationAffinityLegacy is the legacy alias of AnnotationAffinity.
	AnnotationAffinityLegacy = "io.cilium/service-affinity"
)

// Errors of this package. Test with errors.Is.
var (
	// ErrInvalidAnnotation: an annotation holds a value this package does
	// not understand. The error is an *AnnotationError; the service is
	// still handled, with the fallback the error names.
	ErrInvalidAnnotation = errors.New("globalsvc: invalid annotation value")
	// ErrInvalidService: a service lacks its namespace or name, or a
	// ClusterService lacks its cluster.
	ErrInvalidService = errors.New("globalsvc: invalid service")
	// ErrLocalCluster: a ClusterService handed in as remote claims the
	// local cluster's name.
	ErrLocalCluster = errors.New("globalsvc: remote entry claims the local cluster")
)

// Affinity is the backend preference of a global service.
type Affinity uint8

const (
	// AffinityNone: local and remote backends alike.
	AffinityNone Affinity = iota
	// AffinityLocal: local backends; remote ones only while no local
	// backend is active and healthy.
	AffinityLocal
	// AffinityRemote: remote backends; local ones only while no remote
	// backend is active and healthy.
	AffinityRemote
)

// String returns the annotation value naming a.
func (a Affinity) String() string {
	switch a {
	case AffinityNone:
		return "none"
	case AffinityLocal:
		return "local"
	case AffinityRemote:
		return "remote"
	}
	return fmt.Sprintf("Affinity(%d)", uint8(a))
}

// Config is what the annotations of a local service ask for.
type Config struct {
	// Global: remote backends are merged in, and the service may be
	// exported (includeExternal on the wire).
	Global bool
	// Shared: the local backends are exported to other clusters. Always
	// false when Global is false.
	Shared bool
	// Affinity: backend preference. Always AffinityNone when Global is false.
	Affinity Affinity
}

// AnnotationError reports an annotation value that is not understood.
// Fallback is the value used instead; it is what Cilium does with the same
// value, so a service behaves the same in strait and Cilium clusters.
type AnnotationError struct {
	Namespace, Name string // the service
	Annotation      string // the annotation key as written (current or legacy)
	Value           string // the offending value
	Want            string // the accepted values
	Fallback        string // the value used instead
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("globalsvc: service %s/%s: annotation %q: value %q is not %s; using %s",
		e.Namespace, e.Name, e.Annotation, e.Value, e.Want, e.Fallback)
}

// Unwrap makes errors.Is(err, ErrInvalidAnnotation) true.
func (e *AnnotationError) Unwrap() error { return ErrInvalidAnnotation }

// lookup returns the value of key, or of legacy when key is absent.
func lookup(annotations map[string]string, key, legacy string) (k, v string, ok bool) {
	if v, ok := annotations[key]; ok {
		return key, v, true
	}
	if v, ok := annotations[legacy]; ok {
		return legacy, v, true
	}
	return "", "", false
}

// ParseAnnotations reads the global, shared and affinity annotations of the
// local service namespace/name. Values are case-insensitive:
//
//   - global: "true" or "false"; absent means false.
//   - shared: "true" or "false"; absent means true. Read only when global.
//   - affinity: "local", "remote", "none" or ""; absent means none. Read
//     only when global.
//
// It always returns a usable Config. Each value it does not understand adds
// an *AnnotationError (errors.Is ErrInvalidAnnotation) to the returned error
// (joined with errors.Join), and the Config holds the fallback: false for
// global and shared (Cilium treats every value but "true" as false), none
// for affinity (Cilium ≥ 1.19 does the same; 1.18 dropped the remote
// backends, bug #46623). Annotations that are ignored because the service
// is not global are not checked.
func ParseAnnotations(namespace, name string, annotations map[string]string) (Config, error) {
	var cfg Config
	var errs []error
	bad := func(key, value, want, fallback string) {
		errs = append(errs, &AnnotationError{
			Namespace: namespace, Name: name,
			Annotation: key, Value: value, Want: want, Fallback: fallback,
		})
	}

	if key, v, ok := lookup(annotations, AnnotationGlobal, AnnotationGlobalLegacy); ok {
		switch strings.ToLower(v) {
		case "true":
			cfg.Global = true
		case "false":
		default:
			bad(key, v, `"true" or "false"`, "false")
		}
	}
	if !cfg.Global {
		return cfg, errors.Join(errs...)
	}

	cfg.Shared = true
	if key, v, ok := lookup(annotations, AnnotationShared, AnnotationSharedLegacy); ok {
		switch strings.ToLower(v) {
		case "true":
		case "false":
			cfg.Shared = false
		default:
			cfg.Shared = false
			bad(key, v, `"true" or "false"`, "false")
		}
	}

	if key, v, ok := lookup(annotations, AnnotationAffinity, AnnotationAffinityLegacy); ok {
		switch strings.ToLower(v) {
		case "local":
			cfg.Affinity = AffinityLocal
		case "remote":
			cfg.Affinity = AffinityRemote
		case "none", "":
		default:
			bad(key, v, `"local", "remote" or "none"`, "none")
		}
	}
	return cfg, errors.Join(errs...)
}
