package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

// The administrator's operations on users and credentials (rssp admin),
// besides AddUser and AddCredential. Each one is audited.

// Users lists the users by name.
func (s *Service) Users(ctx context.Context) ([]store.User, error) {
	return s.store.Users(ctx)
}

// user finds a user by name, with a message an administrator understands.
func (s *Service) user(ctx context.Context, name string) (store.User, error) {
	u, err := s.store.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return u, badRequest("no user %q", name)
	}
	return u, err
}

// SetUserDisabled disables or enables a user; disabling also ends the
// user's logins (their tokens are deleted).
func (s *Service) SetUserDisabled(ctx context.Context, name string, disabled bool) error {
	u, err := s.user(ctx, name)
	if err != nil {
		return err
	}
	if err := s.store.SetUserDisabled(ctx, u.ID, disabled); err != nil {
		return err
	}
	return s.audit(ctx, "admin", u.ID, "", nil, nil, fmt.Sprintf("user %s disabled=%v", name, disabled))
}

// SetPassword sets a user's password; the user's logins end.
func (s *Service) SetPassword(ctx context.Context, name, password string) error {
	if len(password) < 8 {
		return badRequest("the password must have at least 8 characters")
	}
	u, err := s.user(ctx, name)
	if err != nil {
		return err
	}
	h, err := secret.Hash(password, s.opt.Argon2)
	if err != nil {
		return err
	}
	if err := s.store.SetUserPassword(ctx, u.ID, h); err != nil {
		return err
	}
	return s.audit(ctx, "admin", u.ID, "", nil, nil, "user password "+name)
}

// DeleteUser deletes a user. A user with credentials is refused unless
// force, which deletes the credentials first (destroying their keys).
// It returns the IDs of the credentials deleted.
func (s *Service) DeleteUser(ctx context.Context, name string, force bool) ([]string, error) {
	u, err := s.user(ctx, name)
	if err != nil {
		return nil, err
	}
	creds, err := s.store.Credentials(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if len(creds) > 0 && !force {
		return nil, badRequest("user %q has %d credential(s): delete them first, or use --force to delete them with their keys", name, len(creds))
	}
	var deleted []string
	for _, c := range creds {
		if err := s.DeleteCredential(ctx, c.ID); err != nil {
			return deleted, err
		}
		deleted = append(deleted, c.ID)
	}
	if err := s.store.DeleteUser(ctx, u.ID); err != nil {
		if errors.Is(err, store.ErrInUse) {
			return deleted, badRequest("user %q is still in use (%v): an OAuth2 client acts for them", name, err)
		}
		return deleted, err
	}
	return deleted, s.audit(ctx, "admin", u.ID, "", nil, nil, "user delete "+name)
}

// DeleteCredential deletes a credential and destroys its key in the
// keystore or HSM. The credential is gone even when destroying the key
// fails (the error says so); the audit log keeps its history.
func (s *Service) DeleteCredential(ctx context.Context, id string) error {
	c, err := s.store.Credential(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return badRequest("no credential %q", id)
	}
	if err != nil {
		return err
	}
	if err := s.store.DeleteCredential(ctx, id); err != nil {
		return err
	}
	s.credCache.Delete(id)
	var keyErr error
	if b, ok := s.backends[c.Backend]; !ok {
		keyErr = fmt.Errorf("credential %s deleted, but its key is in the keystore backend %q, which this server does not use: destroy it there", id, c.Backend)
	} else if err := b.Delete(ctx, c.KeyRef); err != nil {
		keyErr = fmt.Errorf("credential %s deleted, but destroying its key failed: %w", id, err)
	}
	detail := "credential delete, key destroyed"
	if keyErr != nil {
		detail = "credential delete, key NOT destroyed"
	}
	return errors.Join(keyErr, s.audit(ctx, "admin", c.UserID, id, nil, keyErr, detail))
}
