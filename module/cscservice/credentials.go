package cscservice

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/module"
)

// credAuth is how one credential is authorized.
type credAuth struct {
	mode     module.AuthMode
	pinID    string // authData ID of the PIN (AuthPIN)
	pinLabel string
}

// defaultPINID is the authData ID used when the service did not describe
// the credential's factors (and the ID of v1's PIN).
const defaultPINID = "PIN"

// listRequest asks for everything the module needs in one call.
var listRequest = csc.CredentialsListRequest{
	CredentialInfo: true,
	Certificates:   csc.CertsChain,
	CertInfo:       true,
	AuthInfo:       true,
}

// ListCredentials implements module.Service.
func (s *Service) ListCredentials(ctx context.Context) ([]module.Credential, error) {
	ctx, cancel := bound(ctx, s.cfg.ListTimeout)
	defer cancel()
	infos, err := s.credentialInfos(ctx)
	if err != nil {
		return nil, err
	}
	var algos []string
	if info, err := s.Info(ctx); err == nil && info.SignAlgorithms != nil {
		algos = info.SignAlgorithms.Algos
	} else if err != nil {
		s.log.Debug("info failed; key algorithms taken as listed", "err", err.Error())
	}
	creds := make([]module.Credential, 0, len(infos))
	for _, ci := range infos {
		c := s.credential(ci, algos)
		creds = append(creds, c)
	}
	return creds, nil
}

// credentialInfos lists the credentials with their info (the client asks
// credentials/info for those the listing left without).
func (s *Service) credentialInfos(ctx context.Context) ([]csc.CredentialInfo, error) {
	req := listRequest
	list, err := s.cl.ListAllCredentials(ctx, &req)
	if err != nil {
		return nil, s.mapErr("credentials/list", err)
	}
	return list.CredentialInfos, nil
}

// credential maps a credential info; serviceAlgos are info's
// signAlgorithms (nil when unknown).
func (s *Service) credential(ci csc.CredentialInfo, serviceAlgos []string) module.Credential {
	c := module.Credential{
		ID:          ci.CredentialID,
		Description: ci.Description,
		Enabled:     ci.Key.Status == "" || ci.Key.Status == "enabled",
		KeyLen:      ci.Key.Len,
		CurveOID:    ci.Key.Curve,
		SCAL:        parseSCAL(ci.SCAL),
		Multisign:   max(ci.Multisign, 1),

		SignatureQualifier: ci.SignatureQualifier,
	}
	if ci.Cert != nil {
		c.Certificates = csc.Raw(ci.Cert.Certificates)
	}
	fam := familyUnknown
	if len(c.Certificates) > 0 {
		if cert, err := x509.ParseCertificate(c.Certificates[0]); err == nil {
			switch cert.PublicKey.(type) {
			case *rsa.PublicKey:
				fam = familyRSA
			case *ecdsa.PublicKey:
				fam = familyEC
			}
		} else {
			s.log.Warn("credential certificate unreadable", "credential", c.ID, "err", err.Error())
		}
	}
	c.KeyAlgos = signAlgos(ci.Key.Algo, serviceAlgos, fam)
	a, ok := authMode(ci.Auth)
	if !ok {
		s.log.Warn("credential's auth expression not understood; authorized in the browser",
			"credential", c.ID, "expression", ci.Auth.Expression)
	}
	c.Auth, c.PINLabel = a.mode, a.pinLabel
	if a.mode == module.AuthPIN {
		c.PINID = a.pinID
	}
	return c
}

// parseSCAL reads "1", "2" (0 and junk read as 1).
func parseSCAL(v string) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 {
		return 1
	}
	return min(n, 2)
}

type keyFamily int

const (
	familyUnknown keyFamily = iota
	familyRSA
	familyEC
)

// familyOf classifies a key or signature algorithm OID.
func familyOf(oid string) keyFamily {
	switch {
	case strings.HasPrefix(oid, "1.2.840.113549.1.1."):
		return familyRSA
	case strings.HasPrefix(oid, "1.2.840.10045."):
		return familyEC
	}
	return familyUnknown
}

