package csc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every error of Decode.
var ErrMalformed = errors.New("malformed JSON body")

// Decode parses a JSON request body into v, refusing what encoding/json
// lets pass silently: a repeated member name in any object, a body that is
// not one JSON object, and trailing data. Wrong types are errors too.
//
// A well-formed body (the case of every request of a working client) is
// checked by one scan over its bytes that allocates nothing but the member
// names of objects with escapes in them, then decoded by json.Unmarshal; a
// malformed one goes through encoding/json's token stream, whose errors
// name the fault.
func Decode(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if data[0] != '{' {
		return fmt.Errorf("%w: the body must be a JSON object", ErrMalformed)
	}
	if !json.Valid(data) {
		return malformed(data)
	}
	if err := uniqueNames(data); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%w: parameter %s has the wrong type (%s, want %s)", ErrMalformed, te.Field, te.Value, te.Type)
		}
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// malformed describes what is wrong with data, which json.Valid refused:
// a repeated member name before the fault, the fault itself, or trailing
// data after one JSON object.
func malformed(data []byte) error {
	if err := checkDuplicates(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
}

// uniqueNames fails on a member name repeated in one object of data, which
// must be valid JSON (json.Valid). Names are compared as encoding/json
// reads them: unescaped ("a" and "\u0061" are the same name), with each
// byte that is not UTF-8 read as U+FFFD. An object's names are compared
// one by one while it has a few, and looked up in a map beyond that, so
// that a body of many members costs linear time.
func uniqueNames(data []byte) error {
	type frame struct {
		obj    bool            // an object (else an array)
		expect bool            // the next string is a member name
		first  int             // the object's names are names[first:]
		seen   map[string]bool // its names, once it has more than a few
	}
	const few = 16
	var (
		stack [8]frame // containers open, the innermost last
		open  = stack[:0]
		names []string
	)
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			open = append(open, frame{obj: true, expect: true, first: len(names)})
		case '[':
			open = append(open, frame{first: len(names)})
		case '}', ']':
			names = names[:open[len(open)-1].first]
			open = open[:len(open)-1]
		case ',':
			if top := &open[len(open)-1]; top.obj {
				top.expect = true
			}
		case '"':
			end, escaped := stringEnd(data, i)
			top := &open[len(open)-1]
			if top.obj && top.expect {
				top.expect = false
				raw := data[i+1 : end]
				name := string(raw)
				if escaped || !utf8.Valid(raw) {
					// encoding/json reads escapes, and bytes that are not
					// UTF-8 as U+FFFD: compare what it reads.
					if err := json.Unmarshal(data[i:end+1], &name); err != nil {
						return fmt.Errorf("%w: %w", ErrMalformed, err)
					}
				}
				if top.seen == nil && len(names)-top.first >= few {
					top.seen = make(map[string]bool, 2*few)
					for _, n := range names[top.first:] {
						top.seen[n] = true
					}
				}
				var repeated bool
				if top.seen != nil {
					repeated = top.seen[name]
					top.seen[name] = true
				} else {
					repeated = slices.Contains(names[top.first:], name)
				}
				if repeated {
					return fmt.Errorf("%w: parameter %q is repeated", ErrMalformed, name)
				}
				names = append(names, name)
			}
			i = end
		}
	}
	return nil
}

// stringEnd is the index of the closing quote of the JSON string that
// opens at data[i], and whether the string has escapes; data is valid JSON.
func stringEnd(data []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++ // the escaped character: never the closing quote
		case '"':
			return j, escaped
		}
	}
	return len(data) - 1, escaped
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
