package main

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAdminUsers drives the user and credential administration: names
// everywhere, --json for scripts, password change, disable, delete with
// and without --force, credential delete, all audited.
func TestAdminUsers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rssp")
	if _, _, err := runCmd(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "rssp.toml")
	admin := func(stdin string, args ...string) (string, error) {
		t.Helper()
		out, _, err := runCmd(t, stdin, append([]string{"admin", "--config", cfg}, args...)...)
		return out, err
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := admin(stdin, args...)
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	out := must("a good password\n", "user", "add", "alice", "--password-stdin")
	if !regexp.MustCompile(`^user alice created: ID \S+\n$`).MatchString(out) {
		t.Errorf("user add: %q", out)
	}
	must("another password\n", "user", "add", "bob", "--password-stdin")
	c1 := strings.TrimSpace(must("123456\n", "credential", "add", "--user", "alice", "--key", "ec-p256", "--pin-stdin", "--description", "seal"))
	c2 := strings.TrimSpace(must("123456\n", "credential", "add", "--user", "alice", "--key", "rsa-2048", "--pin-stdin"))

	list := must("", "user", "list")
	if !regexp.MustCompile(`(?m)^alice\s+\S+\s+enabled\s+2\s`).MatchString(list) || !regexp.MustCompile(`(?m)^bob\s+\S+\s+enabled\s+0\s`).MatchString(list) {
		t.Errorf("user list:\n%s", list)
	}
	var users []struct {
		Name        string `json:"name"`
		ID          string `json:"id"`
		Credentials int    `json:"credentials"`
	}
	if err := json.Unmarshal([]byte(must("", "user", "list", "--json")), &users); err != nil || len(users) != 2 || users[0].Name != "alice" || users[0].Credentials != 2 {
		t.Errorf("user list --json: %+v, %v", users, err)
	}
	creds := must("", "credential", "list")
	if !regexp.MustCompile(`(?m)^` + c1 + `\s+alice\s+ec-p256\s`).MatchString(creds) {
		t.Errorf("credential list does not name the owner:\n%s", creds)
	}
	var cj []struct {
		ID, User, State string
	}
	if err := json.Unmarshal([]byte(must("", "credential", "list", "--json", "--user", "alice")), &cj); err != nil || len(cj) != 2 || cj[0].User != "alice" || cj[0].State != "enabled" {
		t.Errorf("credential list --json: %+v, %v", cj, err)
	}

	// External subjects: set at creation (without a password) or later,
	// unique, shown by user list --json, cleared.
	must("", "user", "add", "carol", "--external-subject", "sub-carol")
	must("", "user", "external-subject", "bob", "https://idp.example/bob")
	for _, bad := range [][]string{
		{"user", "add", "dave", "--external-subject", "sub-carol"},
		{"user", "external-subject", "alice", "sub-carol"},
		{"user", "add", "erin"},
		{"user", "external-subject", "alice"},
		{"user", "external-subject", "alice", " spaced "},
	} {
		if _, err := admin("", bad...); err == nil {
			t.Errorf("%s: accepted", strings.Join(bad, " "))
		}
	}
	var subs []struct {
		Name    string `json:"name"`
		Subject string `json:"externalSubject"`
	}
	if err := json.Unmarshal([]byte(must("", "user", "list", "--json")), &subs); err != nil || len(subs) != 3 ||
		subs[1].Subject != "https://idp.example/bob" || subs[2].Subject != "sub-carol" || subs[0].Subject != "" {
		t.Errorf("user list --json with subjects: %+v, %v", subs, err)
	}
	must("", "user", "external-subject", "carol", "--clear")
	must("", "user", "delete", "carol")

	must("a new password\n", "user", "password", "bob", "--password-stdin")
	if _, err := admin("short\n", "user", "password", "bob", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "8 characters") {
		t.Errorf("short password: %v", err)
	}
	must("", "user", "disable", "bob")
	if !regexp.MustCompile(`(?m)^bob\s+\S+\s+disabled\s`).MatchString(must("", "user", "list")) {
		t.Error("bob not disabled")
	}
	must("", "user", "enable", "bob")
	must("", "user", "delete", "bob")

	if _, err := admin("", "user", "delete", "alice"); err == nil || !strings.Contains(err.Error(), "2 credential(s)") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("delete of a user with credentials: %v", err)
	}
	if out := must("", "credential", "delete", c1); !strings.Contains(out, "deleted, key destroyed") {
		t.Errorf("credential delete: %q", out)
	}
	if _, err := admin("", "credential", "delete", c1); err == nil || !strings.Contains(err.Error(), "no credential") {
		t.Errorf("second delete: %v", err)
	}
	out = must("", "user", "delete", "alice", "--force")
	if !strings.Contains(out, "credential "+c2+": deleted") || !strings.Contains(out, "user alice: deleted") {
		t.Errorf("user delete --force: %q", out)
	}
	if list := must("", "user", "list", "--json"); strings.TrimSpace(list) != "[]" {
		t.Errorf("users left: %s", list)
	}
	if _, err := admin("", "user", "disable", "nobody"); err == nil || !strings.Contains(err.Error(), `no user "nobody"`) {
		t.Errorf("unknown user: %v", err)
	}
	if out := must("", "audit", "verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit verify: %s", out)
	}
	events := auditDetails(t, dir)
	for _, want := range []string{"user password bob", "user bob disabled=true", "user delete bob", "credential delete, key destroyed", "user delete alice"} {
		if !strings.Contains(events, want) {
			t.Errorf("audit lacks %q:\n%s", want, events)
		}
	}
}

// auditDetails reads the detail column of the audit log, one line each.
func auditDetails(t *testing.T, dir string) string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "rssp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT detail FROM audit ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		b.WriteString(d + "\n")
	}
	return b.String()
}
