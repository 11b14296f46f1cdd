package globalsvc

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAnnotations(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		want    Config
		wantErr []string // expected error texts, in order
	}{
		{name: "no annotations", ann: nil, want: Config{}},
		{name: "global", ann: map[string]string{AnnotationGlobal: "true"},
			want: Config{Global: true, Shared: true}},
		{name: "global upper case", ann: map[string]string{AnnotationGlobal: "TRUE"},
			want: Config{Global: true, Shared: true}},
		{name: "global false", ann: map[string]string{AnnotationGlobal: "false"}, want: Config{}},
		{name: "legacy global", ann: map[string]string{AnnotationGlobalLegacy: "True"},
			want: Config{Global: true, Shared: true}},
		{name: "current name wins over legacy",
			ann:  map[string]string{AnnotationGlobal: "false", AnnotationGlobalLegacy: "true"},
			want: Config{}},
		{name: "current name wins over legacy, other way",
			ann:  map[string]string{AnnotationGlobal: "true", AnnotationGlobalLegacy: "false"},
			want: Config{Global: true, Shared: true}},
		{name: "global not shared",
			ann:  map[string]string{AnnotationGlobal: "true", AnnotationShared: "false"},
			want: Config{Global: true}},
		{name: "legacy shared false",
			ann:  map[string]string{AnnotationGlobalLegacy: "true", AnnotationSharedLegacy: "FALSE"},
			want: Config{Global: true}},
		{name: "shared true explicitly",
			ann:  map[string]string{AnnotationGlobal: "true", AnnotationShared: "true"},
			want: Config{Global: true, Shared: true}},
		{name: "shared ignored when not global",
			ann:  map[string]string{AnnotationShared: "true", AnnotationAffinity: "local"},
			want: Config{}},
		{name: "bad values ignored when not global",
			ann:  map[string]string{AnnotationShared: "maybe", AnnotationAffinity: "nearest"},
			want: Config{}},
		{name: "affinity local",
			ann:  map[string]string{AnnotationGlobal: "true", AnnotationAffinity: "local"},
			want: Config{Global: true, Shared: true, Affinity: AffinityLocal}},
		{name: "affinity remote legacy mixed case",
			ann:  map[string]string{AnnotationGlobal: "true", AnnotationAffinityLegacy: "Remote"},
			want: Config{Global: true, Shared: true, Affinity: AffinityRemote}},
		{name: "affinity none",
			ann:  map[string]string{AnnotationGlobal: "true", AnnotationAffinity: "none"},
			want: Config{Global: true, Shared: true}},
		{name: "affinity empty",
			ann:  map[string]string{AnnotationGlobal: "true", AnnotationAffinity: ""},
			want: Config{Global: true, Shared: true}},
		{name: "affinity current wins",
			ann:  map[string]string{AnnotationGlobal: "true", AnnotationAffinity: "remote", AnnotationAffinityLegacy: "local"},
			want: Config{Global: true, Shared: true, Affinity: AffinityRemote}},
		{name: "bad global",
			ann:  map[string]string{AnnotationGlobal: "yes"},
			want: Config{},
			wantErr: []string{
				`globalsvc: service ns/svc: annotation "service.cilium.io/global": value "yes" is not "true" or "false"; using false`,
			}},
		{name: "bad legacy global with spaces",
			ann:  map[string]string{AnnotationGlobalLegacy: " true"},
			want: Config{},
			wantErr: []string{
				`globalsvc: service ns/svc: annotation "io.cilium/global-service": value " true" is not "true" or "false"; using false`,
			}},
		{name: "bad shared and affinity",
			ann:  map[string]string{AnnotationGlobal: "true", AnnotationSharedLegacy: "1", AnnotationAffinity: "nearest"},
			want: Config{Global: true},
			wantErr: []string{
				`globalsvc: service ns/svc: annotation "io.cilium/shared-service": value "1" is not "true" or "false"; using false`,
				`globalsvc: service ns/svc: annotation "service.cilium.io/affinity": value "nearest" is not "local", "remote" or "none"; using none`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAnnotations("ns", "svc", tt.ann)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			var gotErr []string
			if err != nil {
				if !errors.Is(err, ErrInvalidAnnotation) {
					t.Errorf("error %v is not ErrInvalidAnnotation", err)
				}
				var ae *AnnotationError
				if !errors.As(err, &ae) {
					t.Errorf("error %v holds no *AnnotationError", err)
				}
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					gotErr = append(gotErr, e.Error())
				}
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"affinity none", AffinityNone.String(), "none"},
		{"affinity local", AffinityLocal.String(), "local"},
		{"affinity remote", AffinityRemote.String(), "remote"},
		{"affinity unknown", Affinity(9).String(), "Affinity(9)"},
		{"state active", StateActive.String(), "active"},
		{"state terminating", StateTerminating.String(), "terminating"},
		{"state quarantined", StateQuarantined.String(), "quarantined"},
		{"state maintenance", StateMaintenance.String(), "maintenance"},
		{"state unknown", State(7).String(), "State(7)"},
		{"reason unhealthy", ReasonUnhealthy.String(), "unhealthy"},
		{"reason not active", ReasonNotActive.String(), "not-active"},
		{"reason affinity", ReasonAffinity.String(), "affinity"},
		{"reason unknown", Reason(0).String(), "Reason(0)"},
		{"service name", ServiceName{"ns", "svc"}.String(), "ns/svc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
