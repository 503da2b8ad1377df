package programs

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestOpenSSH lists the token's keys with `ssh-keygen -D`: both keys,
// equal to the public keys of their certificates.
func TestOpenSSH(t *testing.T) {
	need(t, "ssh-keygen")
	f := newFixture(t)
	out := f.mustRun(t, "ssh-keygen", "-D", f.lib)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			t.Fatalf("unexpected line %q in:\n%s", line, out)
		}
		got = append(got, fields[0]+" "+fields[1])
	}
	for _, k := range []*key{f.rsa, f.ec} {
		pub, err := ssh.NewPublicKey(k.cert.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
		if !slices.Contains(got, want) {
			t.Errorf("%s: %q not listed by ssh-keygen -D:\n%s", k.label, want, out)
		}
	}
	// OpenSSH also lists the public keys of certificates without a
	// private key: here the issuing CA and the root.
	for _, ca := range f.cas {
		pub, err := ssh.NewPublicKey(ca.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))); !slices.Contains(got, want) {
			t.Errorf("CA %s not listed by ssh-keygen -D:\n%s", ca.Subject, out)
		}
	}
	if want := 2 + len(f.cas); len(got) != want {
		t.Errorf("ssh-keygen -D listed %d keys, want %d:\n%s", len(got), want, out)
	}
}
