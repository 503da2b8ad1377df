package store

import (
	"context"
	"errors"
)

// Full is a store with its pending part, as every implementation is.
type Full interface {
	Store
	PendingStore
}

// Observe wraps s so that onFailure sees every failure of the database:
// an error of any method that is not one of the refusals the contract
// names (ErrNotFound, ErrExists, ErrExhausted, ErrExpired, ErrRevoked,
// ErrInUse) nor the caller's cancellation. ErrFull is a failure. op is
// the method's name. Everything else is passed through unchanged.
func Observe(s Full, onFailure func(op string, err error)) Full {
	return &observed{s: s, p: s, onFailure: onFailure}
}

// IsFailure says whether err from a store method is a failure of the
// database rather than an answer (see Observe).
func IsFailure(err error) bool {
	if err == nil {
		return false
	}
	for _, refusal := range []error{ErrNotFound, ErrExists, ErrExhausted, ErrExpired, ErrRevoked, ErrInUse, ErrStale,
		ErrUsed, ErrBusy,
		context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, refusal) {
			return false
		}
	}
	return true
}

// observed is Observe's wrapper; its forwarding methods, one per method
// of the interfaces, are in observed_methods.go (a method added to an
// interface fails the build here until it gets one).
type observed struct {
	s         Store
	p         PendingStore
	onFailure func(op string, err error)
}

var _ Full = (*observed)(nil)

func (o *observed) check(op string, err error) error {
	if IsFailure(err) {
		o.onFailure(op, err)
	}
	return err
}

func (o *observed) Close() error { return o.s.Close() }
