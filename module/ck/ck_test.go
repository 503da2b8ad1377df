package ck

import (
	"errors"
	"fmt"
	"testing"
)

func TestRV(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want uint
	}{
		{"ok nil", nil, 0},
		{"ok plain", CKR_PIN_INCORRECT, 0xA0},
		{"ok wrapped", fmt.Errorf("login: %w", CKR_PIN_LOCKED), 0xA4},
		{"ok joined", errors.Join(errors.New("x"), CKR_DEVICE_ERROR), 0x30},
		{"fail other", errors.New("boom"), 0x6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RV(tt.err); got != tt.want {
				t.Errorf("RV() = %#x, want %#x", got, tt.want)
			}
		})
	}
}

func TestErrorName(t *testing.T) {
	if got := CKR_BUFFER_TOO_SMALL.Error(); got != "CKR_BUFFER_TOO_SMALL (0x150)" {
		t.Errorf("Error() = %q", got)
	}
	if got := Error(0x7777).Name(); got != "CKR_0x7777" {
		t.Errorf("Name() = %q", got)
	}
	if got := (CKR_VENDOR_DEFINED + 5).Name(); got != "CKR_VENDOR_DEFINED+0x5" {
		t.Errorf("Name() = %q", got)
	}
}

func TestPadString(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc  "},
		{"abcdef", 4, "abcd"},
		{"", 3, "   "},
		{"aé", 2, "a "}, // é is two bytes: cut before it, not inside it
		{"a€b", 3, "a  "},
	}
	for _, tt := range tests {
		if got := string(PadString(tt.in, tt.n)); got != tt.want {
			t.Errorf("PadString(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestPSSParamsRoundTrip(t *testing.T) {
	p := PSSParams{HashAlg: CKM_SHA256, MGF: CKG_MGF1_SHA256, SLen: 32}
	b := p.Encode()
	if len(b) != 3*ULongSize {
		t.Fatalf("len = %d", len(b))
	}
	got, ok := DecodePSSParams(b)
	if !ok || got != p {
		t.Fatalf("DecodePSSParams = %+v, %v", got, ok)
	}
	if _, ok := DecodePSSParams(b[1:]); ok {
		t.Fatal("short params accepted")
	}
}
