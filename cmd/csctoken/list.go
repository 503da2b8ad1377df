package main

import (
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
)

// listOptions are the flags of csctoken list.
type listOptions struct {
	service string
	pem     bool
}

// cmdList lists the credentials of each service, one block per key: the
// credential ID and description, key, SCAL, how it is authorized, the
// certificate's subject and expiry, and how programs name the key: its
// CKA_ID (what pkcs11-tool --id takes), CKA_LABEL and an RFC 7512
// pkcs11: URI. With --pem, the certificate chains in PEM instead.
func (c *cli) cmdList(o listOptions) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	svcs, err := pick(cfg, o.service)
	if err != nil {
		return err
	}
	var p *p11
	if !o.pem {
		// The module names the keys (CKA_ID, CKA_LABEL) as programs see them.
		p, err = c.openModule(&config.Config{Path: cfg.Path, Log: cfg.Log, CacheDir: cfg.CacheDir, Services: svcs}, nil)
		if err != nil {
			return err
		}
		defer p.close()
	}
	failed := 0
	for i, sc := range svcs {
		creds, err := c.credentials(c.ctx, sc)
		if err != nil {
			fmt.Fprintf(c.stderr, "csctoken: %q: %v\n", sc.Name, err)
			failed++
			continue
		}
		if o.pem {
			for _, cr := range creds {
				fmt.Fprintf(c.stdout, "# %s: %s %s\n", sc.Name, cr.ID, cr.Description)
				for _, der := range cr.Certificates {
					_ = pem.Encode(c.stdout, &pem.Block{Type: "CERTIFICATE", Bytes: der})
				}
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(c.stdout)
		}
		fmt.Fprintf(c.stdout, "%s (%s): %d credential(s)\n", sc.Name, sc.URL, len(creds))
		ids := c.keyIDs(p, sc, creds)
		for _, cr := range creds {
			c.listCredential(sc, cr, ids[cr.ID])
		}
	}
	if failed > 0 {
		return silentError{fmt.Sprintf("%d service(s) failed", failed)}
	}
	return nil
}

// listCredential prints one credential's block.
func (c *cli) listCredential(sc config.Service, cr module.Credential, id []byte) {
	out := c.stdout
	cert := leaf(cr)
	name := cr.Description
	if name == "" {
		name = cr.ID
	}
	state := ""
	if !cr.Enabled {
		state = " (disabled)"
	}
	fmt.Fprintf(out, "\n  %q%s\n", name, state)
	fmt.Fprintf(out, "    credential:  %s\n", cr.ID)
	fmt.Fprintf(out, "    key:         %s, SCAL %d, authorized with %s\n", keyDesc(cr, cert), max(cr.SCAL, 1), authDesc(cr.Auth))
	if cr.SignatureQualifier != "" {
		fmt.Fprintf(out, "    qualifier:   %s\n", cr.SignatureQualifier)
	}
	if cert != nil {
		expires := cert.NotAfter.Local().Format(time.DateOnly)
		if time.Now().After(cert.NotAfter) {
			expires += " (EXPIRED)"
		}
		fmt.Fprintf(out, "    certificate: %s, until %s\n", cert.Subject, expires)
	} else {
		fmt.Fprintf(out, "    certificate: none\n")
	}
	if len(id) == 0 {
		fmt.Fprintf(out, "    CKA_ID:      - (the module shows no key for it%s)\n", state)
		return
	}
	fmt.Fprintf(out, "    CKA_ID:      %s   (pkcs11-tool --id %s)\n", hex.EncodeToString(id), hex.EncodeToString(id))
	fmt.Fprintf(out, "    CKA_LABEL:   %s\n", name)
	fmt.Fprintf(out, "    URI:         %s\n", pkcs11URI(sc.Name, id))
}

// keyIDs finds the CKA_ID the module gives each credential's key, by
// credential ID: the certificate object holding the credential's
// certificate carries it (public objects, no login needed). A credential
// the module does not show has none.
func (c *cli) keyIDs(p *p11, sc config.Service, creds []module.Credential) map[string][]byte {
	ids := map[string][]byte{}
	slot, err := p.slot(sc.Name)
	if err != nil {
		return ids
	}
	if err := p.m.Refresh(c.ctx, slot); err != nil {
		c.log.Debug("listing through the module", "service", sc.Name, "err", err)
	}
	h, err := p.m.OpenSession(slot, ck.CKF_SERIAL_SESSION)
	if err != nil {
		return ids
	}
	defer func() { _ = p.m.CloseSession(h) }()
	for _, cr := range creds {
		if cert := leaf(cr); cert != nil {
			if id := keyID(p, h, cert); len(id) > 0 {
				ids[cr.ID] = id
			}
		}
	}
	return ids
}

// pkcs11URI is the RFC 7512 URI of the private key with CKA_ID id on the
// token labelled token.
func pkcs11URI(token string, id []byte) string {
	var b strings.Builder
	b.WriteString("pkcs11:token=")
	b.WriteString(pctEncode(token))
	b.WriteString(";id=")
	for _, x := range id {
		fmt.Fprintf(&b, "%%%02X", x)
	}
	b.WriteString(";type=private")
	return b.String()
}

// pctEncode percent-encodes an attribute value of a pkcs11: URI path: all
// but RFC 3986's unreserved characters (RFC 7512 allows a few more, but
// they would need quoting in a shell).
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == '-', ch == '.', ch == '_', ch == '~':
			b.WriteByte(ch)
		default:
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}
