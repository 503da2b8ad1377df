package csc

// This file holds the CSC API v1.0.4.0 wire shapes that differ from v2
// (docs/mapping.md, "CSC notes") and the translation between the two. The client
// speaks v1 to a service whose base URL ends in /csc/v1 with the same Go API
// (it translates v2 values to v1 on the way out and back on the way in); the
// RSSP serves /csc/v1/ by translating the other way round. Bodies that v1
// shares with v2 (auth/login, auth/revoke, credentials/info's request,
// authorize's response, signHash's response, timestamp) have no v1 type.
//
// Naming: X.V1() turns a v2 value into its v1 form; XV1.V2() turns it back.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrNotInV1 is wrapped when a v2 value cannot be expressed in v1.
var ErrNotInV1 = errors.New("not expressible in CSC API v1")

// Authentication object IDs used for the two v1 factors when they are
// expressed as v2 auth objects and authData entries.
const (
	V1PINID = "PIN"
	V1OTPID = "OTP"
)

// Method names that differ between the versions.
const (
	MethodGetChallenge = "credentials/getChallenge" // v2
	MethodSendOTP      = "credentials/sendOTP"      // v1
)

// v2OnlyMethods have no v1 equivalent.
var v2OnlyMethods = map[string]bool{
	"credentials/authorizeCheck": true,
	"signatures/signDoc":         true,
	"signatures/signPolling":     true,
	"oauth2/pushed_authorize":    true,
}

// InfoResponseV1 is the answer of info in v1.
type InfoResponseV1 struct {
	Specs       string   `json:"specs"`
	Name        string   `json:"name"`
	Logo        string   `json:"logo"`
	Region      string   `json:"region"`
	Lang        string   `json:"lang"`
	Description string   `json:"description"`
	AuthType    []string `json:"authType"`
	OAuth2      string   `json:"oauth2,omitempty"`
	Methods     []string `json:"methods"`
}

// V1 returns the v1 form of i: the v2-only members are dropped and the
// method list is renamed (getChallenge → sendOTP; v2-only methods dropped).
func (i InfoResponse) V1() InfoResponseV1 {
	var methods []string
	for _, m := range i.Methods {
		switch {
		case m == MethodGetChallenge:
			methods = append(methods, MethodSendOTP)
		case v2OnlyMethods[m]:
		default:
			methods = append(methods, m)
		}
	}
	return InfoResponseV1{
		Specs:       i.Specs,
		Name:        i.Name,
		Logo:        i.Logo,
		Region:      i.Region,
		Lang:        i.Lang,
		Description: i.Description,
		AuthType:    i.AuthType,
		OAuth2:      i.OAuth2,
		Methods:     dedup(methods),
	}
}

// V2 returns the v2 form of i (sendOTP → getChallenge).
func (i InfoResponseV1) V2() InfoResponse {
	var methods []string
	for _, m := range i.Methods {
		if m == MethodSendOTP {
			m = MethodGetChallenge
		}
		methods = append(methods, m)
	}
	return InfoResponse{
		Specs:       i.Specs,
		Name:        i.Name,
		Logo:        i.Logo,
		Region:      i.Region,
		Lang:        i.Lang,
		Description: i.Description,
		AuthType:    i.AuthType,
		OAuth2:      i.OAuth2,
		Methods:     dedup(methods),
	}
}

