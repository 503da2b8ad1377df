package main

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientAdd registers OAuth2 clients with rssp admin client add.
func TestClientAdd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rssp")
	if _, _, err := runCmd(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "rssp.toml")
	admin := func(stdin string, args ...string) (string, string, error) {
		return runCmd(t, stdin, append([]string{"admin", "--config", cfg, "client", "add"}, args...)...)
	}
	if _, _, err := runCmd(t, "a good password\n", "admin", "--config", cfg, "user", "add", "alice", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		stdin   string
		args    []string
		wantOut string // "secret": a generated secret; otherwise the exact line
		wantErr string
	}{
		{"ok public loopback", "", []string{"--id", "desktop", "--redirect-uri", "http://127.0.0.1/callback", "--public", "--name", "Desktop signer"}, "desktop", ""},
		{"ok public two URIs", "", []string{"--id", "mobile", "--redirect-uri", "com.example.app:/cb", "--redirect-uri", "http://[::1]/cb", "--public"}, "mobile", ""},
		{"ok confidential generated secret", "", []string{"--id", "portal", "--redirect-uri", "https://portal.example/cb"}, "secret", ""},
		{"ok confidential secret from stdin", "a-long-enough-client-secret\n", []string{"--id", "batch", "--redirect-uri", "https://batch.example/cb", "--secret-stdin", "--user", "alice"}, "batch", ""},
		{"ok client credentials only", "", []string{"--id", "robot", "--user", "alice"}, "secret", ""},
		{"fail taken ID", "", []string{"--id", "desktop", "--redirect-uri", "http://127.0.0.1/callback", "--public"}, "", "already exists"},
		{"fail no ID", "", []string{"--redirect-uri", "http://127.0.0.1/cb", "--public"}, "", "client add --id"},
		{"fail no redirect URI", "", []string{"--id", "x1", "--public"}, "", "client add --id"},
		{"fail http not loopback", "", []string{"--id", "x2", "--redirect-uri", "http://example.com/cb", "--public"}, "", "loopback"},
		{"fail fragment", "", []string{"--id", "x3", "--redirect-uri", "https://a.example/cb#f", "--public"}, "", "fragment"},
		{"fail relative", "", []string{"--id", "x4", "--redirect-uri", "/cb", "--public"}, "", "absolute"},
		{"fail bad ID", "", []string{"--id", "a b", "--redirect-uri", "https://a.example/cb"}, "", "invalid client ID"},
		{"fail public with secret", "s3cr3t-s3cr3t-s3cr3t\n", []string{"--id", "x5", "--redirect-uri", "https://a.example/cb", "--public", "--secret-stdin"}, "", "confidential"},
		{"fail short secret", "short\n", []string{"--id", "x6", "--redirect-uri", "https://a.example/cb", "--secret-stdin"}, "", "16 characters"},
		{"fail public for a user", "", []string{"--id", "x7", "--redirect-uri", "https://a.example/cb", "--public", "--user", "alice"}, "", "confidential"},
		{"fail unknown user", "", []string{"--id", "x8", "--user", "bob"}, "", "no user"},
		{"fail secret as a flag", "", []string{"--id", "x9", "--redirect-uri", "https://a.example/cb", "--secret", "s3cr3t-s3cr3t-s3cr3t"}, "", "unknown flag: --secret"},
	}
	var secrets []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := admin(tc.stdin, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("client add: %v", err)
			}
			out = strings.TrimSpace(out)
			if tc.wantOut == "secret" {
				if len(out) < 40 || strings.ContainsAny(out, " \n") || !strings.Contains(stderr, "shown only now") {
					t.Fatalf("stdout %q stderr %q: want the generated secret", out, stderr)
				}
				secrets = append(secrets, out)
			} else if out != tc.wantOut {
				t.Fatalf("stdout %q, want %q", out, tc.wantOut)
			}
		})
	}
	// Secrets are stored argon2id-hashed.
	db, err := sql.Open("sqlite", filepath.Join(dir, "rssp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var public, hashed int
	if err := db.QueryRow(`SELECT count(*) FILTER (WHERE secret_hash = ''), count(*) FILTER (WHERE secret_hash LIKE '$argon2id$%') FROM oauth_clients`).Scan(&public, &hashed); err != nil {
		t.Fatal(err)
	}
	if public != 2 || hashed != 3 {
		t.Errorf("clients: %d public, %d with an argon2id hash; want 2 and 3", public, hashed)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "rssp.db"))
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(filepath.Join(dir, "rssp.db-wal"))
	for _, s := range append(secrets, "a-long-enough-client-secret") {
		if bytes.Contains(raw, []byte(s)) || bytes.Contains(wal, []byte(s)) {
			t.Errorf("a client secret is stored in clear")
		}
	}
}
