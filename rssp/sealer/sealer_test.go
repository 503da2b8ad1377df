package sealer

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k := GenerateKEK()
	other := GenerateKEK()
	plaintext := []byte("a PKCS#8 key or a TOTP seed")
	aad := []byte("keystore/soft ec-p256")
	sealed := k.Seal(plaintext, aad)

	if got, want := len(sealed), len(plaintext)+Overhead; got != want {
		t.Fatalf("len(sealed) = %d, want %d", got, want)
	}
	if bytes.Contains(sealed, plaintext) {
		t.Fatal("sealed value contains the plaintext")
	}
	if again := k.Seal(plaintext, aad); bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same plaintext are equal: nonce not random")
	}

	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name    string
		kek     *KEK
		sealed  []byte
		aad     []byte
		wantErr bool
	}{
		{"ok", k, sealed, aad, false},
		{"ok empty plaintext and aad", k, k.Seal(nil, nil), nil, false},
		{"fail wrong aad", k, sealed, []byte("keystore/soft ec-p384"), true},
		{"fail missing aad", k, sealed, nil, true},
		{"fail wrong key", other, sealed, aad, true},
		{"fail tampered version", k, flip(0), aad, true},
		{"fail tampered nonce", k, flip(1), aad, true},
		{"fail tampered ciphertext", k, flip(1 + 12 + 3), aad, true},
		{"fail tampered tag", k, flip(len(sealed) - 1), aad, true},
		{"fail truncated by one", k, sealed[:len(sealed)-1], aad, true},
		{"fail truncated below overhead", k, sealed[:Overhead-1], aad, true},
		{"fail empty", k, nil, aad, true},
		{"fail extended", k, append(bytes.Clone(sealed), 0), aad, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.kek.Open(tt.sealed, tt.aad)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Open succeeded, want error")
				}
				if !errors.Is(err, ErrOpen) {
					t.Fatalf("error %v does not wrap ErrOpen", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if tt.name == "ok" && !bytes.Equal(got, plaintext) {
				t.Fatalf("Open = %q, want %q", got, plaintext)
			}
		})
	}
}

func TestNewKEK(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantErr bool
	}{
		{"ok 32", 32, false},
		{"fail 16", 16, true},
		{"fail 0", 0, true},
		{"fail 33", 33, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKEK(make([]byte, tt.n))
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewKEK(%d bytes) error = %v, wantErr %v", tt.n, err, tt.wantErr)
			}
		})
	}
}

func TestKEKFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	k, err := NewKEKFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("KEK file mode = %04o, want 0600", st.Mode().Perm())
	}
	loaded, err := LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed := k.Seal([]byte("x"), nil)
	if _, err := loaded.Open(sealed, nil); err != nil {
		t.Fatalf("loaded KEK cannot open what the new one sealed: %v", err)
	}

	// Never overwrite.
	before, _ := os.ReadFile(path)
	if _, err := NewKEKFile(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("NewKEKFile over an existing file: err = %v, want fs.ErrExist", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("NewKEKFile changed an existing file")
	}
}

func TestLoadKEK(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not checked on Windows")
	}
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
		wantErr string // substring; "" = success
	}{
		{"ok 0600", good + "\n", 0o600, ""},
		{"ok 0400", good, 0o400, ""},
		{"ok unpadded", strings.TrimRight(good, "="), 0o600, ""},
		{"ok surrounding whitespace", "  " + good + " \r\n", 0o600, ""},
		{"fail group readable", good, 0o640, "must not be accessible by group or others"},
		{"fail world readable", good, 0o644, "must not be accessible by group or others"},
		{"fail other readable only", good, 0o604, "must not be accessible by group or others"},
		{"fail group writable", good, 0o620, "must not be accessible by group or others"},
		{"fail not base64", "not*base64!", 0o600, "not valid base64"},
		{"fail 16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), 0o600, "decodes to 16 bytes"},
		{"fail empty", "", 0o600, "decodes to 0 bytes"},
		{"fail huge", strings.Repeat("A", 4096), 0o600, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kek")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			k, err := LoadKEK(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadKEK: %v", err)
				}
				if _, err := k.Open(k.Seal([]byte("x"), nil), nil); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LoadKEK error = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), tt.content) && tt.content != "" {
				t.Fatalf("error echoes the file content: %v", err)
			}
		})
	}

	t.Run("fail missing", func(t *testing.T) {
		_, err := LoadKEK(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("fail directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKEK(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v, want not a regular file", err)
		}
	})
}

func TestKEKFromEnv(t *testing.T) {
	raw := bytes.Repeat([]byte{9}, 32)
	tests := []struct {
		name    string
		value   *string // nil = unset
		wantErr string
	}{
		{"ok", ptr(base64.StdEncoding.EncodeToString(raw)), ""},
		{"fail unset", nil, "is not set"},
		{"fail empty", ptr(""), "is not set"},
		{"fail bad base64", ptr("%%%"), "not valid base64"},
		{"fail short", ptr(base64.StdEncoding.EncodeToString(raw[:31])), "decodes to 31 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const name = "CSCTOKEN_TEST_KEK"
			if tt.value == nil {
				t.Setenv(name, "") // restores afterwards
				os.Unsetenv(name)
			} else {
				t.Setenv(name, *tt.value)
			}
			k, err := KEKFromEnv(name)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				want, _ := NewKEK(raw)
				if _, err := want.Open(k.Seal([]byte("x"), nil), nil); err != nil {
					t.Fatalf("env KEK differs from the encoded key: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestKEKDoesNotPrintKey(t *testing.T) {
	k := GenerateKEK()
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%+v", k)} {
		if s != "sealer.KEK(redacted)" {
			t.Errorf("formatted KEK = %q", s)
		}
	}
}

func ptr[T any](v T) *T { return &v }
