package firefox

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/csctoken/csctoken/internal/testbin"
	"github.com/csctoken/csctoken/rssp/service"
)

// smtpSink is an SMTP server on 127.0.0.1 that keeps each message's DATA.
type smtpSink struct {
	port int
	msgs chan []byte
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &smtpSink{port: ln.Addr().(*net.TCPAddr).Port, msgs: make(chan []byte, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	say := func(line string) { fmt.Fprintf(c, "%s\r\n", line) }
	say("220 localhost csctoken test sink")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-localhost")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "HELO"):
			say("250 localhost")
		case strings.HasPrefix(cmd, "DATA"):
			say("354 go ahead")
			var msg bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				msg.WriteString(strings.TrimPrefix(l, "."))
			}
			s.msgs <- msg.Bytes()
			say("250 queued")
		case strings.HasPrefix(cmd, "QUIT"):
			say("221 bye")
			return
		default: // MAIL, RCPT, RSET, NOOP
			say("250 ok")
		}
	}
}

// nssDBKey is the key Thunderbird names a certificate by in its prefs
// (signing_cert_dbkey): base64 of 8 zero bytes, the serial number's and
// the issuer's lengths (big-endian uint32), the serial number's bytes and
// the issuer's DER.
func nssDBKey(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	tbs := cryptobyte.String(c.RawTBSCertificate)
	var inner, serial cryptobyte.String
	if !tbs.ReadASN1(&inner, cbasn1.SEQUENCE) ||
		!inner.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!inner.ReadASN1(&serial, cbasn1.INTEGER) {
		t.Fatal("cannot read the certificate's serial number")
	}
	b := make([]byte, 16, 16+len(serial)+len(c.RawIssuer))
	binary.BigEndian.PutUint32(b[8:], uint32(len(serial)))
	binary.BigEndian.PutUint32(b[12:], uint32(len(c.RawIssuer)))
	b = append(append(b, serial...), c.RawIssuer...)
	return base64.StdEncoding.EncodeToString(b)
}

