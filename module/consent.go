package module

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrConsentPending: C_Sign stopped waiting for a consent page after
// Options.SignWait; the consent goes on, and what the user approves is
// kept for the next signature of the credential. It wraps ErrCanceled
// (CKR_FUNCTION_CANCELED).
var ErrConsentPending = fmt.Errorf("the consent page is still waiting for the user; approve it, then retry (reload the page): the approval is kept for the retry: %w", ErrCanceled)

// pendingConsent is a consent page for a SCAL1 batch of one credential.
// It runs in the background, bounded by the module's lifetime (C_Finalize
// stops it) and the interactive timeout, and may outlive the C_Sign that
// opened it: the next signature of the credential joins it instead of
// opening a second page.
type pendingConsent struct {
	n       int
	started time.Time
	done    chan struct{} // closed when sad and err are set
	sad     SAD
	err     error
}

// consent returns the credential's pending consent, starting one for n
// signatures when there is none (or only a finished one that is no longer
// usable).
func (t *token) consent(st *state, cred Credential, n int) *pendingConsent {
	credID := cred.ID
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.consents == nil {
		t.consents = map[string]*pendingConsent{}
	}
	if pc := t.consents[credID]; pc != nil {
		select {
		case <-pc.done:
			if pc.err == nil && (pc.sad.ExpiresAt.IsZero() || st.opts.Now().Add(sadSkew).Before(pc.sad.ExpiresAt)) {
				return pc
			}
		default:
			return pc
		}
	}
	pc := &pendingConsent{n: n, started: st.opts.Now(), done: make(chan struct{})}
	t.consents[credID] = pc
	t.writeConsentNote(ConsentNote{Credential: credID, State: "waiting", Since: pc.started, Signatures: n})
	st.flows.Add(1)
	go func() {
		defer st.flows.Done()
		defer close(pc.done)
		ctx, cancel := context.WithTimeout(st.ctx, st.opts.InteractiveTimeout)
		defer cancel()
		if err := t.svc.Login(ctx, true); err != nil {
			pc.err = fmt.Errorf("service login: %w", browserErr(err))
			return
		}
		sad, err := t.svc.AuthorizeInBrowser(ctx, authorizeRequest(cred, n))
		pc.sad, pc.err = sad, browserErr(err)
		if err != nil {
			t.removeConsentNote()
			t.log.Info("consent in the browser ended", "credential", credID, "err", err.Error())
			return
		}
		t.writeConsentNote(ConsentNote{Credential: credID, State: "approved", Since: st.opts.Now(), Signatures: n, Expires: sad.ExpiresAt})
		t.log.Info("approved in the browser; kept for the next signatures of the credential", "credential", credID,
			"signatures", n, "after", st.opts.Now().Sub(pc.started).Round(time.Millisecond).String(), "expires", sad.ExpiresAt)
	}()
	return pc
}

// takeConsent removes pc from the pending consents once its outcome was
// used.
func (t *token) takeConsent(credID string, pc *pendingConsent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.consents[credID] == pc {
		delete(t.consents, credID)
		t.removeConsentNote()
	}
}

// consentBatch authorizes a SCAL1 batch on the consent page for a host
// that cannot wait for a person (Options.SignWait): it waits at most
// SignWait for the consent, which otherwise goes on while C_Sign answers
// ErrConsentPending; the retry takes what the user approved meanwhile,
// without a second page.
func (m *Module) consentBatch(st *state, t *token, op *signOp, credID string, batch int) (SAD, error) {
	return t.pool(credID).take(op.ctx, st.opts.Now(), batch, func(n int) (SAD, error) {
		pc := t.consent(st, op.k.Cred, n)
		timer := time.NewTimer(st.opts.SignWait)
		defer timer.Stop()
		select {
		case <-pc.done:
			t.takeConsent(credID, pc)
			return pc.sad, pc.err
		case <-timer.C:
			t.log.Warn("C_Sign does not wait for the consent page: the host program cannot wait for a person (its connections wait on C_Sign); "+
				"the consent goes on, and once approved the retry signs at once", "credential", credID, "signatures", pc.n,
				"waiting_for", st.opts.Now().Sub(pc.started).Round(time.Second).String(), "answered_after", st.opts.SignWait.String())
			return SAD{}, ErrConsentPending
		case <-op.ctx.Done():
			return SAD{}, op.ctx.Err()
		}
	})
}

// noteSlowConsent logs a browser authorization that took longer than the
// host waits for its TLS handshake (Options.HandshakeLimit): the host has
// likely given up the connection, so the signature is made in vain.
func (t *token) noteSlowConsent(st *state, credID string, took time.Duration, kept int, err error) {
	limit := st.opts.HandshakeLimit
	if limit <= 0 || took < limit || errors.Is(err, context.Canceled) {
		return
	}
	if kept > 0 {
		t.log.Warn("the consent took longer than the host program waits for a TLS handshake: it has likely given up this connection; "+
			"retry (reload): the approval is kept", "credential", credID, "took", took.Round(time.Second).String(),
			"host_limit", limit.String(), "signatures_kept", kept)
		return
	}
	t.log.Warn("the consent took longer than the host program waits for a TLS handshake: it has likely given up this connection, and an "+
		"approval bound to this handshake's hash (SCAL2) cannot serve the retry", "credential", credID,
		"took", took.Round(time.Second).String(), "host_limit", limit.String())
}
