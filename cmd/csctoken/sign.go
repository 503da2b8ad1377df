package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
)

// hashChoice is a --hash value with its PKCS#11 names.
type hashChoice struct {
	size                 uint
	digest, mgf          uint
	rsaPKCS, rsaPSS, ecd uint
}

var hashChoices = map[string]hashChoice{
	"sha256": {32, ck.CKM_SHA256, ck.CKG_MGF1_SHA256, ck.CKM_SHA256_RSA_PKCS, ck.CKM_SHA256_RSA_PKCS_PSS, ck.CKM_ECDSA_SHA256},
	"sha384": {48, ck.CKM_SHA384, ck.CKG_MGF1_SHA384, ck.CKM_SHA384_RSA_PKCS, ck.CKM_SHA384_RSA_PKCS_PSS, ck.CKM_ECDSA_SHA384},
	"sha512": {64, ck.CKM_SHA512, ck.CKG_MGF1_SHA512, ck.CKM_SHA512_RSA_PKCS, ck.CKM_SHA512_RSA_PKCS_PSS, ck.CKM_ECDSA_SHA512},
}

// signMechanism maps --mechanism and --hash to the PKCS#11 mechanism and
// the key type it needs.
func signMechanism(name, hash string) (ck.Mechanism, uint, error) {
	h, ok := hashChoices[strings.ToLower(hash)]
	if !ok {
		return ck.Mechanism{}, 0, usageError{fmt.Sprintf("sign: --hash %q: want sha256, sha384 or sha512", hash)}
	}
	switch strings.ToLower(name) {
	case "rsa-pkcs", "rsa":
		return ck.Mechanism{Type: h.rsaPKCS}, ck.CKK_RSA, nil
	case "rsa-pss", "pss":
		p := ck.PSSParams{HashAlg: h.digest, MGF: h.mgf, SLen: h.size}
		return ck.Mechanism{Type: h.rsaPSS, Parameter: p.Encode()}, ck.CKK_RSA, nil
	case "ecdsa", "ec":
		return ck.Mechanism{Type: h.ecd}, ck.CKK_EC, nil
	case "":
		return ck.Mechanism{}, 0, usageError{"sign: --mechanism is required (rsa-pkcs, rsa-pss or ecdsa)"}
	}
	return ck.Mechanism{}, 0, usageError{fmt.Sprintf("sign: --mechanism %q: want rsa-pkcs, rsa-pss or ecdsa", name)}
}

// signOptions are the flags of csctoken sign.
type signOptions struct {
	service, credential, label string
	mechanism, hash            string
	in, out                    string
	pinStdin, raw              bool
}

