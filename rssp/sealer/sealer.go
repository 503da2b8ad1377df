// Package sealer holds the RSSP's key-encryption key (KEK) and seals small
// secrets with it: the software keystore's private keys, TOTP seeds, and
// anything else the RSSP must keep at rest but never in clear.
//
// A KEK is a 32-byte AES-256 key. It lives in a file (base64, mode 0600,
// created by NewKEKFile, read by LoadKEK) or in an environment variable
// (KEKFromEnv, e.g. RSSP_KEK), never in the database it protects.
//
// Sealed format (version 1):
//
//	0x01 || nonce (12 bytes, random) || AES-256-GCM ciphertext || tag (16 bytes)
//
// The version byte is authenticated together with the caller's additional
// data (aad), which binds a sealed value to its context (for example
// "keystore/soft ec-p256" or "totp user 42"): opening it under another aad
// fails. Random 96-bit nonces keep a KEK safe for well over a billion seals;
// the RSSP seals one value per key or TOTP enrolment, far below that.
//
// A *KEK is safe for concurrent use.
//
// Usage:
//
//	kek, err := sealer.LoadKEK("/etc/csctoken/kek")
//	sealed := kek.Seal(seed, []byte("totp:alice"))
//	seed, err = kek.Open(sealed, []byte("totp:alice"))
package sealer

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// KeySize is the length of a KEK in bytes (AES-256).
const KeySize = 32

// version1 marks AES-256-GCM with a random 96-bit nonce prepended.
const version1 byte = 1

// Overhead is how many bytes Seal adds to the plaintext: version byte,
// nonce and GCM tag.
const Overhead = 1 + 12 + 16

// kekFileMode is the mode NewKEKFile creates; LoadKEK refuses any
// permission bit for group or others.
const kekFileMode fs.FileMode = 0o600

// maxKEKFile bounds what LoadKEK reads: a base64 KEK is 44 bytes.
const maxKEKFile = 1024

// ErrOpen is wrapped by every Open failure: a wrong key, a wrong aad, a
// truncated or tampered value, or an unknown format version. The cases are
// deliberately not told apart beyond the message.
var ErrOpen = errors.New("sealer: cannot open sealed value (wrong key or context, or corrupted)")

// KEK is a key-encryption key. The zero value is not usable; obtain one
// from NewKEK, GenerateKEK, NewKEKFile, LoadKEK or KEKFromEnv.
type KEK struct {
	aead cipher.AEAD // AES-256-GCM, random nonce prepended to the ciphertext
}

// NewKEK makes a KEK from 32 raw key bytes (the slice is not retained).
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealer: KEK must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	return &KEK{aead: aead}, nil
}

// GenerateKEK returns a fresh random KEK that exists only in memory
// (for tests and ephemeral demo runs).
func GenerateKEK() *KEK {
	key := make([]byte, KeySize)
	defer clear(key)
	rand.Read(key) // never fails (crypto/rand, Go ≥ 1.24)
	k, err := NewKEK(key)
	if err != nil {
		panic(err) // unreachable: the length is right
	}
	return k
}

// NewKEKFile creates a random KEK, writes it base64-encoded to a new file at
// path with mode 0600 and returns it. It refuses to overwrite an existing
// file (the error wraps fs.ErrExist).
func NewKEKFile(path string) (*KEK, error) {
	key := make([]byte, KeySize)
	defer clear(key)
	rand.Read(key)
	k, err := NewKEK(key)
	if err != nil {
		return nil, err
	}
	data := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	defer clear(data)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, kekFileMode)
	if err != nil {
		return nil, fmt.Errorf("sealer: create KEK file: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("sealer: write KEK file %s: %w", path, err)
	}
	return k, nil
}

// LoadKEK reads a KEK file written by NewKEKFile (base64 of 32 bytes,
// surrounding whitespace ignored). It refuses a file that grants any
// permission to group or others.
func LoadKEK(path string) (*KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sealer: open KEK file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sealer: KEK file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("sealer: KEK file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("sealer: KEK file %s has mode %04o: it must not be accessible by group or others (chmod 600 %s)", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKEKFile+1))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("sealer: read KEK file %s: %w", path, err)
	}
	if len(data) > maxKEKFile {
		return nil, fmt.Errorf("sealer: KEK file %s is too large to be a KEK", path)
	}
	k, err := parseKEK(data)
	if err != nil {
		return nil, fmt.Errorf("sealer: KEK file %s: %w", path, err)
	}
	return k, nil
}

// KEKFromEnv reads a base64 KEK from the environment variable name
// (e.g. RSSP_KEK).
func KEKFromEnv(name string) (*KEK, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return nil, fmt.Errorf("sealer: environment variable %s is not set", name)
	}
	k, err := parseKEK([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("sealer: environment variable %s: %w", name, err)
	}
	return k, nil
}

// parseKEK decodes base64 (standard alphabet, padding optional) of exactly
// KeySize bytes. Errors never echo the input.
func parseKEK(text []byte) (*KEK, error) {
	text = bytes.TrimSpace(text)
	enc := base64.StdEncoding
	if !bytes.HasSuffix(text, []byte("=")) {
		enc = base64.RawStdEncoding
	}
	key := make([]byte, enc.DecodedLen(len(text)))
	defer clear(key)
	n, err := enc.Decode(key, text)
	if err != nil {
		return nil, errors.New("not valid base64 (want the base64 of 32 random bytes)")
	}
	if n != KeySize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", n, KeySize)
	}
	return NewKEK(key[:n])
}

// Seal encrypts and authenticates plaintext, binding it to aad (which is
// not stored: Open needs the same aad). The result is len(plaintext) +
// Overhead bytes.
func (k *KEK) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, 1, Overhead+len(plaintext))
	out[0] = version1
	return k.aead.Seal(out, nil, plaintext, versionedAAD(version1, aad))
}

// Open authenticates and decrypts a value produced by Seal with the same
// KEK and aad. Every failure wraps ErrOpen.
func (k *KEK) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrOpen, len(sealed))
	}
	if sealed[0] != version1 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrOpen, sealed[0])
	}
	pt, err := k.aead.Open(nil, nil, sealed[1:], versionedAAD(version1, aad))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrOpen)
	}
	return pt, nil
}

// String never reveals the key.
func (k *KEK) String() string { return "sealer.KEK(redacted)" }

// GoString never reveals the key, even under %#v.
func (k *KEK) GoString() string { return k.String() }

// versionedAAD authenticates the version byte along with the caller's aad.
func versionedAAD(v byte, aad []byte) []byte {
	b := make([]byte, 0, 1+len(aad))
	b = append(b, v)
	return append(b, aad...)
}
