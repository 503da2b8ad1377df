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

// MarshalJSON implements json.Marshaler: the standard padded alphabet,
// whose characters JSON never escapes, so the string is written as it is.
func (b Bytes) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(b))+2)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, b)
	return append(out, '"'), nil
}

// UnmarshalJSON implements json.Unmarshaler. A string of printable ASCII
// without escapes (every base64 string) is decoded from data directly;
// anything else is read as encoding/json reads a string first.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	s, plain := plainJSONString(data)
	if !plain {
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("%w: not a string", ErrBase64)
		}
	}
	v, err := DecodeBase64(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// plainJSONString returns the value of data, a JSON string, when it holds
// only printable ASCII and no backslash (then its bytes are its value).
func plainJSONString(data []byte) (string, bool) {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return "", false
	}
	in := data[1 : len(data)-1]
	for _, c := range in {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(in), true
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
