package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func sampleEvent() AuditEvent {
	return AuditEvent{
		Seq:          7,
		Time:         time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC),
		Event:        "sign",
		UserID:       "u1",
		CredentialID: "c1",
		ClientAddr:   "127.0.0.1:5000",
		Hashes:       []string{"aGFzaDE=", "aGFzaDI="},
		Result:       "ok",
		Detail:       "2 signatures",
	}
}

func TestAuditHash(t *testing.T) {
	prev := bytes.Repeat([]byte{0xab}, AuditHashSize)
	base := sampleEvent()
	want := AuditHash(prev, base)
	if len(want) != AuditHashSize {
		t.Fatalf("len = %d, want %d", len(want), AuditHashSize)
	}

	t.Run("ok same row same hash", func(t *testing.T) {
		e := sampleEvent()
		e.Time = e.Time.In(time.FixedZone("X", 3600)) // location does not matter
		e.PrevHash = []byte("ignored")
		e.Hash = []byte("ignored")
		if got := AuditHash(prev, e); !bytes.Equal(got, want) {
			t.Errorf("hash changed with location or Hash/PrevHash fields")
		}
	})
	t.Run("ok nil and empty hashes alike", func(t *testing.T) {
		a, b := sampleEvent(), sampleEvent()
		a.Hashes, b.Hashes = nil, []string{}
		if !bytes.Equal(AuditHash(prev, a), AuditHash(prev, b)) {
			t.Errorf("nil and empty Hashes hash differently")
		}
	})

	// Every field, and prev, must change the hash; so must moving bytes
	// from one field to the next.
	changes := []struct {
		name string
		prev []byte
		mod  func(e *AuditEvent)
	}{
		{"fail prev", bytes.Repeat([]byte{0xac}, AuditHashSize), nil},
		{"fail seq", prev, func(e *AuditEvent) { e.Seq++ }},
		{"fail time", prev, func(e *AuditEvent) { e.Time = e.Time.Add(time.Nanosecond) }},
		{"fail event", prev, func(e *AuditEvent) { e.Event = "login" }},
		{"fail user", prev, func(e *AuditEvent) { e.UserID = "u2" }},
		{"fail credential", prev, func(e *AuditEvent) { e.CredentialID = "c2" }},
		{"fail client addr", prev, func(e *AuditEvent) { e.ClientAddr = "127.0.0.1:5001" }},
		{"fail hashes element", prev, func(e *AuditEvent) { e.Hashes[1] = "aGFzaDM=" }},
		{"fail hashes order", prev, func(e *AuditEvent) { e.Hashes[0], e.Hashes[1] = e.Hashes[1], e.Hashes[0] }},
		{"fail hashes split", prev, func(e *AuditEvent) { e.Hashes = []string{"aGFzaDE=aGFzaDI="} }},
		{"fail hashes empty element", prev, func(e *AuditEvent) { e.Hashes = append(e.Hashes, "") }},
		{"fail result", prev, func(e *AuditEvent) { e.Result = "SVC_ERR" }},
		{"fail detail", prev, func(e *AuditEvent) { e.Detail = "" }},
		{"fail shift between fields", prev, func(e *AuditEvent) { e.UserID, e.CredentialID = "u1c", "1" }},
		{"fail shift into detail", prev, func(e *AuditEvent) { e.Result, e.Detail = "o", "k2 signatures" }},
	}
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			e := sampleEvent()
			if tc.mod != nil {
				tc.mod(&e)
			}
			if bytes.Equal(AuditHash(tc.prev, e), want) {
				t.Errorf("hash did not change")
			}
		})
	}
}

// auditRows is a Store holding only an audit log; other methods panic.
type auditRows struct {
	Store
	rows    []AuditEvent
	failErr error
}

