package objects

import "fmt"

// AuthMode says how a credential's authorization factors are collected.
type AuthMode int

const (
	// AuthPIN: explicit mode with a single PIN/password factor, which the
	// PKCS#11 PIN carries.
	AuthPIN AuthMode = iota
	// AuthNone: explicit mode without authentication objects (v1 "implicit").
	AuthNone
	// AuthBrowser: oauth2code mode, or factors a PIN string cannot carry
	// (OTP, several objects): authorized on the service's consent page.
	AuthBrowser
)

// String names the mode as the config and logs do.
func (a AuthMode) String() string {
	switch a {
	case AuthPIN:
		return "pin"
	case AuthNone:
		return "none"
	case AuthBrowser:
		return "browser"
	}
	return fmt.Sprintf("AuthMode(%d)", int(a))
}

// Credential is one CSC credential as the module needs it. It holds only
// public data and is cached on disk as JSON.
type Credential struct {
	ID          string `json:"id"`
	Description string `json:"description,omitempty"`
	// Enabled is key/status == "enabled".
	Enabled bool `json:"enabled"`
	// KeyAlgos are the key/algo OIDs the service will use for signHash
	// (the adapter intersects them with info.signAlgorithms).
	KeyAlgos []string `json:"key_algos"`
	// KeyLen is key/len in bits.
	KeyLen int `json:"key_len"`
	// CurveOID is key/curve for EC keys.
	CurveOID string `json:"curve,omitempty"`
	// Certificates is the chain, DER, end-entity first.
	Certificates [][]byte `json:"certificates"`
	// SCAL is 1 or 2 (0 is read as 1).
	SCAL int `json:"scal"`
	// Multisign is the most signatures one authorization may cover (>= 1).
	Multisign int `json:"multisign"`
	// Auth is how the credential is authorized.
	Auth AuthMode `json:"auth"`
	// PINLabel is the PIN object's label, if any (informational).
	PINLabel string `json:"pin_label,omitempty"`
	// PINID is the ID of the PIN's authentication object (AuthPIN), which
	// credentials/authorize names in authData; empty when unknown.
	PINID string `json:"pin_id,omitempty"`
	// SignatureQualifier is the credential's signatureQualifier (such as
	// eu_eidas_qes), informational; empty when it has none.
	SignatureQualifier string `json:"signature_qualifier,omitempty"`
}
