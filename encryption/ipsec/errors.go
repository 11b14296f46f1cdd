package ipsec

import "errors"

// Errors returned by this package; test them with errors.Is.
var (
	// ErrKeyFile: a key file line is invalid (the *KeyFileError names file, line and field).
	ErrKeyFile = errors.New("ipsec: invalid key file")
	// ErrNoKeys: a key file holds no key line.
	ErrNoKeys = errors.New("ipsec: key file has no key")
	// ErrRotation: a new key file breaks the rotation rules (SPI not old+1,
	// an SPI reused with another key); the running keys stay in use.
	ErrRotation = errors.New("ipsec: key rotation refused")
	// ErrBootID: a boot ID is shorter than the 36 characters of a UUID.
	ErrBootID = errors.New("ipsec: boot ID shorter than 36 characters")
	// ErrNode: a node cannot take part (no IP, no boot ID for a per-pair key,
	// or a duplicate node).
	ErrNode = errors.New("ipsec: invalid node")
	// ErrTooManyNodes: more than 65,535 nodes in the mesh (16-bit node IDs).
	ErrTooManyNodes = errors.New("ipsec: more than 65535 nodes")
	// ErrNoKey: the current key index is not among the keys given.
	ErrNoKey = errors.New("ipsec: current key missing")
	// ErrNotSupported: the kernel cannot do IPsec (no XFRM, no ESP or no
	// AEAD algorithm); the agent must refuse IPsec mode.
	ErrNotSupported = errors.New("ipsec: not supported by the kernel")
)
