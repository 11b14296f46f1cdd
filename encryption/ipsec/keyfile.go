package ipsec

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// MaxSPI is the largest key index (Cilium's IPsecMaxKeyVersion): the index
// sits in 4 bits of the wire SPI, and 0 means "no encryption".
const MaxSPI = 15

// Key is one line of the key file: a key index (SPI) and either an AEAD
// algorithm with its key, or a legacy auth + encryption pair.
type Key struct {
	// SPI is the key index, 1..15. It is not the wire SPI: see WireSPI.
	SPI uint8
	// PerNodePair is true when the line's SPI carried a '+': the key is the
	// input of DeriveNodePairKey, so every ordered node pair gets its own key.
	// Without '+', every pair uses the global key as it is (deprecated by
	// Cilium as insecure; accepted for compatibility).
	PerNodePair bool

	// AEAD form ("rfc4106(gcm(aes))"); empty for the legacy form.
	Algo    string
	Key     []byte // includes the 4-byte salt for rfc4106
	ICVBits int

	// Legacy form: auth and encryption algorithms with their keys.
	AuthAlgo string
	AuthKey  []byte
	EncAlgo  string
	EncKey   []byte

	// Line is the 1-based line of the key file the key came from (0 if not
	// from a file); only for error messages, not part of Equal.
	Line int
}

// AEAD reports whether the key uses the AEAD form.
func (k Key) AEAD() bool { return k.Algo != "" }

// Equal reports whether a and b are the same key (algorithms, key bytes,
// ICV, SPI and the '+' flag); Line is ignored.
func (k Key) Equal(o Key) bool {
	return k.SPI == o.SPI && k.PerNodePair == o.PerNodePair &&
		k.Algo == o.Algo && bytes.Equal(k.Key, o.Key) && k.ICVBits == o.ICVBits &&
		k.AuthAlgo == o.AuthAlgo && bytes.Equal(k.AuthKey, o.AuthKey) &&
		k.EncAlgo == o.EncAlgo && bytes.Equal(k.EncKey, o.EncKey)
}

// String prints the key without its secret bytes.
func (k Key) String() string {
	plus := ""
	if k.PerNodePair {
		plus = "+"
	}
	if k.AEAD() {
		return fmt.Sprintf("%d%s %s (%d-byte key) %d", k.SPI, plus, k.Algo, len(k.Key), k.ICVBits)
	}
	return fmt.Sprintf("%d%s %s (%d-byte key) %s (%d-byte key)", k.SPI, plus, k.AuthAlgo, len(k.AuthKey), k.EncAlgo, len(k.EncKey))
}

// aeadAlgos are the AEAD algorithms accepted, with their key lengths in bytes
// (including the RFC 4106/7634 4-byte salt) and ICV sizes in bits.
var aeadAlgos = map[string]struct{ keyLens, icvs []int }{
	"rfc4106(gcm(aes))":             {keyLens: []int{20, 28, 36}, icvs: []int{96, 128}},
	"rfc7539esp(chacha20,poly1305)": {keyLens: []int{36}, icvs: []int{128}},
}

// authAlgos are the legacy authentication algorithms: key length in bytes and
// the truncation length (bits) used on the wire (RFC 4868 / RFC 2404).
var authAlgos = map[string]struct{ keyLen, truncBits int }{
	"hmac(sha1)":   {keyLen: 20, truncBits: 96},
	"hmac(sha256)": {keyLen: 32, truncBits: 128},
	"hmac(sha384)": {keyLen: 48, truncBits: 192},
	"hmac(sha512)": {keyLen: 64, truncBits: 256},
}

// encAlgos are the legacy encryption algorithms with their key lengths.
var encAlgos = map[string][]int{
	"cbc(aes)": {16, 24, 32},
}

// AuthTruncBits returns the truncation length in bits of a legacy auth
// algorithm accepted by ParseKeyFile (0 if unknown).
func AuthTruncBits(algo string) int { return authAlgos[algo].truncBits }

// KeyFileError is a problem on one line of a key file. Its text is
// "FILE:LINE: FIELD: REASON"; errors.Is(err, ErrKeyFile) holds.
type KeyFileError struct {
	File   string
	Line   int
	Field  string
	Reason string
}

func (e *KeyFileError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrKeyFile) true.
func (e *KeyFileError) Is(target error) bool { return target == ErrKeyFile }

// maxKeyFileBytes bounds what ParseKeyFile reads (a real file is a few lines).
const maxKeyFileBytes = 64 << 10

// ParseKeyFile reads a key file: one key per line, blank lines and lines
// starting with '#' ignored. Two line forms are accepted:
//
//	[SPI][+] AEAD-ALGO HEX-KEY ICV-BITS          e.g. 3+ rfc4106(gcm(aes)) 0a1b...(20 bytes) 128
//	[SPI][+] AUTH-ALGO HEX-AUTH-KEY ENC-ALGO HEX-ENC-KEY   (legacy)
//
// SPI is 1..15; when it is left out the line's SPI is 1 (as Cilium does).
// Hex keys may start with "0x". ICV-BITS must be 96, 128 or 256 and one the
// algorithm supports (GCM: 96 or 128). Cilium's legacy form accepts a sixth
// field, an IP address that scopes the key to one node; strait refuses it
// (keys are per node pair through '+' instead) with an error naming the field.
//
// Several lines are the key history; the LAST line is the current key. An SPI
// may appear only once. Every error is a *KeyFileError "NAME:LINE: FIELD:
// REASON" (errors.Is(err, ErrKeyFile)); read errors are wrapped as is. An
// empty file (no key line) is ErrNoKeys.
func ParseKeyFile(r io.Reader, name string) ([]Key, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", name, err)
	}
	if len(data) > maxKeyFileBytes {
		return nil, &KeyFileError{File: name, Line: 0, Field: "file", Reason: fmt.Sprintf("larger than %d bytes", maxKeyFileBytes)}
	}
	var keys []Key
	seen := map[uint8]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxKeyFileBytes+1)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		k, err := parseKeyLine(text)
		if err != nil {
			err.File, err.Line = name, line
			return nil, err
		}
		k.Line = line
		if prev, dup := seen[k.SPI]; dup {
			return nil, &KeyFileError{File: name, Line: line, Field: "spi",
				Reason: fmt.Sprintf("%d already used on line %d (an SPI may not be reused)", k.SPI, prev)}
		}
		seen[k.SPI] = line
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read key file %s: %w", name, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrNoKeys)
	}
	return keys, nil
}

