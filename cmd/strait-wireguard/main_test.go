package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strait-net/strait/encryption/wireguard"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr string
	}{
		{name: "name only", args: []string{"strait-wg0"}, want: options{mtu: 1420, logLevel: 1, name: "strait-wg0"}},
		{name: "all flags", args: []string{"--mtu", "1370", "--log-level", "debug", "wg1"}, want: options{mtu: 1370, logLevel: 2, name: "wg1"}},
		{name: "flag=value", args: []string{"--mtu=9000", "-log-level=silent", "wg1"}, want: options{mtu: 9000, logLevel: 0, name: "wg1"}},
		{name: "unknown flag", args: []string{"--foreground", "wg0"}, wantErr: "flag provided but not defined: -foreground"},
		{name: "upstream short flag", args: []string{"-f", "wg0"}, wantErr: "not defined: -f"},
		{name: "no name", args: nil, wantErr: "missing interface name"},
		{name: "two names", args: []string{"wg0", "wg1"}, wantErr: "exactly one interface name"},
		{name: "flag after name", args: []string{"wg0", "--mtu", "1400"}, wantErr: "flags go before the name"},
		{name: "name looks like a flag", args: []string{"--", "-x"}, wantErr: "starts with '-'"},
		{name: "name too long", args: []string{"a-very-long-name0"}, wantErr: "longer than 15 bytes"},
		{name: "name with slash", args: []string{"../etc"}, wantErr: "contains '/'"},
		{name: "mtu too small", args: []string{"--mtu", "100", "wg0"}, wantErr: "--mtu 100 outside"},
		{name: "mtu not a number", args: []string{"--mtu", "big", "wg0"}, wantErr: `invalid value "big" for flag -mtu`},
		{name: "bad log level", args: []string{"--log-level", "loud", "wg0"}, wantErr: `--log-level "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got, help, err := parseArgs(tt.args, &out)
			if help {
				t.Fatal("help reported")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseArgs(%q) = %+v, %v; want error containing %q", tt.args, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(options{})); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

// run never starts a device for help or bad usage, and says why on stderr.
func TestRunUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "--help", args: []string{"--help"}, wantCode: 0, wantStdout: "Usage: strait-wireguard [--mtu N] [--log-level L] IFNAME"},
		{name: "-h", args: []string{"-h"}, wantCode: 0, wantStdout: "/var/run/wireguard/IFNAME.sock"},
		{name: "help then name", args: []string{"--help", "wg0"}, wantCode: 0, wantStdout: "-mtu int"},
		{name: "unknown flag", args: []string{"--bogus", "wg0"}, wantCode: wireguard.ExitUsage, wantStderr: "strait-wireguard: flag provided but not defined: -bogus\nRun 'strait-wireguard --help' for usage.\n"},
		{name: "version is not a name", args: []string{"--version"}, wantCode: wireguard.ExitUsage, wantStderr: "not defined: -version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
			if tt.wantStderr == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// FuzzParseArgs: arbitrary argument vectors (NUL-separated) never panic,
// and an accepted one names a valid device and MTU.
func FuzzParseArgs(f *testing.F) {
	f.Add("strait-wg0")
	f.Add("--mtu\x001370\x00wg0")
	f.Add("--help")
	f.Add("-f\x00wg0")
	f.Add("--\x00-x")
	f.Fuzz(func(t *testing.T, s string) {
		var args []string
		if s != "" {
			args = strings.Split(s, "\x00")
		}
		var out bytes.Buffer
		opts, help, err := parseArgs(args, &out)
		if help || err != nil {
			return
		}
		if verr := wireguard.ValidateDeviceName(opts.name); verr != nil {
			t.Fatalf("accepted invalid name %q: %v", opts.name, verr)
		}
		if opts.mtu < 576 || opts.mtu > 65535 {
			t.Fatalf("accepted MTU %d", opts.mtu)
		}
	})
}
