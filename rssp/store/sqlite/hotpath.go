package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/csctoken/csctoken/rssp/store"
)

// The signing hot path's reads: each one prepared SELECT on a pooled
// connection, standing for the point reads it replaces (token and user;
// credential and SAD), so a signature costs two reads of the database
// instead of four.

// TokenUser implements store.Store with a join of the token and its user,
// scanned by scanToken and scanUser (joined), so it follows their columns.
func (d *DB) TokenUser(ctx context.Context, hash []byte) (store.Token, store.User, error) {
	var u store.User
	t, err := get(ctx, d, stTokenUser, func(sc scanner) (store.Token, error) {
		return scanToken(joined{row: sc, next: func(sc scanner) (err error) {
			u, err = scanUser(sc)
			return err
		}})
	}, hash)
	if err != nil {
		return store.Token{}, store.User{}, fmt.Errorf("sqlite: token and user: %w", notFound(err))
	}
	return t, u, nil
}

// joined scans one row that holds the columns of two scan functions, one
// after the other: the first one's Scan runs next, whose Scan reads the
// row into both lists of destinations; each function then converts its own
// values.
type joined struct {
	row  scanner
	next func(scanner) error
}

func (j joined) Scan(dest ...any) error {
	return j.next(scanFunc(func(more ...any) error { return j.row.Scan(append(dest, more...)...) }))
}

type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// qualified prefixes each column of a column list with a table alias.
func qualified(alias, cols string) string {
	var b strings.Builder
	for i, c := range strings.Split(cols, ",") {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(alias + "." + strings.TrimSpace(c))
	}
	return b.String()
}

// SigningState implements store.Store with the credential's row joined
// (LEFT) with the SAD's.
func (d *DB) SigningState(ctx context.Context, credentialID string, sadHash []byte) (store.SigningState, error) {
	if len(sadHash) == 0 {
		sadHash = nil // matches no row
	}
	st, err := get(ctx, d, stSigningState, scanSigningState, sadHash, credentialID)
	if err != nil {
		return store.SigningState{}, fmt.Errorf("sqlite: signing state of credential %q: %w", credentialID, notFound(err))
	}
	return st, nil
}

func scanSigningState(sc scanner) (store.SigningState, error) {
	var (
		st                          store.SigningState
		c                           = &st.Credential
		s                           = &st.SAD
		ccreated                    sql.NullInt64
		sadCred, sadUser, hashAlgo  sql.NullString
		hashes                      []byte
		remaining, expires, created sql.NullInt64
	)
	if err := sc.Scan(&c.ID, &c.UserID, &c.Disabled, &c.PINFailures, &c.Locked, &ccreated,
		&s.Hash, &sadCred, &sadUser, &hashAlgo, &hashes, &remaining, &expires, &created); err != nil {
		return store.SigningState{}, err
	}
	c.CreatedAt = fromNanos(ccreated)
	if s.Hash == nil {
		st.SAD = store.SAD{}
		return st, nil
	}
	st.HasSAD = true
	s.CredentialID, s.UserID, s.HashAlgo = sadCred.String, sadUser.String, hashAlgo.String
	s.Remaining = int(remaining.Int64)
	s.ExpiresAt, s.CreatedAt = fromNanos(expires), fromNanos(created)
	var err error
	if s.Hashes, err = decodeList[[]byte](hashes); err != nil {
		return store.SigningState{}, fmt.Errorf("SAD hashes: %w", err)
	}
	return st, nil
}
