package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/csctoken/csctoken/rssp/store"
)

// The hot path's reads: one query each.

// TokenUser implements store.Store with a join of the token and its user,
// scanned by scanToken and scanUser, so it follows their columns.
func (d *DB) TokenUser(ctx context.Context, hash []byte) (store.Token, store.User, error) {
	var u store.User
	row := d.pool.QueryRow(ctx, `SELECT `+qualified("t", tokenCols)+`, `+qualified("u", userCols)+`
		FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1`, hash)
	t, err := scanToken(joined{row: row, next: func(sc scanner) (err error) {
		u, err = scanUser(sc)
		return err
	}})
	if err != nil {
		return store.Token{}, store.User{}, fmt.Errorf("postgres: token and user: %w", notFound(err))
	}
	return t, u, nil
}

// joined scans one row holding the columns of two scan functions, one
// after the other: the first one's Scan calls next, whose Scan reads the
// row into both lists of destinations.
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
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// SigningState implements store.Store with the credential's row joined
// (LEFT) with the SAD's.
func (d *DB) SigningState(ctx context.Context, credentialID string, sadHash []byte) (store.SigningState, error) {
	if len(sadHash) == 0 {
		sadHash = nil // matches no row
	}
	var (
		st        store.SigningState
		c         = &st.Credential
		ccreated  *int64
		sadHashes [][]byte
		s         struct {
			hash                        []byte
			cred, user, algo            *string
			remaining, expires, created *int64
		}
	)
	err := d.pool.QueryRow(ctx, `SELECT c.id, c.user_id, c.disabled, c.pin_failures, c.locked, c.created_at,
			s.hash, s.credential_id, s.user_id, s.hash_algo, s.hashes, s.remaining, s.expires_at, s.created_at
		FROM credentials c LEFT JOIN sads s ON s.hash = $1 WHERE c.id = $2`, sadHash, credentialID).
		Scan(&c.ID, &c.UserID, &c.Disabled, &c.PINFailures, &c.Locked, &ccreated,
			&s.hash, &s.cred, &s.user, &s.algo, &sadHashes, &s.remaining, &s.expires, &s.created)
	if err != nil {
		return store.SigningState{}, fmt.Errorf("postgres: signing state of credential %q: %w", credentialID, notFound(err))
	}
	c.CreatedAt = fromNanos(ccreated)
	if s.hash == nil {
		return st, nil
	}
	st.HasSAD = true
	st.SAD = store.SAD{Hash: s.hash, CredentialID: text(s.cred), UserID: text(s.user), HashAlgo: text(s.algo),
		Hashes: bytesList(sadHashes), ExpiresAt: fromNanos(s.expires), CreatedAt: fromNanos(s.created)}
	if s.remaining != nil {
		st.SAD.Remaining = int(*s.remaining)
	}
	return st, nil
}
