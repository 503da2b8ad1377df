package cscclient

import (
	"math/big"

	"github.com/csctoken/csctoken/csc"
)

// The ECDSA conversions are csc's (csc/ecdsa.go), the one implementation;
// these names stay for the client's users.

// ErrECDSASignature is wrapped when a signature is neither DER nor r‖s.
var ErrECDSASignature = csc.ErrECDSASignature

// ECDSAToDER returns sig, DER or raw r‖s, as a DER Ecdsa-Sig-Value (the
// X.509 and CMS form): csc.ECDSAToDER.
func ECDSAToDER(sig []byte) ([]byte, error) { return csc.ECDSAToDER(sig) }

// ECDSAToRaw returns sig, DER or raw r‖s, as r‖s with each half size bytes,
// the form of PKCS#11's CKM_ECDSA: csc.ECDSAToRaw.
func ECDSAToRaw(sig []byte, size int) ([]byte, error) { return csc.ECDSAToRaw(sig, size) }

// CurveSize returns the field size in bytes of a curve OID (P-256, P-384,
// P-521), or 0: csc.CurveSize.
func CurveSize(curveOID string) int { return csc.CurveSize(curveOID) }

// parseECDSADER is csc.ParseECDSADER (the fuzz target checks with it).
func parseECDSADER(sig []byte) (r, s *big.Int, ok bool) { return csc.ParseECDSADER(sig) }