// cmdSign signs a file through the module, as a PKCS#11 program would:
// C_Initialize, C_OpenSession, C_Login with the PIN, C_FindObjects,
// C_SignInit, C_SignUpdate..., C_SignFinal.
func (c *cli) cmdSign(o signOptions) error {
	name, credID, keyLabel, mechFlag, hash := &o.service, &o.credential, &o.label, &o.mechanism, &o.hash
	in, out, pinStdin, raw := &o.in, &o.out, &o.pinStdin, &o.raw
	switch {
	case *in == "" || *out == "":
		return usageError{"sign: --in and --out are required"}
	case *credID != "" && *keyLabel != "":
		return usageError{"sign: --credential and --label exclude each other"}
	case *in == "-" && *pinStdin:
		return usageError{"sign: --in - and --pin-stdin both want stdin"}
	}
	mech, keyType, err := signMechanism(*mechFlag, *hash)
	if err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	sc, err := pickOne(cfg, *name)
	if err != nil {
		return err
	}
	var data io.Reader
	if *in == "-" {
		data = c.stdin
	} else {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		data = f
	}

	p, err := c.openModule(&config.Config{Path: cfg.Path, Log: cfg.Log, CacheDir: cfg.CacheDir, Services: []config.Service{sc}}, nil)
	if err != nil {
		return err
	}
	defer p.close()
	slot, err := p.slot(sc.Name)
	if err != nil {
		return err
	}
	h, err := p.m.OpenSession(slot, ck.CKF_SERIAL_SESSION)
	if err != nil {
		return fmt.Errorf("C_OpenSession: %w", err)
	}
	ti, err := p.m.GetTokenInfo(slot)
	if err != nil {
		return fmt.Errorf("C_GetTokenInfo: %w", err)
	}
	var pin []byte
	if ti.Flags&ck.CKF_LOGIN_REQUIRED != 0 {
		s, err := c.secret(fmt.Sprintf("PIN for %s: ", sc.Name), "PIN", "--pin-stdin", *pinStdin)
		if err != nil {
			return err
		}
		pin = []byte(s)
	}
	if err := p.m.Login(h, ck.CKU_USER, pin); err != nil {
		return loginError(sc, err)
	}
	key, err := c.chooseKey(p, h, sc, *credID, *keyLabel)
	if err != nil {
		return err
	}
	kt, err := p.attr(h, key.h, ck.CKA_KEY_TYPE)
	if err != nil {
		return err
	}
	if len(kt) == ck.ULongSize && ck.ULong(kt) != keyType {
		kind := map[uint]string{ck.CKK_RSA: "an RSA", ck.CKK_EC: "an EC"}[ck.ULong(kt)]
		return fmt.Errorf("%q is %s key: --mechanism %s does not apply", key.label, kind, *mechFlag)
	}

	if err := p.m.SignInit(h, mech, key.h); err != nil {
		return fmt.Errorf("C_SignInit(%s): %w", mechName(mech.Type), err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, rerr := data.Read(buf)
		if n > 0 {
			if err := p.m.SignUpdate(h, buf[:n]); err != nil {
				return fmt.Errorf("C_SignUpdate: %w", err)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read %s: %w", *in, rerr)
		}
	}
	n, err := p.m.SignFinal(h, nil)
	if err != nil {
		return fmt.Errorf("C_SignFinal: %w", err)
	}
	sig := make([]byte, n)
	n, err = p.m.SignFinal(h, sig)
	if err != nil {
		return signError(sc, err)
	}
	sig = sig[:n]
	format := "PKCS#11"
	if keyType == ck.CKK_EC && !*raw {
		sig, format = mustECDSADER(sig), "DER"
	}
	if *out == "-" {
		_, err = c.stdout.Write(sig)
	} else {
		err = os.WriteFile(*out, sig, 0o644)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "Signed %s with %q (%s) of %q: %s, %s, %d bytes (%s) written to %s.\n",
		*in, key.label, key.desc, sc.Name, *mechFlag, strings.ToUpper(*hash), len(sig), format, *out)
	return nil
}

// loginError explains a failed C_Login.
func loginError(sc config.Service, err error) error {
	switch ck.Error(ck.RV(err)) {
	case ck.CKR_USER_NOT_LOGGED_IN:
		if strings.Contains(err.Error(), "csctoken login") {
			return fmt.Errorf("not logged in to %q: %w", sc.Name, err)
		}
		return fmt.Errorf("not logged in to %q: run `%s` (%w)", sc.Name, loginHint(sc.Name), err)
	case ck.CKR_PIN_INCORRECT:
		return fmt.Errorf("wrong PIN (%w)", err)
	case ck.CKR_PIN_LOCKED:
		return fmt.Errorf("the credential is locked; ask the service's operator to unlock it (%w)", err)
	case ck.CKR_DEVICE_ERROR:
		return fmt.Errorf("the service %q cannot be reached (%w)", sc.Name, err)
	case ck.CKR_FUNCTION_CANCELED:
		return fmt.Errorf("the login to %q was declined or not completed in the browser (%w)", sc.Name, err)
	}
	return fmt.Errorf("C_Login: %w", err)
}

// signError explains a failed C_Sign.
func signError(sc config.Service, err error) error {
	switch ck.Error(ck.RV(err)) {
	case ck.CKR_USER_NOT_LOGGED_IN:
		return fmt.Errorf("the PIN was refused or the login to %q expired (%w)", sc.Name, err)
	case ck.CKR_DEVICE_ERROR:
		return fmt.Errorf("the service %q cannot be reached (%w)", sc.Name, err)
	case ck.CKR_FUNCTION_CANCELED:
		return fmt.Errorf("the signature was declined, or not authorized in time, in the browser (%w)", err)
	}
	return fmt.Errorf("C_SignFinal: %w", err)
}

// chosenKey is the private key to sign with.
type chosenKey struct {
	h     module.ObjectHandle
	label string
	desc  string // "credential ID" or "certificate SUBJECT"
}

// chooseKey finds the private key: by credential ID (through the
// credential's certificate, whose CKA_ID the key shares), by label, or the
// only one.
func (c *cli) chooseKey(p *p11, h module.SessionHandle, sc config.Service, credID, keyLabel string) (chosenKey, error) {
	keys, err := p.find(h, classAttr(ck.CKO_PRIVATE_KEY))
	if err != nil {
		return chosenKey{}, err
	}
	type cand struct {
		h     module.ObjectHandle
		label string
		id    []byte
	}
	var all []cand
	for _, k := range keys {
		l, err := p.attr(h, k, ck.CKA_LABEL)
		if err != nil {
			return chosenKey{}, err
		}
		id, err := p.attr(h, k, ck.CKA_ID)
		if err != nil {
			return chosenKey{}, err
		}
		all = append(all, cand{k, string(l), id})
	}
	labels := func() string {
		var ls []string
		for _, k := range all {
			ls = append(ls, fmt.Sprintf("%q", k.label))
		}
		if len(ls) == 0 {
			return "none"
		}
		return strings.Join(ls, ", ")
	}
	switch {
	case credID != "":
		creds, err := c.credentials(c.ctx, sc)
		if err != nil {
			return chosenKey{}, err
		}
		for _, cr := range creds {
			if cr.ID != credID {
				continue
			}
			cert := leaf(cr)
			if cert == nil {
				return chosenKey{}, fmt.Errorf("credential %s has no usable certificate", credID)
			}
			for _, k := range all {
				if bytes.Equal(k.id, keyID(p, h, cert)) {
					return chosenKey{k.h, k.label, "credential " + credID}, nil
				}
			}
			return chosenKey{}, fmt.Errorf("credential %s has no private key on the token (disabled? keys: %s)", credID, labels())
		}
		return chosenKey{}, fmt.Errorf("no credential %s at %q (see `csctoken list`)", credID, sc.Name)
	case keyLabel != "":
		var found []cand
		for _, k := range all {
			if k.label == keyLabel {
				found = append(found, k)
			}
		}
		switch len(found) {
		case 0:
			return chosenKey{}, fmt.Errorf("no key labelled %q (keys: %s)", keyLabel, labels())
		case 1:
			return chosenKey{found[0].h, found[0].label, "certificate " + c.credentialOf(p, h, found[0].id)}, nil
		}
		return chosenKey{}, fmt.Errorf("%d keys are labelled %q: choose with --credential", len(found), keyLabel)
	}
	switch len(all) {
	case 0:
		return chosenKey{}, fmt.Errorf("no private key on %q (see `csctoken list`)", sc.Name)
	case 1:
		return chosenKey{all[0].h, all[0].label, "certificate " + c.credentialOf(p, h, all[0].id)}, nil
	}
	return chosenKey{}, fmt.Errorf("%q has several keys (%s): choose with --credential or --label", sc.Name, labels())
}

// keyID is the CKA_ID the module gives the key of cert: found through the
// certificate object with the same value.
func keyID(p *p11, h module.SessionHandle, cert *x509.Certificate) []byte {
	certs, err := p.find(h, classAttr(ck.CKO_CERTIFICATE), ck.Attribute{Type: ck.CKA_VALUE, Value: cert.Raw})
	if err != nil || len(certs) == 0 {
		return nil
	}
	id, _ := p.attr(h, certs[0], ck.CKA_ID)
	return id
}

// credentialOf names the certificate subject of a key, for messages.
func (c *cli) credentialOf(p *p11, h module.SessionHandle, id []byte) string {
	certs, err := p.find(h, classAttr(ck.CKO_CERTIFICATE), ck.Attribute{Type: ck.CKA_ID, Value: id})
	if err != nil || len(certs) == 0 {
		return "?"
	}
	der, err := p.attr(h, certs[0], ck.CKA_VALUE)
	if err != nil {
		return "?"
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "?"
	}
	return cert.Subject.String()
}

// mustECDSADER encodes PKCS#11's r||s as a DER Ecdsa-Sig-Value, what
// openssl and most verifiers read (csc.ECDSAToDER; the module made rs, so
// it converts).
func mustECDSADER(rs []byte) []byte {
	der, err := csc.ECDSAToDER(rs)
	if err != nil {
		return rs
	}
	return der
}
