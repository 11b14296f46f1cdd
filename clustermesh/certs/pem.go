package certs

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// File modes of written material.
const (
	CertMode os.FileMode = 0o644
	KeyMode  os.FileMode = 0o600
)

// EncodeCert is the PEM form of cert.
func EncodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// EncodeKey is the PKCS#8 PEM form of key.
func EncodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCert decodes the first CERTIFICATE block of data.
func ParseCert(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, ErrNoCertificate
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		return cert, nil
	}
}

// ParseKey decodes the first private key block of data: PKCS#8 ("PRIVATE
// KEY") or SEC 1 ("EC PRIVATE KEY"), which must hold an ECDSA key.
func ParseKey(data []byte) (*ecdsa.PrivateKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, ErrNoKey
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
			}
			ec, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("parse PKCS#8 key: %T is not an ECDSA key", k)
			}
			return ec, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse EC key: %w", err)
			}
			return k, nil
		}
	}
}

// LoadCert reads a PEM certificate; errors name the file.
func LoadCert(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certs: read %s: %w", file, err)
	}
	cert, err := ParseCert(data)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", file, err)
	}
	return cert, nil
}

// LoadKeyPair reads a certificate and its key and checks that they belong
// together; errors name the file at fault.
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	cert, err := LoadCert(certFile)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read %s: %w", keyFile, err)
	}
	key, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", keyFile, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("certs: %s for %s: %w", keyFile, certFile, ErrKeyMismatch)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA certificate and key; the certificate must be a CA.
func LoadCA(certFile, keyFile string) (*CA, error) {
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if !kp.Cert.IsCA || kp.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("certs: %s: %w", certFile, ErrNotCA)
	}
	return (*CA)(kp), nil
}

// WriteKeyPair writes the certificate (mode 0644) and key (mode 0600).
// The key is written first, so a certificate on disk always has its key.
func WriteKeyPair(certFile, keyFile string, kp *KeyPair) error {
	keyPEM, err := EncodeKey(kp.Key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyFile, keyPEM, KeyMode); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := writeFileAtomic(certFile, EncodeCert(kp.Cert), CertMode); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
