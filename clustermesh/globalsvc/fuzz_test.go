package globalsvc

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseAnnotations feeds arbitrary annotation values. keys selects, bit
// by bit, which annotations are set and whether under their legacy name.
// It checks that parsing never panics, that the Config follows Cilium's
// reading of the same values, and that every error names the service and
// the annotation.
func FuzzParseAnnotations(f *testing.F) {
	f.Add(uint8(0x01), "true", "", "")
	f.Add(uint8(0x15), "TRUE", "false", "local")
	f.Add(uint8(0x3f), "true", "yes", "nearest")
	f.Fuzz(func(t *testing.T, keys uint8, global, shared, affinity string) {
		ann := map[string]string{}
		set := func(bit uint, key, legacy, v string) {
			if keys&(1<<bit) == 0 {
				return
			}
			if keys&(1<<(bit+1)) != 0 {
				ann[legacy] = v
			} else {
				ann[key] = v
			}
		}
		set(0, AnnotationGlobal, AnnotationGlobalLegacy, global)
		set(2, AnnotationShared, AnnotationSharedLegacy, shared)
		set(4, AnnotationAffinity, AnnotationAffinityLegacy, affinity)
		if keys&0x40 != 0 { // both names: the current one must win
			ann[AnnotationGlobalLegacy] = "true"
		}

		cfg, err := ParseAnnotations("ns", "svc", ann)

		// Cilium's reading (pkg/annotation/clustermesh.go), written out.
		get := func(key, legacy string) (string, bool) {
			if v, ok := ann[key]; ok {
				return v, true
			}
			v, ok := ann[legacy]
			return v, ok
		}
		var want Config
		var wantBad int
		if v, ok := get(AnnotationGlobal, AnnotationGlobalLegacy); ok {
			l := strings.ToLower(v)
			want.Global = l == "true"
			if l != "true" && l != "false" {
				wantBad++
			}
		}
		if want.Global {
			want.Shared = true
			if v, ok := get(AnnotationShared, AnnotationSharedLegacy); ok {
				l := strings.ToLower(v)
				want.Shared = l == "true"
				if l != "true" && l != "false" {
					wantBad++
				}
			}
			if v, ok := get(AnnotationAffinity, AnnotationAffinityLegacy); ok {
				switch strings.ToLower(v) {
				case "local":
					want.Affinity = AffinityLocal
				case "remote":
					want.Affinity = AffinityRemote
				case "none", "":
				default:
					wantBad++
				}
			}
		}
		if cfg != want {
			t.Fatalf("ParseAnnotations(%q) = %+v, want %+v", ann, cfg, want)
		}
		if !cfg.Global && (cfg.Shared || cfg.Affinity != AffinityNone) {
			t.Fatalf("non-global config %+v", cfg)
		}
		var got []error
		if err != nil {
			got = err.(interface{ Unwrap() []error }).Unwrap()
		}
		if len(got) != wantBad {
			t.Fatalf("ParseAnnotations(%q): %d errors (%v), want %d", ann, len(got), err, wantBad)
		}
		for _, e := range got {
			var ae *AnnotationError
			if !errors.As(e, &ae) || !errors.Is(e, ErrInvalidAnnotation) {
				t.Fatalf("error %v is not an *AnnotationError", e)
			}
			if ann[ae.Annotation] != ae.Value {
				t.Fatalf("error %v names annotation %q with value %q, have %q", e, ae.Annotation, ae.Value, ann[ae.Annotation])
			}
			if !strings.Contains(e.Error(), "service ns/svc") || !strings.Contains(e.Error(), ae.Annotation) {
				t.Fatalf("error %q does not name the service and annotation", e)
			}
		}
	})
}
