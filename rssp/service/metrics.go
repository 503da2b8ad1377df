package service

import (
	"errors"

	"github.com/csctoken/csctoken/rssp/store"
)

// Metrics receives the events the service counts for operators
// (package rssp/metrics implements it with Prometheus). Every method must
// be cheap and safe for concurrent use; Deps.Metrics nil counts nothing.
type Metrics interface {
	// Signed: n signatures made with a key of that type (keystore.KeyType)
	// for a credential of that SCAL.
	Signed(keyType string, scal, n int)
	// FactorFailed: a wrong factor ("pin" or "otp"); locked when this
	// failure locked the credential.
	FactorFailed(factor string, locked bool)
	// AuditAppended: one audit row written (err nil) or not written.
	AuditAppended(err error)
}

type noMetrics struct{}

func (noMetrics) Signed(string, int, int)   {}
func (noMetrics) FactorFailed(string, bool) {}
func (noMetrics) AuditAppended(error)       {}

// countAuditStep counts the audit row of an atomic store step that
// writes one with its effect (ConsumeSAD, CreateSAD): written when err is
// nil; not counted when the step was refused for a reason of its own (an
// unknown, expired or used-up SAD, a taken hash: no row was due); an
// audit error otherwise (the database failed).
func (s *Service) countAuditStep(err error) {
	switch {
	case err == nil:
		s.metrics.AuditAppended(nil)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired),
		errors.Is(err, store.ErrExhausted), errors.Is(err, store.ErrExists):
	default:
		s.metrics.AuditAppended(err)
	}
}
