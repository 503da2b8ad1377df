package service

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/csctoken/csctoken/rssp/store"
)

// TOTP parameters (RFC 6238 with the defaults authenticator apps expect).
const (
	totpPeriod = 30
	totpSkew   = 1 // accept one step either side for clock drift
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// newTOTP makes a seed (base32 text) and its otpauth:// URI.
func newTOTP(issuer, user, credID string) (seed []byte, uri string, err error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: user + " (" + credID + ")",
		Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, SecretSize: 20,
	})
	if err != nil {
		return nil, "", fmt.Errorf("totp: %w", err)
	}
	return []byte(k.Secret()), k.URL(), nil
}

// totpCode returns the code of seed at t (for tests and the demo).
func totpCode(seed []byte, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(string(seed), t, totpOpts)
}

// checkTOTP verifies code against seed at now, refusing a step at or
// before the last accepted one for this credential (a code is single-use,
// across nodes: the store keeps the step, store.UseTOTPStep).
func (s *Service) checkTOTP(ctx context.Context, credID string, seed []byte, code string, now time.Time) (bool, error) {
	step := now.Unix() / totpPeriod
	match := int64(-1)
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		want, err := totpCode(seed, time.Unix((step+d)*totpPeriod, 0))
		if err != nil {
			return false, nil
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			match = step + d
		}
	}
	if match < 0 {
		return false, nil
	}
	switch err := s.store.UseTOTPStep(ctx, credID, match); {
	case errors.Is(err, store.ErrUsed):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}
