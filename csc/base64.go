package csc

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrBase64 is wrapped by every base64 decoding failure.
var ErrBase64 = errors.New("invalid base64")

// DecodeBase64 accepts the standard and the URL-safe alphabet, padded or not,
// and ignores surrounding white space.
func DecodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		if strings.ContainsAny(s, "+/") {
			return nil, fmt.Errorf("%w: mixed alphabets", ErrBase64)
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBase64, err)
		}
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBase64, err)
	}
	return b, nil
}

// Bytes is binary data carried as a base64 JSON string. It marshals with the
// standard padded alphabet and unmarshals either alphabet, padded or not.
type Bytes []byte

// MarshalJSON implements json.Marshaler.
func (b Bytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%w: not a string", ErrBase64)
	}
	v, err := DecodeBase64(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String returns the standard base64 form.
func (b Bytes) String() string { return base64.StdEncoding.EncodeToString(b) }

// BytesList converts [][]byte to []Bytes.
func BytesList(in [][]byte) []Bytes {
	out := make([]Bytes, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

// Raw converts []Bytes to [][]byte.
func Raw(in []Bytes) [][]byte {
	out := make([][]byte, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}