// parseKeyLine parses one non-empty line; File and Line of the error are
// filled in by the caller.
func parseKeyLine(text string) (Key, *KeyFileError) {
	fields := strings.Fields(text)
	var k Key
	k.SPI = 1
	if spiText, plus := strings.CutSuffix(fields[0], "+"); isDigits(spiText) || (plus && spiText == "") {
		if plus {
			k.PerNodePair = true
		}
		if spiText != "" {
			n, err := strconv.Atoi(spiText)
			if err != nil || n < 1 || n > MaxSPI {
				return k, &KeyFileError{Field: "spi", Reason: fmt.Sprintf("%q is not in 1..%d", spiText, MaxSPI)}
			}
			k.SPI = uint8(n)
		}
		fields = fields[1:]
	} else if strings.HasPrefix(fields[0], "-") || isDigits(strings.TrimPrefix(fields[0], "+")) {
		return k, &KeyFileError{Field: "spi", Reason: fmt.Sprintf("%q is not in 1..%d", fields[0], MaxSPI)}
	}
	switch {
	case len(fields) == 3:
		return parseAEAD(k, fields)
	case len(fields) == 4:
		return parseLegacy(k, fields)
	case len(fields) == 5:
		if _, err := parseLegacy(k, fields[:4]); err != nil {
			return k, err
		}
		return k, &KeyFileError{Field: "ip", Reason: fmt.Sprintf("%q: per-IP keys (a trailing IP on a legacy line) are not supported; remove it and use '+' for per-node-pair keys", fields[4])}
	default:
		return k, &KeyFileError{Field: "line", Reason: fmt.Sprintf("%d fields after the SPI; want 3 (ALGO KEY ICV) or 4 (AUTH-ALGO AUTH-KEY ENC-ALGO ENC-KEY)", len(fields))}
	}
}

func parseAEAD(k Key, f []string) (Key, *KeyFileError) {
	algo, ok := aeadAlgos[f[0]]
	if !ok {
		if _, legacy := authAlgos[f[0]]; legacy {
			return k, &KeyFileError{Field: "algorithm", Reason: fmt.Sprintf("%q is an auth algorithm: the legacy form needs AUTH-ALGO AUTH-KEY ENC-ALGO ENC-KEY", f[0])}
		}
		return k, &KeyFileError{Field: "algorithm", Reason: fmt.Sprintf("unknown AEAD algorithm %q (known: %s)", f[0], strings.Join(sortedKeys(aeadAlgos), ", "))}
	}
	key, err := parseHex("key", f[1], algo.keyLens)
	if err != nil {
		return k, err
	}
	icv, convErr := strconv.Atoi(f[2])
	if convErr != nil || (icv != 96 && icv != 128 && icv != 256) {
		return k, &KeyFileError{Field: "icv-bits", Reason: fmt.Sprintf("%q is not one of 96, 128, 256", f[2])}
	}
	if !slices.Contains(algo.icvs, icv) {
		return k, &KeyFileError{Field: "icv-bits", Reason: fmt.Sprintf("%d is not supported by %s (supported: %s)", icv, f[0], joinInts(algo.icvs))}
	}
	k.Algo, k.Key, k.ICVBits = f[0], key, icv
	return k, nil
}

func parseLegacy(k Key, f []string) (Key, *KeyFileError) {
	auth, ok := authAlgos[f[0]]
	if !ok {
		return k, &KeyFileError{Field: "auth-algorithm", Reason: fmt.Sprintf("unknown auth algorithm %q (known: %s)", f[0], strings.Join(sortedKeys(authAlgos), ", "))}
	}
	authKey, err := parseHex("auth-key", f[1], []int{auth.keyLen})
	if err != nil {
		return k, err
	}
	encLens, ok := encAlgos[f[2]]
	if !ok {
		return k, &KeyFileError{Field: "enc-algorithm", Reason: fmt.Sprintf("unknown encryption algorithm %q (known: %s)", f[2], strings.Join(sortedKeys(encAlgos), ", "))}
	}
	encKey, err := parseHex("enc-key", f[3], encLens)
	if err != nil {
		return k, err
	}
	k.AuthAlgo, k.AuthKey, k.EncAlgo, k.EncKey = f[0], authKey, f[2], encKey
	return k, nil
}

func parseHex(field, s string, lens []int) ([]byte, *KeyFileError) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(s)
	if err != nil {
		var inv hex.InvalidByteError
		reason := "odd number of hex digits"
		if errors.As(err, &inv) {
			reason = fmt.Sprintf("invalid hex digit %q", rune(inv))
		}
		return nil, &KeyFileError{Field: field, Reason: reason}
	}
	if !slices.Contains(lens, len(b)) {
		return nil, &KeyFileError{Field: field, Reason: fmt.Sprintf("%d bytes; want %s", len(b), joinInts(lens))}
	}
	return b, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " or ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
