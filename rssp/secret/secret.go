// Package secret hashes and compares the RSSP's secrets: passwords and PINs
// with argon2id (stored as PHC-style strings), and bearer tokens and SADs,
// which are random and therefore stored as their SHA-256.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Time    uint32 // iterations
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultParams follow OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane).
var DefaultParams = Params{Time: 2, Memory: 19 * 1024, Threads: 1}

// ErrMismatch is returned by Verify for a wrong password or PIN.
var ErrMismatch = errors.New("secret does not match")

// ErrFormat is returned by Verify for an unparsable hash string.
var ErrFormat = errors.New("malformed password hash")

// Hash returns the argon2id hash of pw as
// "$argon2id$v=19$m=MEM,t=TIME,p=THREADS$SALT$HASH" (unpadded base64).
func Hash(pw string, p Params) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify checks pw against an encoded hash in constant time.
func Verify(pw, encoded string) error {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return ErrFormat
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return ErrFormat
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return ErrFormat
	}
	if p.Time == 0 || p.Threads == 0 || p.Memory < 8*uint32(p.Threads) || p.Memory > 4<<20 {
		return ErrFormat
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return ErrFormat
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) < 16 {
		return ErrFormat
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}

// dummy is verified against when a user does not exist, so that a login for
// an unknown name costs as much as one with a wrong password.
var dummy, _ = Hash("csctoken-dummy", DefaultParams)

// VerifyDummy burns the time of one Verify.
func VerifyDummy(pw string) { _ = Verify(pw, dummy) }

// NewToken returns a random 256-bit token, base64url without padding.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random identifier of n bytes as lower-case base32: safe in
// URLs, file names, JSON and X.509 PrintableString (the credential ID goes
// into certificate subjects).
func NewID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on supported systems
	}
	return idEncoding.EncodeToString(b)
}

// TokenHash is the stored form of a token or SAD.
func TokenHash(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}