// TestThunderbirdSMIME: Thunderbird ESR with a fresh profile in which
// `csctoken register --thunderbird` put the module, an identity that signs
// with the token's key (PIN mode), a message composed with -compose and
// sent (ctrl+Return) to an SMTP sink on 127.0.0.1; the PIN is typed into
// Thunderbird's "Password Required" dialog. openssl smime -verify checks
// the signature against the rssp's CA.
func TestThunderbirdSMIME(t *testing.T) {
	needDesktop(t)
	testbin.Need(t, RequireEnv, "thunderbird", "openssl")
	r := startRSSP(t)
	cert := r.credential(t, service.CredentialSpec{KeyType: "rsa-2048", Description: "Mail key", Multisign: 5})
	d := newDesktop(t, r.config("pin"))
	d.run(password+"\n", testbin.CLI(t), "login", "--password-stdin")
	sink := startSMTPSink(t)

	d.run("", "thunderbird", "--headless", "-CreateProfile", "mail")
	out := d.run("", testbin.CLI(t), "register", "--thunderbird", "--library", testbin.Library(t))
	t.Logf("register --thunderbird:\n%s", out)
	profiles, _ := filepath.Glob(filepath.Join(d.home, ".thunderbird", "*.mail"))
	if more, _ := filepath.Glob(filepath.Join(d.home, ".config", "thunderbird", "*.mail")); len(more) > 0 {
		profiles = append(profiles, more...)
	}
	if len(profiles) != 1 {
		t.Fatalf("Thunderbird profile: %v", profiles)
	}
	profile := profiles[0]
	prefs := map[string]string{
		"mail.shell.checkDefaultClient":              "false",
		"mail.provider.enabled":                      "false",
		"mailnews.start_page.enabled":                "false",
		"mail.rights.version":                        "1",
		"mail.warn_on_send_accel_key":                "false",
		"mail.spellcheck.inline":                     "false",
		"app.update.disabledForTesting":              "true",
		"datareporting.policy.dataSubmissionEnabled": "false",
		"toolkit.telemetry.reportingpolicy.firstRun": "false",
		"mail.accountmanager.accounts":               `"account1,account2"`,
		"mail.accountmanager.defaultaccount":         `"account1"`,
		"mail.accountmanager.localfoldersserver":     `"server2"`,
		"mail.account.account1.identities":           `"id1"`,
		"mail.account.account1.server":               `"server1"`,
		"mail.account.account2.server":               `"server2"`,
		"mail.server.server1.type":                   `"pop3"`,
		"mail.server.server1.hostname":               `"127.0.0.1"`,
		"mail.server.server1.port":                   "1",
		"mail.server.server1.userName":               `"alice"`,
		"mail.server.server1.name":                   `"alice@example.com"`,
		"mail.server.server1.login_at_startup":       "false",
		"mail.server.server1.check_new_mail":         "false",
		"mail.server.server2.type":                   `"none"`,
		"mail.server.server2.hostname":               `"Local Folders"`,
		"mail.server.server2.userName":               `"nobody"`,
		"mail.server.server2.name":                   `"Local Folders"`,
		"mail.identity.id1.fullName":                 `"Alice"`,
		"mail.identity.id1.useremail":                `"alice@example.com"`,
		"mail.identity.id1.smtpServer":               `"smtp1"`,
		"mail.identity.id1.fcc":                      "false",
		"mail.identity.id1.compose_html":             "false",
		"mail.identity.id1.sign_mail":                "true",
		"mail.identity.id1.signing_cert_dbkey":       fmt.Sprintf("%q", nssDBKey(t, cert)),
		"mail.smtpservers":                           `"smtp1"`,
		"mail.smtp.defaultserver":                    `"smtp1"`,
		"mail.smtpserver.smtp1.hostname":             `"127.0.0.1"`,
		"mail.smtpserver.smtp1.port":                 fmt.Sprint(sink.port),
		"mail.smtpserver.smtp1.authMethod":           "1",
		"mail.smtpserver.smtp1.try_ssl":              "0",
		"mail.smtpserver.smtp1.username":             `""`,
		"mail.outgoingservers":                       `"smtp1"`,
		"mail.outgoingserver.smtp1.type":             `"smtp"`,
		"mail.outgoingserver.smtp1.hostname":         `"127.0.0.1"`,
		"mail.outgoingserver.smtp1.port":             fmt.Sprint(sink.port),
		"mail.outgoingserver.smtp1.authMethod":       "1",
		"mail.outgoingserver.smtp1.try_ssl":          "0",
	}
	// Thunderbird's composer signs when the identity names a signing
	// certificate by its NSS nickname ("token:label"), as its settings
	// dialog stores it; certutil lists it from the token.
	nick := ""
	for _, line := range strings.Split(d.run("", "certutil", "-L", "-d", "sql:"+profile, "-h", "all"), "\n") {
		// "NICKNAME    TRUST": the trust flags are the last field.
		if f := strings.Fields(line); len(f) > 1 && strings.Contains(line, "Mail key") {
			nick = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), f[len(f)-1]))
		}
	}
	if nick == "" {
		t.Fatalf("certutil does not list the token's certificate:\n%s", d.run("", "certutil", "-L", "-d", "sql:"+profile, "-h", "all"))
	}
	t.Logf("signing certificate nickname %q", nick)
	prefs["mail.identity.id1.signing_cert_name"] = fmt.Sprintf("%q", nick)
	var js strings.Builder
	for k, v := range prefs {
		fmt.Fprintf(&js, "user_pref(%q, %s);\n", k, v)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(js.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	d.run("", "certutil", "-A", "-d", "sql:"+profile, "-n", "csctoken test CA", "-t", "C,C,C", "-a", "-i", filepath.Join(r.srv.Dir, "ca-root.pem"))

	tb := startGroup(t, 4*time.Minute, d.env, "thunderbird", "--no-remote", "--profile", profile,
		"-compose", "to='bob@example.com',subject='Signed by the token',body='Hello from csctoken',from='alice@example.com'")
	t.Cleanup(func() {
		if t.Failed() {
			d.keep("thunderbird-output.txt", writeTemp(t, tb.output()))
		}
	})
	win := d.window("", "Signed by the token", 180*time.Second)
	t.Logf("compose window open")
	time.Sleep(3 * time.Second)
	d.typeInto(win, "", "ctrl+Return")
	var msg []byte
	deadline := time.Now().Add(90 * time.Second)
	sent, pinTyped := time.Now(), false
	for msg == nil {
		select {
		case msg = <-sink.msgs:
		case <-time.After(time.Second):
		}
		if out, _ := d.xdotool("search", "--onlyvisible", "--name", "Password Required"); out != "" && msg == nil {
			d.typeInto(strings.Fields(out)[0], pin, "Return")
			t.Logf("typed the PIN into Thunderbird's Password Required dialog")
			pinTyped = true
		}
		// ctrl+Return typed before the composer was ready is lost:
		// again while nothing happened (the window is gone once sent).
		if msg == nil && !pinTyped && time.Since(sent) > 20*time.Second {
			if _, err := d.xdotool("key", "--window", win, "ctrl+Return"); err == nil {
				t.Logf("nothing sent 20 s after ctrl+Return: typed it again")
			}
			sent = time.Now()
		}
		if msg == nil && time.Now().After(deadline) {
			d.screenshot("send")
			t.Fatalf("no message at the SMTP sink; windows: %s", d.windows())
		}
	}
	file := filepath.Join(t.TempDir(), "mail.eml")
	if err := os.WriteFile(file, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			d.keep("mail.eml", file)
		}
	})
	signer := filepath.Join(t.TempDir(), "signer.pem")
	// The default purpose, smimesign: the certificate's extKeyUsage has
	// emailProtection.
	cmd := exec.Command("openssl", "smime", "-verify", "-in", file, "-CAfile", filepath.Join(r.srv.Dir, "ca-root.pem"),
		"-signer", signer, "-out", os.DevNull)
	o, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl smime -verify: %v\n%s\n%.2000s", err, o, msg)
	}
	b, _ := os.ReadFile(signer)
	blk, _ := pem.Decode(b)
	if blk == nil || !bytes.Equal(blk.Bytes, cert.Raw) {
		t.Fatalf("the message is signed by another certificate")
	}
	t.Logf("openssl smime -verify: %s", strings.TrimSpace(string(o)))
}
