package wireguard

import (
	"errors"
	"testing"
)

func TestDeviceMTU(t *testing.T) {
	tests := []struct {
		name            string
		underlay, tunOH int
		want            int
		wantErr         bool
	}{
		{name: "ethernet", underlay: 1500, want: 1420},
		{name: "jumbo", underlay: 9000, want: 8920},
		{name: "vxlan tunnel", underlay: 1500, tunOH: 50, want: 1370},
		{name: "smallest that fits", underlay: 1360, want: 1280},
		{name: "too small", underlay: 1359, wantErr: true},
		{name: "tunnel makes it too small", underlay: 1400, tunOH: 50, wantErr: true},
		{name: "max underlay", underlay: 65535, want: 65455},
		{name: "underlay too big", underlay: 65536, wantErr: true},
		{name: "zero underlay", underlay: 0, wantErr: true},
		{name: "negative tunnel", underlay: 1500, tunOH: -1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeviceMTU(tt.underlay, tt.tunOH)
			if tt.wantErr {
				if !errors.Is(err, ErrMTU) {
					t.Fatalf("DeviceMTU(%d, %d) = %d, %v; want ErrMTU", tt.underlay, tt.tunOH, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DeviceMTU(%d, %d) = %d, %v; want %d", tt.underlay, tt.tunOH, got, err, tt.want)
			}
		})
	}
}