func dedup(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// CredentialsListRequestV1 is the body of credentials/list in v1.
type CredentialsListRequestV1 struct {
	UserID     string `json:"userID,omitempty"`
	MaxResults int    `json:"maxResults,omitempty"`
	PageToken  string `json:"pageToken,omitempty"`
	ClientData string `json:"clientData,omitempty"`
}

// V1 returns the v1 form of r. The v2-only parameters (credentialInfo,
// certificates, certInfo, authInfo, onlyValid, lang) are dropped: a v1
// client asks credentials/info for each credential instead.
func (r CredentialsListRequest) V1() CredentialsListRequestV1 {
	return CredentialsListRequestV1{
		UserID:     r.UserID,
		MaxResults: r.MaxResults,
		PageToken:  r.PageToken,
		ClientData: r.ClientData,
	}
}

// V2 returns the v2 form of r (paging kept in MaxResults and PageToken).
func (r CredentialsListRequestV1) V2() CredentialsListRequest {
	return CredentialsListRequest{
		UserID:     r.UserID,
		MaxResults: r.MaxResults,
		PageToken:  r.PageToken,
		ClientData: r.ClientData,
	}
}

// CredentialsListResponseV1 is the answer of credentials/list in v1.
type CredentialsListResponseV1 struct {
	CredentialIDs []string `json:"credentialIDs"`
	NextPageToken string   `json:"nextPageToken,omitempty"`
}

// V1 returns the v1 form of r (credentialInfos and onlyValid dropped).
func (r CredentialsListResponse) V1() CredentialsListResponseV1 {
	ids := r.CredentialIDs
	if ids == nil {
		ids = []string{}
	}
	return CredentialsListResponseV1{CredentialIDs: ids, NextPageToken: r.NextPageToken}
}

// V2 returns the v2 form of r.
func (r CredentialsListResponseV1) V2() CredentialsListResponse {
	return CredentialsListResponse{CredentialIDs: r.CredentialIDs, NextPageToken: r.NextPageToken}
}

// Presence is v1's PIN/OTP presence: "true", "false" or "optional". It
// unmarshals the JSON booleans true and false too, which some servers send.
type Presence string

// Presence values.
const (
	PresenceTrue     Presence = "true"
	PresenceFalse    Presence = "false"
	PresenceOptional Presence = "optional"
)

// UnmarshalJSON implements json.Unmarshaler.
func (p *Presence) UnmarshalJSON(data []byte) error {
	var b bool
	if err := json.Unmarshal(data, &b); err == nil {
		if b {
			*p = PresenceTrue
		} else {
			*p = PresenceFalse
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("presence: not a string or boolean")
	}
	*p = Presence(strings.ToLower(strings.TrimSpace(s)))
	return nil
}

// required reports whether the factor must be given.
func (p Presence) required() bool { return p == PresenceTrue }

// present reports whether the factor may be given.
func (p Presence) present() bool { return p == PresenceTrue || p == PresenceOptional }

// PINInfoV1 is the PIN object of credentials/info in v1.
type PINInfoV1 struct {
	Presence    Presence `json:"presence"`
	Format      string   `json:"format,omitempty"`
	Label       string   `json:"label,omitempty"`
	Description string   `json:"description,omitempty"`
}

// OTP types of v1.
const (
	OTPOnline  = "online"  // sent by the service: credentials/sendOTP first
	OTPOffline = "offline" // generated by the user's device or app
)

// OTPInfoV1 is the OTP object of credentials/info in v1.
type OTPInfoV1 struct {
	Presence    Presence `json:"presence"`
	Type        string   `json:"type,omitempty"`
	Format      string   `json:"format,omitempty"`
	Label       string   `json:"label,omitempty"`
	Description string   `json:"description,omitempty"`
	ID          string   `json:"ID,omitempty"`
	Provider    string   `json:"provider,omitempty"`
}

// CredentialInfoV1 is the answer of credentials/info in v1.
type CredentialInfoV1 struct {
	Description string     `json:"description,omitempty"`
	Key         KeyInfo    `json:"key"`
	Cert        *CertInfo  `json:"cert,omitempty"`
	AuthMode    string     `json:"authMode,omitempty"`
	SCAL        string     `json:"SCAL,omitempty"`
	PIN         *PINInfoV1 `json:"PIN,omitempty"`
	OTP         *OTPInfoV1 `json:"OTP,omitempty"`
	Multisign   int        `json:"multisign"`
	Lang        string     `json:"lang,omitempty"`
}

// V2 returns the v2 form of c. The factors become auth objects with the IDs
// V1PINID and V1OTPID: the PIN a Password; an online OTP a
// ChallengeResponse (getChallenge stands for sendOTP); an offline OTP a
// Password whose generator is the OTP provider (or "otp"). Required factors
// make up the expression; optional ones are listed but left out of it.
// v1's implicit mode becomes explicit mode with no objects (docs/mapping.md, "CSC notes").
// A missing authMode leaves Auth nil, as a v2 server without authInfo does.
func (c CredentialInfoV1) V2() CredentialInfo {
	out := CredentialInfo{
		Description: c.Description,
		Key:         c.Key,
		Cert:        c.Cert,
		SCAL:        c.SCAL,
		Multisign:   c.Multisign,
		Lang:        c.Lang,
	}
	mode := strings.ToLower(c.AuthMode)
	switch mode {
	case "":
		return out
	case AuthModeOAuth2Code:
		out.Auth = &AuthInfo{Mode: AuthModeOAuth2Code}
		return out
	case AuthModeImplicit:
		out.Auth = &AuthInfo{Mode: AuthModeExplicit}
		return out
	}
	auth := &AuthInfo{Mode: AuthModeExplicit}
	var required []string
	if c.PIN != nil && c.PIN.Presence.present() {
		auth.Objects = append(auth.Objects, AuthObject{
			Type:        AuthPassword,
			ID:          V1PINID,
			Format:      c.PIN.Format,
			Label:       c.PIN.Label,
			Description: c.PIN.Description,
		})
		if c.PIN.Presence.required() {
			required = append(required, V1PINID)
		}
	}
	if c.OTP != nil && c.OTP.Presence.present() {
		o := AuthObject{
			ID:          V1OTPID,
			Format:      c.OTP.Format,
			Label:       c.OTP.Label,
			Description: c.OTP.Description,
		}
		if strings.EqualFold(c.OTP.Type, OTPOnline) {
			o.Type = AuthChallengeResponse
			o.Generator = c.OTP.Provider
		} else {
			o.Type = AuthPassword
			o.Generator = c.OTP.Provider
			if o.Generator == "" {
				o.Generator = "otp"
			}
		}
		auth.Objects = append(auth.Objects, o)
		if c.OTP.Presence.required() {
			required = append(required, V1OTPID)
		}
	}
	if len(required) != len(auth.Objects) {
		auth.Expression = strings.Join(required, " AND ")
	}
	out.Auth = auth
	return out
}

// v1Factor says which v1 field an auth object maps to: "PIN", "OTP" or "".
func v1Factor(o AuthObject) string {
	switch o.Type {
	case AuthPassword:
		if o.Generator == "" && !strings.EqualFold(o.ID, V1OTPID) {
			return V1PINID
		}
		return V1OTPID
	case AuthChallengeResponse:
		return V1OTPID
	}
	return ""
}

// V1 returns the v1 form of c. An explicit mode without objects becomes
// implicit; Password objects without a generator become PIN; other Password
// objects and ChallengeResponse become OTP (offline and online). The
// out-of-band types have no v1 form and are left out.
func (c CredentialInfo) V1() CredentialInfoV1 {
	out := CredentialInfoV1{
		Description: c.Description,
		Key:         c.Key,
		Cert:        c.Cert,
		SCAL:        c.SCAL,
		Multisign:   c.Multisign,
		Lang:        c.Lang,
	}
	if c.Auth == nil {
		return out
	}
	switch c.Auth.Mode {
	case AuthModeOAuth2Code:
		out.AuthMode = AuthModeOAuth2Code
		return out
	case AuthModeExplicit, AuthModeImplicit:
	default:
		out.AuthMode = c.Auth.Mode
		return out
	}
	if c.Auth.Mode == AuthModeImplicit || len(c.Auth.Objects) == 0 {
		out.AuthMode = AuthModeImplicit
		return out
	}
	out.AuthMode = AuthModeExplicit
	for _, o := range c.Auth.Objects {
		presence := PresenceTrue
		if c.Auth.Expression != "" && !containsWord(c.Auth.Expression, o.ID) {
			presence = PresenceOptional
		}
		switch v1Factor(o) {
		case V1PINID:
			if out.PIN == nil {
				out.PIN = &PINInfoV1{Presence: presence, Format: o.Format, Label: o.Label, Description: o.Description}
			}
		case V1OTPID:
			if out.OTP == nil {
				typ := OTPOffline
				if o.Type == AuthChallengeResponse {
					typ = OTPOnline
				}
				out.OTP = &OTPInfoV1{Presence: presence, Type: typ, Format: o.Format, Label: o.Label,
					Description: o.Description, Provider: o.Generator}
			}
		}
	}
	if out.PIN == nil {
		out.PIN = &PINInfoV1{Presence: PresenceFalse}
	}
	if out.OTP == nil {
		out.OTP = &OTPInfoV1{Presence: PresenceFalse}
	}
	return out
}

func containsWord(expr, word string) bool {
	f := strings.FieldsFunc(expr, func(r rune) bool { return r == ' ' || r == '(' || r == ')' })
	for _, w := range f {
		if w == word {
			return true
		}
	}
	return false
}

// factorOf finds which v1 factor authData id stands for, using the
// credential's auth objects when given, else the IDs V1PINID and V1OTPID.
func factorOf(id string, auth *AuthInfo) string {
	if auth != nil {
		for _, o := range auth.Objects {
			if o.ID == id {
				return v1Factor(o)
			}
		}
	}
	switch {
	case strings.EqualFold(id, V1PINID):
		return V1PINID
	case strings.EqualFold(id, V1OTPID):
		return V1OTPID
	}
	return ""
}

// AuthorizeRequestV1 is the body of credentials/authorize in v1.
type AuthorizeRequestV1 struct {
	CredentialID  string  `json:"credentialID"`
	NumSignatures int     `json:"numSignatures"`
	Hash          []Bytes `json:"hash,omitempty"`
	PIN           string  `json:"PIN,omitempty"`
	OTP           string  `json:"OTP,omitempty"`
	Description   string  `json:"description,omitempty"`
	ClientData    string  `json:"clientData,omitempty"`
}

// V1 returns the v1 form of r. Each authData entry must stand for the PIN
// or the OTP (see factorOf; auth may be nil); hashAlgorithmOID has no v1
// form and is dropped.
func (r AuthorizeRequest) V1(auth *AuthInfo) (AuthorizeRequestV1, error) {
	out := AuthorizeRequestV1{
		CredentialID:  r.CredentialID,
		NumSignatures: r.NumSignatures,
		Hash:          r.Hashes,
		Description:   r.Description,
		ClientData:    r.ClientData,
	}
	for _, d := range r.AuthData {
		switch factorOf(d.ID, auth) {
		case V1PINID:
			out.PIN = d.Value
		case V1OTPID:
			out.OTP = d.Value
		default:
			return AuthorizeRequestV1{}, fmt.Errorf("%w: authentication object %q is neither PIN nor OTP", ErrNotInV1, d.ID)
		}
	}
	return out, nil
}

// V2 returns the v2 form of r. The PIN and OTP become authData entries with
// the IDs of the credential's objects (auth may be nil: then V1PINID and
// V1OTPID). hashAlgo is not part of a v1 authorize; pass the credential's
// hash OID as hashAlgo when the hashes need one (else "").
func (r AuthorizeRequestV1) V2(auth *AuthInfo, hashAlgo string) AuthorizeRequest {
	out := AuthorizeRequest{
		CredentialID:  r.CredentialID,
		NumSignatures: r.NumSignatures,
		Hashes:        r.Hash,
		Description:   r.Description,
		ClientData:    r.ClientData,
	}
	if len(r.Hash) > 0 {
		out.HashAlgorithmOID = hashAlgo
	}
	pinID, otpID := V1PINID, V1OTPID
	if auth != nil {
		for _, o := range auth.Objects {
			switch v1Factor(o) {
			case V1PINID:
				pinID = o.ID
			case V1OTPID:
				otpID = o.ID
			}
		}
	}
	if r.PIN != "" {
		out.AuthData = append(out.AuthData, AuthData{ID: pinID, Value: r.PIN})
	}
	if r.OTP != "" {
		out.AuthData = append(out.AuthData, AuthData{ID: otpID, Value: r.OTP})
	}
	return out
}

// SendOTPRequestV1 is the body of credentials/sendOTP in v1 (answered 204).
type SendOTPRequestV1 struct {
	CredentialID string `json:"credentialID"`
	ClientData   string `json:"clientData,omitempty"`
}

// V1 returns the v1 form of r: sendOTP has no authObjectID.
func (r GetChallengeRequest) V1() SendOTPRequestV1 {
	return SendOTPRequestV1{CredentialID: r.CredentialID, ClientData: r.ClientData}
}

// V2 returns the v2 form of r, with the OTP object's ID.
func (r SendOTPRequestV1) V2(auth *AuthInfo) GetChallengeRequest {
	id := V1OTPID
	if auth != nil {
		for _, o := range auth.Objects {
			if v1Factor(o) == V1OTPID {
				id = o.ID
				break
			}
		}
	}
	return GetChallengeRequest{CredentialID: r.CredentialID, AuthObjectID: id, ClientData: r.ClientData}
}

// ExtendTransactionRequestV1 is the body of credentials/extendTransaction in
// v1.
type ExtendTransactionRequestV1 struct {
	CredentialID string  `json:"credentialID"`
	Hash         []Bytes `json:"hash,omitempty"`
	SAD          string  `json:"SAD"`
	ClientData   string  `json:"clientData,omitempty"`
}

// V1 returns the v1 form of r (hashAlgorithmOID dropped).
func (r ExtendTransactionRequest) V1() ExtendTransactionRequestV1 {
	return ExtendTransactionRequestV1{CredentialID: r.CredentialID, Hash: r.Hashes, SAD: r.SAD, ClientData: r.ClientData}
}

// V2 returns the v2 form of r; hashAlgo as in AuthorizeRequestV1.V2.
func (r ExtendTransactionRequestV1) V2(hashAlgo string) ExtendTransactionRequest {
	out := ExtendTransactionRequest{CredentialID: r.CredentialID, Hashes: r.Hash, SAD: r.SAD, ClientData: r.ClientData}
	if len(r.Hash) > 0 {
		out.HashAlgorithmOID = hashAlgo
	}
	return out
}

// SignHashRequestV1 is the body of signatures/signHash in v1.
type SignHashRequestV1 struct {
	CredentialID   string  `json:"credentialID"`
	SAD            string  `json:"SAD"`
	Hash           []Bytes `json:"hash"`
	HashAlgo       string  `json:"hashAlgo,omitempty"`
	SignAlgo       string  `json:"signAlgo"`
	SignAlgoParams Bytes   `json:"signAlgoParams,omitempty"`
	ClientData     string  `json:"clientData,omitempty"`
}

// V1 returns the v1 form of r. v1 has no asynchronous mode, and its SAD is
// required (a v1 credential token travels in it).
func (r SignHashRequest) V1() (SignHashRequestV1, error) {
	if r.OperationMode != "" && r.OperationMode != OperationSync {
		return SignHashRequestV1{}, fmt.Errorf("%w: operationMode %q", ErrNotInV1, r.OperationMode)
	}
	if r.SAD == "" {
		return SignHashRequestV1{}, fmt.Errorf("%w: signHash without SAD", ErrNotInV1)
	}
	return SignHashRequestV1{
		CredentialID:   r.CredentialID,
		SAD:            r.SAD,
		Hash:           r.Hashes,
		HashAlgo:       r.HashAlgorithmOID,
		SignAlgo:       r.SignAlgo,
		SignAlgoParams: r.SignAlgoParams,
		ClientData:     r.ClientData,
	}, nil
}

// V2 returns the v2 form of r.
func (r SignHashRequestV1) V2() SignHashRequest {
	return SignHashRequest{
		CredentialID:     r.CredentialID,
		SAD:              r.SAD,
		Hashes:           r.Hash,
		HashAlgorithmOID: r.HashAlgo,
		SignAlgo:         r.SignAlgo,
		SignAlgoParams:   r.SignAlgoParams,
		ClientData:       r.ClientData,
	}
}

// MethodV1 returns the v1 name of a v2 method, and false when v1 has none.
func MethodV1(v2 string) (string, bool) {
	if v2 == MethodGetChallenge {
		return MethodSendOTP, true
	}
	if v2OnlyMethods[v2] {
		return "", false
	}
	return v2, true
}
