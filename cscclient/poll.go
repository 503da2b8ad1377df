package cscclient

import (
	"context"
	"errors"
	"time"

	"github.com/csctoken/csctoken/csc"
)

// PollOptions bound WaitAuthorization.
type PollOptions struct {
	// Interval is the first wait between checks (1s when zero); each wait
	// grows by half, up to MaxInterval (5s when zero).
	Interval, MaxInterval time.Duration
	// Timeout bounds the whole wait (2 minutes when zero); the context
	// bounds it too.
	Timeout time.Duration
}

// WaitAuthorization polls credentials/authorizeCheck for handle (from a 202
// of Authorize) until the out-of-band authorization is done, and returns
// the SAD. It stops with an error matching ErrAccessDenied when the user
// denied it, ErrTimeout (and context.DeadlineExceeded) when Timeout or the
// context's deadline passed, context.Canceled when ctx was cancelled, and
// any other error of AuthorizeCheck as is.
func (cl *Client) WaitAuthorization(ctx context.Context, handle string, opts PollOptions) (*csc.AuthorizeResponse, error) {
	interval, maxInterval, timeout := opts.Interval, opts.MaxInterval, opts.Timeout
	if interval <= 0 {
		interval = time.Second
	}
	if maxInterval <= 0 {
		maxInterval = 5 * time.Second
	}
	if maxInterval < interval {
		maxInterval = interval
	}
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stopped := func() error {
		e := &Error{Method: mAuthorizeCheck.name, Err: pctx.Err()}
		if errors.Is(pctx.Err(), context.DeadlineExceeded) {
			e.kinds = []error{ErrTimeout}
		}
		return e
	}
	for {
		res, err := cl.AuthorizeCheck(pctx, &csc.AuthorizeCheckRequest{Handle: handle})
		switch {
		case err == nil:
			return res, nil
		case pctx.Err() != nil:
			return nil, stopped()
		case !errors.Is(err, ErrPending):
			return nil, err
		}
		if cl.sleep(pctx, interval) != nil {
			return nil, stopped()
		}
		interval += interval / 2
		if interval > maxInterval {
			interval = maxInterval
		}
	}
}
