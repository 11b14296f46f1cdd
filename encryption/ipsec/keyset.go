package ipsec

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// DefaultRotationDelay is how long a replaced key stays live (its states
// installed) after the node switched to the next one, as Cilium's
// ipsec-key-rotation-duration.
const DefaultRotationDelay = 5 * time.Minute

// NextSPI is the key index that must follow spi: spi+1, 15 wraps to 1.
func NextSPI(spi uint8) uint8 {
	if spi >= MaxSPI {
		return 1
	}
	return spi + 1
}

// KeySet is the node's running keys: the current key and the replaced ones
// not yet retired. It is a plain value driven with explicit times (no clock,
// no goroutine); Manager owns one.
type KeySet struct {
	delay    time.Duration
	current  uint8
	keys     map[uint8]Key
	retireAt map[uint8]time.Time
}

// NewKeySet starts from a parsed key file: the last line is current; the
// earlier lines (a restart in the middle of a rotation) stay live until
// now+delay.
func NewKeySet(file []Key, delay time.Duration, now time.Time) (*KeySet, error) {
	if len(file) == 0 {
		return nil, ErrNoKeys
	}
	s := &KeySet{delay: delay, keys: map[uint8]Key{}, retireAt: map[uint8]time.Time{}}
	for _, k := range file {
		s.keys[k.SPI] = k
		s.retireAt[k.SPI] = now.Add(delay)
	}
	s.current = file[len(file)-1].SPI
	delete(s.retireAt, s.current)
	return s, nil
}

// Current is the current key index.
func (s *KeySet) Current() uint8 { return s.current }

// Live returns the running keys sorted by SPI.
func (s *KeySet) Live() []Key {
	out := slices.Collect(maps.Values(s.keys))
	slices.SortFunc(out, func(a, b Key) int { return cmp.Compare(a.SPI, b.SPI) })
	return out
}

// Update applies a newly read key file (name for errors). Its last line is
// the new current key, which must be the current one or NextSPI(current); a
// line whose SPI is running with another key is refused. On refusal the
// error wraps ErrRotation, names the line, and the set is unchanged. A
// rotation makes the old current key retire at now+delay. Reports whether
// the set changed.
func (s *KeySet) Update(file []Key, name string, now time.Time) (bool, error) {
	if len(file) == 0 {
		return false, fmt.Errorf("%s: %w", name, ErrNoKeys)
	}
	for _, k := range file {
		if run, ok := s.keys[k.SPI]; ok && !run.Equal(k) {
			return false, fmt.Errorf("%s:%d: spi: %d is in use with another key; a new key needs a new SPI (running keys stay): %w", name, k.Line, k.SPI, ErrRotation)
		}
	}
	last := file[len(file)-1]
	if last.SPI == s.current {
		return false, nil
	}
	if want := NextSPI(s.current); last.SPI != want {
		return false, fmt.Errorf("%s:%d: spi: %d follows %d; the next key must have SPI %d (running keys stay): %w", name, last.Line, last.SPI, s.current, want, ErrRotation)
	}
	s.retireAt[s.current] = now.Add(s.delay)
	s.keys[last.SPI] = last
	delete(s.retireAt, last.SPI)
	s.current = last.SPI
	return true, nil
}

// Expire retires the replaced keys whose time has come; reports whether any.
func (s *KeySet) Expire(now time.Time) bool {
	changed := false
	for spi, at := range s.retireAt {
		if !now.Before(at) {
			delete(s.retireAt, spi)
			delete(s.keys, spi)
			changed = true
		}
	}
	return changed
}

// NextExpiry is the earliest pending retirement, if any.
func (s *KeySet) NextExpiry() (time.Time, bool) {
	var t time.Time
	for _, at := range s.retireAt {
		if t.IsZero() || at.Before(t) {
			t = at
		}
	}
	return t, !t.IsZero()
}
