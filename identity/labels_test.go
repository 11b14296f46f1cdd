package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Labels
		wantErr error
	}{
		{
			name: "cilium example",
			in:   "k8s:app=baz;k8s:io.cilium.k8s.policy.cluster=cluster3;k8s:io.kubernetes.pod.namespace=bar;",
			want: Labels{
				{Source: "k8s", Key: "app", Value: "baz"},
				{Source: "k8s", Key: "io.cilium.k8s.policy.cluster", Value: "cluster3"},
				{Source: "k8s", Key: "io.kubernetes.pod.namespace", Value: "bar"},
			},
		},
		{name: "empty value", in: "reserved:host=;", want: Labels{{Source: "reserved", Key: "host"}}},
		{name: "key with colon and slash", in: "k8s:app.kubernetes.io/na:me=x;", want: Labels{{Source: "k8s", Key: "app.kubernetes.io/na:me", Value: "x"}}},
		{name: "value with = and :", in: "k8s:a=b=c:d;", want: Labels{{Source: "k8s", Key: "a", Value: "b=c:d"}}},
		{name: "cidr", in: "cidr:10.0.0.0/8=;", want: Labels{{Source: "cidr", Key: "10.0.0.0/8"}}},
		{name: "empty", in: "", wantErr: ErrNoLabels},
		{name: "no trailing semicolon", in: "k8s:app=web", wantErr: ErrMalformedLabel},
		{name: "no source", in: "app=web;", wantErr: ErrNoSource},
		{name: "empty source", in: ":app=web;", wantErr: ErrNoSource},
		{name: "no equals", in: "k8s:app;", wantErr: ErrMalformedLabel},
		{name: "empty key", in: "k8s:=web;", wantErr: ErrMalformedLabel},
		{name: "empty element", in: "k8s:a=b;;", wantErr: ErrNoSource},
		{name: "duplicate key", in: "k8s:a=b;container:a=c;", wantErr: ErrDuplicateKey},
		{name: "unsorted", in: "k8s:b=1;k8s:a=2;", wantErr: ErrNotCanonical},
		{name: "source with slash", in: "k/8s:a=b;", wantErr: ErrMalformedLabel},
		{name: "too large", in: "k8s:a=" + strings.Repeat("x", MaxLabelsBytes) + ";", wantErr: ErrLabelsTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLabels(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseLabels(%.80q) error = %v, want %v", tc.in, err, tc.wantErr)
				}
				if len(tc.in) < 100 && !strings.Contains(err.Error(), tc.in) {
					t.Errorf("error %q does not name the input %q", err, tc.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLabels(%q): %v", tc.in, err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ParseLabels(%q) (-want +got):\n%s", tc.in, d)
			}
			if s := got.KVStoreString(); s != tc.in {
				t.Errorf("round trip: %q → %q", tc.in, s)
			}
		})
	}
}

func TestParseLabel(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Label
		wantErr error
	}{
		{name: "full", in: "k8s:app=web", want: Label{"k8s", "app", "web"}},
		{name: "no value", in: "reserved:host", want: Label{"reserved", "host", ""}},
		{name: "colon in key", in: "k8s:a:b=c", want: Label{"k8s", "a:b", "c"}},
		{name: "no source", in: "app=web", wantErr: ErrNoSource},
		{name: "semicolon in value", in: "k8s:a=b;c", wantErr: ErrMalformedLabel},
		{name: "empty key", in: "k8s:", wantErr: ErrMalformedLabel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLabel(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseLabel(%q) error = %v, want %v", tc.in, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.in) {
				t.Errorf("error %q does not name %q", err, tc.in)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestNewLabelsSortsAndFormats(t *testing.T) {
	ls := MustLabels("k8s:zeta=1", "container:alpha=2", "k8s:io.kubernetes.pod.namespace=default").WithCluster("c1")
	want := "container:alpha=2;k8s:io.cilium.k8s.policy.cluster=c1;k8s:io.kubernetes.pod.namespace=default;k8s:zeta=1;"
	if got := ls.KVStoreString(); got != want {
		t.Errorf("KVStoreString = %q, want %q", got, want)
	}
	if c, ok := ls.Cluster(); !ok || c != "c1" {
		t.Errorf("Cluster() = %q, %v", c, ok)
	}
	if got := ls.WithCluster("c2").KVStoreString(); !strings.Contains(got, ClusterLabel+"=c2;") || strings.Contains(got, "=c1;") {
		t.Errorf("WithCluster did not replace: %q", got)
	}
	if _, err := NewLabels(Label{"k8s", "a", "1"}, Label{"container", "a", "2"}); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("duplicate keys: %v", err)
	}
	if _, err := NewLabels(Label{"", "a", "1"}); !errors.Is(err, ErrNoSource) {
		t.Errorf("missing source: %v", err)
	}
}
