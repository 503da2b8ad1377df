package csc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrMalformed is wrapped by every error of Decode.
var ErrMalformed = errors.New("malformed JSON body")

// Decode parses a JSON request body into v, refusing what encoding/json
// lets pass silently: a repeated member name in any object, a body that is
// not one JSON object, and trailing data. Wrong types are errors too.
func Decode(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if data[0] != '{' {
		return fmt.Errorf("%w: the body must be a JSON object", ErrMalformed)
	}
	if err := checkDuplicates(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%w: parameter %s has the wrong type (%s, want %s)", ErrMalformed, te.Field, te.Value, te.Type)
		}
		if errors.Is(err, ErrBase64) {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	return nil
}

// checkDuplicates walks the token stream and fails on a repeated key.
func checkDuplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				markValue(stack)
				continue
			}
			k, _ := tok.(string)
			if top.keys[k] {
				return fmt.Errorf("%w: parameter %q is repeated", ErrMalformed, k)
			}
			top.keys[k] = true
			top.expKey = false
			continue
		}
		switch d := tok.(type) {
		case json.Delim:
			switch d {
			case '{':
				stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expKey: true})
			case '[':
				stack = append(stack, &frame{})
			case ']', '}':
				stack = stack[:len(stack)-1]
				markValue(stack)
			}
		default:
			markValue(stack)
		}
	}
}

type frame struct {
	obj    bool            // an object (else an array)
	keys   map[string]bool // member names seen
	expKey bool            // the next token is a member name
}

// markValue notes that a value ended inside the innermost container.
func markValue(stack []*frame) {
	if len(stack) > 0 && stack[len(stack)-1].obj {
		stack[len(stack)-1].expKey = true
	}
}
