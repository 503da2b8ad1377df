package csc

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeBase64(t *testing.T) {
	want := []byte{0xfb, 0xff, 0xfe, 0x01}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"ok std padded", "+//+AQ==", true},
		{"ok std raw", "+//+AQ", true},
		{"ok url padded", "-__-AQ==", true},
		{"ok url raw", "-__-AQ", true},
		{"ok spaces", " +//+AQ== ", true},
		{"fail mixed", "+_/-AQ", false},
		{"fail junk", "!!!", false},
		{"fail bad length", "+//+A", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBase64(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if tc.ok && !bytes.Equal(got, want) {
				t.Fatalf("got %x", got)
			}
			if !tc.ok && !errors.Is(err, ErrBase64) {
				t.Fatalf("error %v does not wrap ErrBase64", err)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	type req struct {
		A string  `json:"a"`
		N int     `json:"n"`
		H []Bytes `json:"h"`
		O struct {
			X string `json:"x"`
		} `json:"o"`
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"ok empty", ``, true},
		{"ok object", `{"a":"x","n":1,"h":["AQ=="],"o":{"x":"y"}}`, true},
		{"ok same key in two objects", `{"o":{"x":"1"},"x":2}`, true},
		{"ok arrays of objects", `{"h":[],"z":[{"a":1},{"a":2}]}`, true},
		{"fail repeated", `{"a":"x","a":"y"}`, false},
		{"fail repeated nested", `{"o":{"x":"1","x":"2"}}`, false},
		{"fail repeated after array", `{"h":["AQ=="],"h":[]}`, false},
		{"fail wrong type", `{"n":"1"}`, false},
		{"fail bad base64", `{"h":["%%%"]}`, false},
		{"fail array", `[1]`, false},
		{"fail trailing", `{"a":"x"} {}`, false},
		{"fail truncated", `{"a":`, false},
		{"fail repeated escaped", `{"a":"x","\u0061":"y"}`, false},
		{"fail repeated in object of many", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k5":5}`, false},
		{"ok many members", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"a":"x"}`, true},
		{"ok name as a value", `{"a":"a","o":{"x":"a","a":"x"}}`, true},
		{"ok quote and comma in strings", `{"a":"x\",\"a\":","o":{"x":"}"},"z":"{"}`, true},
		{"ok deep", `{"z":[[[{"a":1,"b":[{"a":2}]}]]],"a":"x"}`, true},
		{"fail repeated after nested", `{"a":"x","o":{"a":1},"a":"y"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r req
			err := Decode([]byte(tc.in), &r)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}

func TestPSSParamsRoundTrip(t *testing.T) {
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		der, err := MarshalPSSParams(PSSParams{Hash: h, SaltLength: h.Size()})
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParsePSSParams(der)
		if err != nil {
			t.Fatal(err)
		}
		if p.Hash != h || p.SaltLength != h.Size() {
			t.Fatalf("got %+v", p)
		}
	}
	// An empty SEQUENCE means the RFC defaults: SHA-1, salt 20.
	p, err := ParsePSSParams([]byte{0x30, 0x00})
	if err != nil || p.Hash != crypto.SHA1 || p.SaltLength != 20 {
		t.Fatalf("defaults: %+v %v", p, err)
	}
	if _, err := ParsePSSParams([]byte{0x04, 0x01, 0x00}); err == nil {
		t.Fatal("accepted garbage")
	}
}

func FuzzDecodeBase64(f *testing.F) {
	f.Add("+//+AQ==")
	f.Add("-_")
	f.Fuzz(func(t *testing.T, s string) { _, _ = DecodeBase64(s) })
}

func FuzzParsePSSParams(f *testing.F) {
	der, _ := MarshalPSSParams(PSSParams{Hash: crypto.SHA256, SaltLength: 32})
	f.Add(der)
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParsePSSParams(b) })
}

// FuzzUniqueNames checks the one-scan duplicate check of Decode against
// encoding/json's token stream on every valid JSON object.
func FuzzUniqueNames(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":[1,{"c":"\\\"","c":0}]}}`, `{"\u0061":1,"a":2}`,
		`{"credentialID":"x","SAD":"y","hashes":["AQ=="],"signAlgo":"1.2.840.10045.4.3.2"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data)
		if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
			return
		}
		fast, slow := uniqueNames(data), checkDuplicates(data)
		if (fast == nil) != (slow == nil) {
			t.Fatalf("%q: one scan says %v, the token stream %v", data, fast, slow)
		}
	})
}

// BenchmarkDecode decodes a signatures/signHash request body, the hot path
// of a signature on the server.
func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"credentialID":"4f1c2b8e-93d0-4a51-8c77-2e6f0b9d1a34","SAD":"c2FkLXRva2VuLXdpdGgtc29tZS1sZW5ndGgtdG8tbWF0Y2gtYS1yZWFsLW9uZQ","hashes":["n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="],"hashAlgorithmOID":"2.16.840.1.101.3.4.2.1","signAlgo":"1.2.840.10045.4.3.2","operationMode":"S"}`)
	b.ReportAllocs()
	for b.Loop() {
		var r SignHashRequest
		if err := Decode(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBytesJSON holds Bytes' JSON forms to encoding/json's: the marshalled
// string is what json.Marshal makes of the base64 text, and what
// unmarshals (directly or through the escaped form) is what the string
// json.Unmarshal reads decodes to.
func TestBytesJSON(t *testing.T) {
	for _, v := range [][]byte{nil, {}, {1}, {0xfb, 0xff}, bytes.Repeat([]byte{0xfe, 0x3e, 0x80}, 100)} {
		got, err := json.Marshal(Bytes(v))
		want, _ := json.Marshal(base64.StdEncoding.EncodeToString(v))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Marshal(%x) = %s, %v; want %s", v, got, err, want)
		}
	}
	tests := []struct {
		name, in string
		want     []byte // nil: an error
	}{
		{"plain", `"AQID"`, []byte{1, 2, 3}},
		{"padded", `"AQ=="`, []byte{1}},
		{"url-safe", `"-_8"`, []byte{0xfb, 0xff}},
		{"spaces", `" AQID "`, []byte{1, 2, 3}},
		{"empty", `""`, []byte{}},
		{"escaped padding", `"AQ\u003d\u003d"`, []byte{1}},
		{"escaped slash", `"\/\/8"`, []byte{0xff, 0xff}},
		{"escaped newline", `"AQ\nID"`, []byte{1, 2, 3}},
		{"null", `null`, []byte{}},
		{"bad", `"%%%"`, nil},
		{"not a string", `12`, nil},
		{"non-ASCII", `"AQ€"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b Bytes
			err := json.Unmarshal([]byte(tc.in), &b)
			if tc.want == nil {
				if !errors.Is(err, ErrBase64) {
					t.Fatalf("err = %v, want ErrBase64", err)
				}
				return
			}
			if err != nil || !bytes.Equal(b, tc.want) {
				t.Fatalf("got %x, %v; want %x", []byte(b), err, tc.want)
			}
		})
	}
}
