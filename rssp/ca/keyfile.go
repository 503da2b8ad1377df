package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Key files are PKCS#8 PEM ("PRIVATE KEY") written with mode 0600.
//
// All private-key I/O of this package (and of package tsa) goes through
// WriteKeyFile and ReadKeyFile, so sealing keys at rest later (with the
// RSSP's key-encryption key, or in an HSM) is a change to these two
// functions only.

const (
	keyFileMode  fs.FileMode = 0o600
	certFileMode fs.FileMode = 0o644
	dirMode      fs.FileMode = 0o700
)

// WriteKeyFile writes key (an *ecdsa.PrivateKey, *rsa.PrivateKey or
// ed25519.PrivateKey) to path as a PKCS#8 PEM file with mode 0600. It refuses
// to replace an existing file (the error wraps fs.ErrExist).
func WriteKeyFile(path string, key crypto.Signer) error {
	data, err := encodeKey(key)
	if err != nil {
		return fmt.Errorf("ca: write key %s: %w", path, err)
	}
	return writeFileExcl(path, data, keyFileMode)
}

// ReadKeyFile reads a private key written by WriteKeyFile.
func ReadKeyFile(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: read key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("ca: read key %s: %w", path, errNoPEM("PRIVATE KEY"))
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: read key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ca: read key %s: %w: %T", path, ErrUnsupportedKey, k)
	}
	return s, nil
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal PKCS#8: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ReadCertFile reads the first certificate of a PEM file.
func ReadCertFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: read certificate: %w", err)
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("ca: read certificate %s: %w", path, errNoPEM("CERTIFICATE"))
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca: read certificate %s: %w", path, err)
		}
		return c, nil
	}
}

// WriteCertFile writes a DER certificate to path as PEM (mode 0644),
// refusing to replace an existing file.
func WriteCertFile(path string, der []byte) error {
	return writeFileExcl(path, encodeCert(der), certFileMode)
}

type errNoPEM string

func (e errNoPEM) Error() string { return "no PEM block of type " + string(e) }

// writeFileExcl creates path with perm, failing if it exists.
func writeFileExcl(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if err = writeAndClose(f, data, perm); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	return nil
}

// replaceFile atomically replaces (or creates) path with data and perm: it
// writes a temporary file in the same directory and renames it.
func replaceFile(path string, data []byte, perm fs.FileMode) (err error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+hex.EncodeToString(rnd[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err = writeAndClose(f, data, perm); err != nil {
		return fmt.Errorf("ca: write %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

func writeAndClose(f *os.File, data []byte, perm fs.FileMode) error {
	// Chmod explicitly, so that the umask does not narrow a certificate's
	// mode; a key file is created 0600 in the first place.
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileSet tracks files created by one operation, so that a failure half-way
// leaves nothing behind.
type fileSet struct{ created []string }

func (s *fileSet) key(path string, key crypto.Signer) error {
	if err := WriteKeyFile(path, key); err != nil {
		return err
	}
	s.created = append(s.created, path)
	return nil
}

func (s *fileSet) cert(path string, der []byte) error {
	if err := WriteCertFile(path, der); err != nil {
		return err
	}
	s.created = append(s.created, path)
	return nil
}

func (s *fileSet) rollback() {
	for _, p := range s.created {
		_ = os.Remove(p)
	}
	s.created = nil
}

// checkAbsent fails with an error wrapping fs.ErrExist if any path exists.
func checkAbsent(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		if err == nil {
			return fmt.Errorf("ca: refusing to overwrite %s: %w", p, fs.ErrExist)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ca: %w", err)
		}
	}
	return nil
}