// signAlgos is the set of signAlgo OIDs the module may use with a key:
// key/algo intersected with the service's signAlgorithms. A key/algo that
// names only the key type (rsaEncryption, ecPublicKey), as some services
// write it, stands for every signature algorithm of that family the
// service offers. When the intersection is empty, key/algo is kept as is
// (the service's own listing is the better guess).
func signAlgos(keyAlgos, serviceAlgos []string, fam keyFamily) []string {
	inFamily := func(list []string) []string {
		if fam == familyUnknown {
			return slices.Clone(list)
		}
		var out []string
		for _, a := range list {
			if familyOf(a) == fam {
				out = append(out, a)
			}
		}
		return out
	}
	key := inFamily(keyAlgos)
	if len(key) == 0 {
		key = slices.Clone(keyAlgos)
	}
	if len(serviceAlgos) == 0 {
		return key
	}
	svc := inFamily(serviceAlgos)
	onlyKeyType := len(key) > 0
	for _, a := range key {
		if a != csc.OIDRSA && a != csc.OIDECPublicKey {
			onlyKeyType = false
		}
	}
	if (onlyKeyType || len(key) == 0) && fam != familyUnknown && len(svc) > 0 {
		return svc
	}
	var out []string
	for _, a := range key {
		if slices.Contains(svc, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return key
	}
	return out
}

// authMode derives how a credential is authorized from its auth object.
// ok is false when an explicit expression could not be parsed.
//
//   - no auth object: a PIN (the common case of services that ignore
//     authInfo);
//   - oauth2code: AuthBrowser;
//   - implicit (v1): AuthNone;
//   - explicit without objects or expression: AuthNone;
//   - explicit whose expression a single Password object (format N or A,
//     no OTP generator) satisfies, together with any PasswordOOB objects,
//     which the service collects itself (credentials/authorize then answers
//     with a handle to poll): AuthPIN;
//   - explicit satisfied by PasswordOOB objects alone: AuthNone;
//   - anything else (OTP, challenge-response, several passwords): the
//     factors a PIN string cannot carry: AuthBrowser.
func authMode(a *csc.AuthInfo) (credAuth, bool) {
	if a == nil {
		return credAuth{mode: module.AuthPIN, pinID: defaultPINID}, true
	}
	switch strings.ToLower(a.Mode) {
	case csc.AuthModeOAuth2Code:
		return credAuth{mode: module.AuthBrowser}, true
	case csc.AuthModeImplicit:
		return credAuth{mode: module.AuthNone}, true
	}
	expr := strings.TrimSpace(a.Expression)
	if len(a.Objects) == 0 {
		switch {
		case expr == "":
			return credAuth{mode: module.AuthNone}, true
		case isIdent(expr):
			// One factor, not described: take it for the PIN.
			return credAuth{mode: module.AuthPIN, pinID: expr}, true
		}
		return credAuth{mode: module.AuthBrowser}, true
	}
	var tree exprNode
	if expr == "" {
		// No expression: every object is required.
		ids := make([]exprNode, len(a.Objects))
		for i, o := range a.Objects {
			ids[i] = exprNode{id: o.ID}
		}
		tree = exprNode{op: "AND", kids: ids}
	} else {
		t, err := parseExpr(expr)
		if err != nil {
			if len(a.Objects) == 1 && pinCapable(a.Objects[0]) {
				o := a.Objects[0]
				return credAuth{mode: module.AuthPIN, pinID: o.ID, pinLabel: o.Label}, false
			}
			return credAuth{mode: module.AuthBrowser}, false
		}
		tree = t
	}
	oob := map[string]bool{}
	for _, o := range a.Objects {
		if o.Type == csc.AuthPasswordOOB {
			oob[o.ID] = true
		}
	}
	for _, o := range a.Objects {
		if !pinCapable(o) {
			continue
		}
		have := map[string]bool{o.ID: true}
		for id := range oob {
			have[id] = true
		}
		if tree.eval(have) {
			return credAuth{mode: module.AuthPIN, pinID: o.ID, pinLabel: o.Label}, true
		}
	}
	if tree.eval(oob) {
		return credAuth{mode: module.AuthNone}, true
	}
	return credAuth{mode: module.AuthBrowser}, true
}

// pinCapable: a Password object whose value a PIN string can carry (not a
// one-time password).
func pinCapable(o csc.AuthObject) bool {
	if o.Type != csc.AuthPassword || o.Generator != "" {
		return false
	}
	switch strings.ToUpper(o.Format) {
	case "", "N", "A":
		return true
	}
	return false
}

// exprNode is a parsed auth expression: an object ID, or AND/OR of kids.
type exprNode struct {
	id   string
	op   string // "AND", "OR"; "" for a leaf
	kids []exprNode
}

func (n exprNode) eval(have map[string]bool) bool {
	switch n.op {
	case "AND":
		for _, k := range n.kids {
			if !k.eval(have) {
				return false
			}
		}
		return true
	case "OR":
		for _, k := range n.kids {
			if k.eval(have) {
				return true
			}
		}
		return false
	}
	return have[n.id]
}

// parseExpr parses a CSC auth expression: object IDs combined with AND,
// OR and parentheses, AND binding tighter ("PIN AND (OTP OR OOB)").
func parseExpr(s string) (exprNode, error) {
	p := &exprParser{toks: tokenize(s)}
	n, err := p.or()
	if err != nil {
		return exprNode{}, err
	}
	if p.i != len(p.toks) {
		return exprNode{}, fmt.Errorf("unexpected %q", p.toks[p.i])
	}
	return n, nil
}

func tokenize(s string) []string {
	var toks []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r == '(' || r == ')':
			flush()
			toks = append(toks, string(r))
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return toks
}

type exprParser struct {
	toks []string
	i    int
}

func (p *exprParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *exprParser) binary(op string, next func() (exprNode, error)) (exprNode, error) {
	first, err := next()
	if err != nil {
		return exprNode{}, err
	}
	kids := []exprNode{first}
	for strings.EqualFold(p.peek(), op) {
		p.i++
		k, err := next()
		if err != nil {
			return exprNode{}, err
		}
		kids = append(kids, k)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return exprNode{op: op, kids: kids}, nil
}

func (p *exprParser) or() (exprNode, error)  { return p.binary("OR", p.and) }
func (p *exprParser) and() (exprNode, error) { return p.binary("AND", p.atom) }

func (p *exprParser) atom() (exprNode, error) {
	t := p.peek()
	switch {
	case t == "":
		return exprNode{}, errors.New("unexpected end")
	case t == "(":
		p.i++
		n, err := p.or()
		if err != nil {
			return exprNode{}, err
		}
		if p.peek() != ")" {
			return exprNode{}, errors.New("missing )")
		}
		p.i++
		return n, nil
	case !isIdent(t):
		return exprNode{}, fmt.Errorf("unexpected %q", t)
	}
	p.i++
	return exprNode{id: t}, nil
}

// isIdent: an object ID, not an operator or parenthesis.
func isIdent(t string) bool {
	if t == "" || strings.ContainsAny(t, "() \t\r\n") {
		return false
	}
	return !strings.EqualFold(t, "AND") && !strings.EqualFold(t, "OR")
}
