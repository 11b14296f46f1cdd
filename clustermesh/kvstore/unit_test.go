package kvstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" = valid
	}{
		{name: "plaintext", cfg: Config{Endpoints: []string{"http://127.0.0.1:2379"}}},
		{name: "mutual TLS", cfg: Config{Endpoints: []string{"https://127.0.0.1:2379"}, TrustedCAFile: "ca", CertFile: "c", KeyFile: "k"}},
		{name: "server TLS only", cfg: Config{Endpoints: []string{"https://127.0.0.1:2379"}, TrustedCAFile: "ca"}},
		{name: "no endpoints", cfg: Config{}, wantErr: "Endpoints is empty"},
		{name: "cert without key", cfg: Config{Endpoints: []string{"https://h:1"}, TrustedCAFile: "ca", CertFile: "c"}, wantErr: "KeyFile is missing"},
		{name: "key without cert", cfg: Config{Endpoints: []string{"https://h:1"}, TrustedCAFile: "ca", KeyFile: "k"}, wantErr: "CertFile is missing"},
		{name: "cert without CA", cfg: Config{Endpoints: []string{"https://h:1"}, CertFile: "c", KeyFile: "k"}, wantErr: "TrustedCAFile is missing"},
		{name: "https without TLS", cfg: Config{Endpoints: []string{"https://h:1"}}, wantErr: "endpoint https://h:1 is https but TrustedCAFile is missing"},
		{name: "http with TLS", cfg: Config{Endpoints: []string{"http://h:1"}, TrustedCAFile: "ca"}, wantErr: "endpoint http://h:1 is http"},
		{name: "no scheme", cfg: Config{Endpoints: []string{"127.0.0.1:2379"}}, wantErr: "127.0.0.1:2379"},
		{name: "bad scheme", cfg: Config{Endpoints: []string{"unix://x:1"}}, wantErr: `scheme "unix"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrConfig) {
				t.Fatalf("validate = %v, want ErrConfig containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{DialTimeout: 5 * time.Second, LeaseTTL: 15 * time.Minute, MaxBackoff: 30 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("defaults (-want +got):\n%s", diff)
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		max   time.Duration
		steps int
		want  []time.Duration // upper bounds per step; each delay is in [d/2, d]
	}{
		{name: "doubles then caps", max: 400 * time.Millisecond, steps: 6,
			want: []time.Duration{50, 100, 200, 400, 400, 400}},
		{name: "cap below first step", max: 20 * time.Millisecond, steps: 3,
			want: []time.Duration{20, 20, 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackoff(tc.max)
			for i := 0; i < tc.steps; i++ {
				d := b.next()
				hi := tc.want[i] * time.Millisecond
				if d < hi/2 || d > hi {
					t.Fatalf("step %d: delay %v not in [%v, %v]", i, d, hi/2, hi)
				}
			}
			b.reset()
			if d := b.next(); d > minBackoff {
				t.Fatalf("after reset: delay %v > %v", d, minBackoff)
			}
		})
	}
}

func TestEventKindString(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind EventKind
		want string
	}{
		{name: "upsert", kind: EventUpsert, want: "upsert"},
		{name: "delete", kind: EventDelete, want: "delete"},
		{name: "list done", kind: EventListDone, want: "list-done"},
		{name: "unknown", kind: 9, want: "EventKind(9)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.kind.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCacheApply(t *testing.T) {
	type result struct {
		Entries  map[string]string
		Snapshot Snapshot
		Synced   bool
	}
	for _, tc := range []struct {
		name   string
		events []Event
		want   result
	}{
		{
			name: "empty",
			want: result{Entries: map[string]string{}, Snapshot: Snapshot{Keys: map[string]int64{}}},
		},
		{
			name: "list then changes",
			events: []Event{
				{Kind: EventUpsert, Key: "a", Value: []byte("1"), Revision: 2},
				{Kind: EventUpsert, Key: "b", Value: []byte("2"), Revision: 3},
				{Kind: EventListDone, Revision: 4},
				{Kind: EventUpsert, Key: "a", Value: []byte("1b"), Revision: 5},
				{Kind: EventDelete, Key: "b", Revision: 6},
				{Kind: EventDelete, Key: "never", Revision: 7},
			},
			want: result{
				Entries:  map[string]string{"a": "1b"},
				Snapshot: Snapshot{Revision: 7, Keys: map[string]int64{"a": 5}},
				Synced:   true,
			},
		},
		{
			name: "not synced before list done",
			events: []Event{
				{Kind: EventUpsert, Key: "a", Value: []byte("corrupt{"), Revision: 2},
			},
			want: result{
				Entries:  map[string]string{"a": "corrupt{"},
				Snapshot: Snapshot{Revision: 2, Keys: map[string]int64{"a": 2}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache()
			for _, ev := range tc.events {
				c.Apply(ev)
			}
			got := result{Entries: c.Entries(), Snapshot: c.Snapshot()}
			select {
			case <-c.Synced():
				got.Synced = true
			default:
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("cache (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzConfigValidate feeds endpoint strings (read from config files) to
// validate: it must not panic, and an error must wrap ErrConfig.
func FuzzConfigValidate(f *testing.F) {
	f.Add("https://127.0.0.1:2379", "ca")
	f.Add("http://[::1]:2379", "")
	f.Add("://", "")
	f.Add("%zz", "ca")
	f.Fuzz(func(t *testing.T, endpoint, ca string) {
		err := Config{Endpoints: []string{endpoint}, TrustedCAFile: ca}.validate()
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Fatalf("validate(%q) = %v, want ErrConfig", endpoint, err)
		}
	})
}
