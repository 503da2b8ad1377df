package service

// Users of an external authorization server (docs/external-as.md): the
// administrator maps each user to their subject at that server, and the
// access tokens it issues are mapped back to the user by their sub claim.

import (
	"context"
	"errors"
	"strings"

	"github.com/csctoken/csctoken/rssp/store"
)

// checkSubject accepts "" (none) or a subject: at most 255 bytes (OIDC
// Core §2), printable, no surrounding spaces.
func checkSubject(sub string) error {
	if len(sub) > 255 || strings.TrimSpace(sub) != sub ||
		strings.ContainsFunc(sub, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return badRequest("invalid external subject %q: at most 255 printable bytes, no surrounding spaces", sub)
	}
	return nil
}

// SetExternalSubject maps a user to sub at the external authorization
// server, or with "" removes the mapping (rssp admin user
// external-subject). The user's tokens stay.
func (s *Service) SetExternalSubject(ctx context.Context, name, sub string) error {
	if err := checkSubject(sub); err != nil {
		return err
	}
	u, err := s.user(ctx, name)
	if err != nil {
		return err
	}
	err = s.store.SetUserExternalSubject(ctx, u.ID, sub)
	if errors.Is(err, store.ErrExists) {
		return badRequest("another user has the external subject %q", sub)
	}
	if err != nil {
		return err
	}
	return s.audit(ctx, "admin", u.ID, "", nil, nil, "user "+name+" external subject "+sub)
}