func (s *auditRows) AuditEvents(ctx context.Context, after int64, limit int) ([]AuditEvent, error) {
	if s.failErr != nil {
		return nil, s.failErr
	}
	var out []AuditEvent
	for _, e := range s.rows {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// chain builds n correctly chained rows.
func chain(n int) []AuditEvent {
	rows := make([]AuditEvent, 0, n)
	prev := GenesisHash[:]
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		e := AuditEvent{
			Seq:      int64(i),
			Time:     t0.Add(time.Duration(i) * time.Millisecond),
			Event:    "sign",
			UserID:   "u1",
			Result:   "ok",
			Detail:   fmt.Sprintf("row %d", i),
			PrevHash: prev,
		}
		e.Hash = AuditHash(prev, e)
		prev = e.Hash
		rows = append(rows, e)
	}
	return rows
}

func TestVerifyAudit(t *testing.T) {
	n := 2*auditPageSize + 17 // several pages
	tests := []struct {
		name        string
		mod         func(rows []AuditEvent) []AuditEvent
		wantChecked int64
		wantSeq     int64 // 0: no break
	}{
		{"ok empty", func([]AuditEvent) []AuditEvent { return nil }, 0, 0},
		{"ok one row", func(r []AuditEvent) []AuditEvent { return r[:1] }, 1, 0},
		{"ok several pages", nil, int64(n), 0},
		{"fail changed field", func(r []AuditEvent) []AuditEvent { r[600].Detail = "x"; return r }, 600, 601},
		{"fail changed time", func(r []AuditEvent) []AuditEvent { r[0].Time = r[0].Time.Add(1); return r }, 0, 1},
		{"fail changed hash", func(r []AuditEvent) []AuditEvent { r[9].Hash[0] ^= 1; return r }, 9, 10},
		{"fail rehashed row", func(r []AuditEvent) []AuditEvent {
			r[499].Detail = "x"
			r[499].Hash = AuditHash(r[499].PrevHash, r[499])
			return r
		}, 500, 501},
		{"fail bad genesis", func(r []AuditEvent) []AuditEvent {
			r[0].PrevHash = bytes.Repeat([]byte{1}, AuditHashSize)
			r[0].Hash = AuditHash(r[0].PrevHash, r[0])
			return r
		}, 0, 1},
		{"fail missing row", func(r []AuditEvent) []AuditEvent { return append(r[:499:499], r[500:]...) }, 499, 500},
		{"fail missing first row", func(r []AuditEvent) []AuditEvent { return r[1:] }, 0, 1},
		{"fail repeated row", func(r []AuditEvent) []AuditEvent {
			return append(r[:5:5], append([]AuditEvent{r[3]}, r[5:]...)...)
		}, 5, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows := chain(n)
			if tc.mod != nil {
				rows = tc.mod(rows)
			}
			checked, err := VerifyAudit(context.Background(), &auditRows{rows: rows})
			if checked != tc.wantChecked {
				t.Errorf("checked = %d, want %d", checked, tc.wantChecked)
			}
			if tc.wantSeq == 0 {
				if err != nil {
					t.Fatalf("VerifyAudit: %v", err)
				}
				return
			}
			var be *AuditBreakError
			if !errors.As(err, &be) {
				t.Fatalf("err = %v, want *AuditBreakError", err)
			}
			if be.Seq != tc.wantSeq {
				t.Errorf("break at %d, want %d (%v)", be.Seq, tc.wantSeq, err)
			}
			if !errors.Is(err, ErrAuditBroken) {
				t.Errorf("errors.Is(err, ErrAuditBroken) = false")
			}
			want := fmt.Sprintf("audit chain broken at row %d: ", tc.wantSeq)
			if got := err.Error(); len(got) <= len(want) || got[:len(want)] != want {
				t.Errorf("Error() = %q, want prefix %q", got, want)
			}
		})
	}

	t.Run("fail store error", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := VerifyAudit(context.Background(), &auditRows{failErr: boom})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want wrapped boom", err)
		}
		if errors.Is(err, ErrAuditBroken) {
			t.Errorf("a read error must not look like a broken chain")
		}
	})
}
