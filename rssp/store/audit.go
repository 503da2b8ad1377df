package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// The audit log is a hash chain: every row carries the SHA-256 of the row
// before it (PrevHash) and its own hash, computed by AuditHash over PrevHash
// and every other field. Changing, inserting or removing a row in the middle
// breaks the chain at that row, which VerifyAudit reports. Removing rows at
// the end cannot be seen from the chain alone: compare the last Seq and Hash
// with a copy kept elsewhere (a log line, a backup) for that.

// AuditHashSize is the length of an audit row's Hash and PrevHash.
const AuditHashSize = sha256.Size

// GenesisHash is the PrevHash of the first audit row: AuditHashSize zero
// bytes. Use GenesisHash[:] as the slice.
var GenesisHash [AuditHashSize]byte

// auditHashDomain separates audit row hashes from any other SHA-256 use and
// names the encoding; a new encoding gets a new tag.
const auditHashDomain = "csctoken audit row v1"

// AuditHash returns the hash of audit row e chained to prev: SHA-256 over a
// domain tag, prev, and every field of e except PrevHash and Hash, in a fixed
// order. Integers (Seq, Time as Unix nanoseconds, the number of Hashes) are
// 8 bytes big-endian; strings and prev are preceded by their length as 8
// bytes big-endian, so no two different rows encode alike.
//
// e.Time must lie in the range of int64 Unix nanoseconds (years 1678-2262),
// as every stored time does; its location and monotonic reading do not
// matter.
func AuditHash(prev []byte, e AuditEvent) []byte {
	h := sha256.New()
	writeField(h, []byte(auditHashDomain))
	writeField(h, prev)
	writeUint(h, uint64(e.Seq))
	writeUint(h, uint64(e.Time.UnixNano()))
	writeField(h, []byte(e.Event))
	writeField(h, []byte(e.UserID))
	writeField(h, []byte(e.CredentialID))
	writeField(h, []byte(e.ClientAddr))
	writeUint(h, uint64(len(e.Hashes)))
	for _, s := range e.Hashes {
		writeField(h, []byte(s))
	}
	writeField(h, []byte(e.Result))
	writeField(h, []byte(e.Detail))
	return h.Sum(nil)
}

func writeUint(h hash.Hash, v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	h.Write(b[:])
}

func writeField(h hash.Hash, b []byte) {
	writeUint(h, uint64(len(b)))
	h.Write(b)
}

// ErrAuditBroken matches every *AuditBreakError with errors.Is.
var ErrAuditBroken = errors.New("audit chain broken")

// AuditBreakError says where and why VerifyAudit found the audit chain
// broken. Seq is the first row that does not verify (for a missing row, the
// Seq that is missing).
type AuditBreakError struct {
	Seq    int64
	Reason string
}

func (e *AuditBreakError) Error() string {
	return fmt.Sprintf("audit chain broken at row %d: %s", e.Seq, e.Reason)
}

// Is makes errors.Is(err, ErrAuditBroken) true.
func (e *AuditBreakError) Is(target error) bool { return target == ErrAuditBroken }

// auditPageSize is how many rows VerifyAudit reads at a time.
const auditPageSize = 500

// VerifyAudit walks the whole audit log of s from the first row, in pages,
// and checks that Seq counts up from 1 without gaps, that each PrevHash is
// the previous row's Hash (GenesisHash for row 1) and that each Hash is
// AuditHash of its row. It returns the number of rows that verified. A broken
// chain is an *AuditBreakError (matching ErrAuditBroken); other errors come
// from reading the store.
//
// Rows appended while VerifyAudit runs are checked too, up to the moment it
// reads an empty page.
func VerifyAudit(ctx context.Context, s Store) (checked int64, err error) {
	prev := GenesisHash[:]
	want := int64(1)
	for {
		rows, err := s.AuditEvents(ctx, want-1, auditPageSize)
		if err != nil {
			return checked, fmt.Errorf("verify audit: reading rows after %d: %w", want-1, err)
		}
		if len(rows) == 0 {
			return checked, nil
		}
		for _, e := range rows {
			if err := verifyAuditRow(e, want, prev); err != nil {
				return checked, err
			}
			prev = e.Hash
			want++
			checked++
		}
	}
}

// verifyAuditRow checks row e, expected to have Seq want and to follow a row
// whose hash is prev.
func verifyAuditRow(e AuditEvent, want int64, prev []byte) error {
	switch {
	case e.Seq > want:
		return &AuditBreakError{Seq: want, Reason: fmt.Sprintf("row missing (the next row is %d)", e.Seq)}
	case e.Seq < want:
		return &AuditBreakError{Seq: e.Seq, Reason: fmt.Sprintf("row out of order or repeated (expected row %d)", want)}
	case !bytes.Equal(e.PrevHash, prev):
		if want == 1 {
			return &AuditBreakError{Seq: e.Seq, Reason: "prev_hash of the first row is not the genesis hash"}
		}
		return &AuditBreakError{Seq: e.Seq, Reason: fmt.Sprintf("prev_hash does not match the hash of row %d", want-1)}
	case !bytes.Equal(AuditHash(e.PrevHash, e), e.Hash):
		return &AuditBreakError{Seq: e.Seq, Reason: "hash does not match the row's contents"}
	}
	return nil
}
