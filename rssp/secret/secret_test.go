package secret

import (
	"errors"
	"testing"
)

func TestHashVerify(t *testing.T) {
	fast := Params{Time: 1, Memory: 64, Threads: 1}
	h, err := Hash("1234", fast)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pw      string
		encoded string
		want    error
	}{
		{"ok", "1234", h, nil},
		{"fail wrong", "1235", h, ErrMismatch},
		{"fail empty", "", h, ErrMismatch},
		{"fail format", "1234", "$argon2i$v=19$m=64,t=1,p=1$AAAA$AAAA", ErrFormat},
		{"fail garbage", "1234", "plain", ErrFormat},
		{"fail huge memory", "1234", "$argon2id$v=19$m=99999999,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", ErrFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(tc.pw, tc.encoded); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	h2, _ := Hash("1234", fast)
	if h == h2 {
		t.Fatal("two hashes of one PIN are equal: salt not random")
	}
}

func TestTokens(t *testing.T) {
	a, _ := NewToken()
	b, _ := NewToken()
	if a == b || len(a) != 43 {
		t.Fatalf("tokens %q %q", a, b)
	}
	if string(TokenHash(a)) == string(TokenHash(b)) || len(TokenHash(a)) != 32 {
		t.Fatal("token hash")
	}
}
