package oauth

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/csctoken/csctoken/rssp/service"
)

// Holding a pushed credential request open (POST oauth2/abandon with
// hold=1): the program that pushed it keeps one call open while it waits
// for the user. The call ends with {"state": ...} when the request is
// answered, abandoned or expired, or after HoldSegment ("pending": the
// program calls again at once). When the program's connection closes
// instead (the program is gone: killed, or its host exited without a word)
// and no new hold arrives within HoldGrace, the request is abandoned, as
// if the program had said so.
var (
	// HoldSegment bounds one hold call (under the server's request and
	// write timeouts).
	HoldSegment = 15 * time.Second
	// HoldGrace is how long a dropped hold waits for the program to
	// call again before the request is abandoned.
	HoldGrace = 3 * time.Second
	// holdPoll is how often a hold looks at the request's state.
	holdPoll = time.Second
	// MaxHoldsPerUser and MaxHolds bound the hold calls open at once on
	// this node, per user and in all: each keeps a connection and polls
	// the store, and a program holds one per consent it waits for. A
	// hold over the bound is refused (429; the program then only says
	// when it stops waiting).
	MaxHoldsPerUser = 8
	MaxHolds        = 1024
)

// holds counts the hold calls in progress per request_uri, on this node.
type holds struct {
	mu     sync.Mutex
	active map[string]int
	last   map[string]time.Time // when the last hold call began
	users  map[string]int       // hold calls open per user
	total  int
}

// slot takes one of the hold calls userID may have open, if the bounds
// allow; release gives it back.
func (h *holds) slot(userID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.users == nil {
		h.users = map[string]int{}
	}
	if h.total >= MaxHolds || h.users[userID] >= MaxHoldsPerUser {
		return false
	}
	h.total++
	h.users[userID]++
	return true
}

func (h *holds) release(userID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.users[userID]--; h.users[userID] <= 0 {
		delete(h.users, userID)
	}
}

func (h *holds) begin(uri string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active == nil {
		h.active, h.last = map[string]int{}, map[string]time.Time{}
	}
	h.active[uri]++
	h.last[uri] = time.Now()
}

func (h *holds) end(uri string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active[uri]--; h.active[uri] <= 0 {
		delete(h.active, uri)
	}
}

// heldSince reports whether a hold of uri is in progress or began after t;
// the entry is forgotten otherwise.
func (h *holds) heldSince(uri string, t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active[uri] > 0 || h.last[uri].After(t) {
		return true
	}
	delete(h.last, uri)
	return false
}

type holdAnswer struct {
	State string `json:"state"`
}

// hold serves a hold call of userID for uri (see HoldSegment).
func (s *Server) hold(w http.ResponseWriter, r *http.Request, userID, uri string) {
	ctx := r.Context()
	if !s.holds.slot(userID) {
		s.writeError(w, r, &service.Problem{Kind: service.ErrThrottled, RetryAfter: HoldSegment,
			Description: "Too many requests held open at once"})
		return
	}
	defer s.holds.release(userID)
	state, err := s.oauth.Held(ctx, userID, uri)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if state != "pending" {
		writeJSON(w, http.StatusOK, holdAnswer{state})
		return
	}
	segment := HoldSegment
	if dl, ok := ctx.Deadline(); ok {
		segment = min(segment, time.Until(dl)-2*time.Second)
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(segment + 5*time.Second))
	s.holds.begin(uri)
	defer s.holds.end(uri)
	end := time.NewTimer(segment)
	defer end.Stop()
	tick := time.NewTicker(holdPoll)
	defer tick.Stop()
	for {
		select {
		case <-end.C:
			writeJSON(w, http.StatusOK, holdAnswer{"pending"})
			return
		case <-tick.C:
			if state, err := s.oauth.Held(ctx, userID, uri); err == nil && state != "pending" {
				writeJSON(w, http.StatusOK, holdAnswer{state})
				return
			}
		case <-ctx.Done():
			if ctx.Err() == context.Canceled {
				go s.abandonDropped(userID, uri, time.Now())
			}
			return
		}
	}
}

// abandonDropped abandons uri when no new hold came within HoldGrace of
// the one dropped at dropped.
func (s *Server) abandonDropped(userID, uri string, dropped time.Time) {
	time.Sleep(HoldGrace)
	if s.holds.heldSince(uri, dropped) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	state, err := s.oauth.Held(ctx, userID, uri)
	if err != nil || state != "pending" {
		return
	}
	if err := s.oauth.Abandon(ctx, userID, uri); err != nil {
		s.log.Info("oauth: abandoning a request whose program went away failed", "err", err)
		return
	}
	s.log.Info("oauth: a credential request's program went away while the user was asked; request abandoned")
}
