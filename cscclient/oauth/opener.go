package oauth

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pkg/browser"
)

// Opener shows an authorization URL to the user, normally by opening it in
// the system browser. Open should return once the browser was started; it
// must not wait for the user. Its error is logged and, when the URL was
// also shown through Config.Out or Config.OnURL, the flow goes on waiting
// for the user to open it by hand.
type Opener interface {
	Open(ctx context.Context, url string) error
}

// OpenerFunc adapts a function to Opener.
type OpenerFunc func(ctx context.Context, url string) error

// Open implements Opener.
func (f OpenerFunc) Open(ctx context.Context, url string) error { return f(ctx, url) }

// DefaultOpenWait is how long BrowserOpener waits for the launcher to fail.
const DefaultOpenWait = 2 * time.Second

// BrowserOpener opens URLs in the system browser with github.com/pkg/browser:
// xdg-open (then x-www-browser, www-browser) on Linux and the BSDs, open on
// macOS, the URL handler on Windows. On Linux outside a desktop session
// xdg-open starts $BROWSER (a colon-separated list; "%s" stands for the
// URL), so BROWSER=/path/to/script selects the browser, as with git or
// man.
//
// The launcher may not return until the browser exits (xdg-open runs
// $BROWSER in the foreground), so Open runs it in the background and waits
// at most Wait for it to fail: a launcher that is missing or fails at once
// is reported, one that is still running counts as opened. Its output is
// discarded (package browser writes it to os.Stdout and os.Stderr by
// default, and a PKCS#11 module must not write on its host's streams).
type BrowserOpener struct {
	// Wait bounds the wait for an early failure (DefaultOpenWait when zero).
	Wait time.Duration
	// Logger gets the launcher's late failure, if any.
	Logger *slog.Logger
}

var quietBrowser sync.Once

// Open implements Opener.
func (o BrowserOpener) Open(ctx context.Context, url string) error {
	quietBrowser.Do(func() { browser.Stdout, browser.Stderr = io.Discard, io.Discard })
	wait := o.Wait
	if wait <= 0 {
		wait = DefaultOpenWait
	}
	done := make(chan error, 1)
	go func() { done <- browser.OpenURL(url) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	case <-ctx.Done():
	}
	if o.Logger != nil {
		log := o.Logger
		go func() {
			if err := <-done; err != nil {
				log.Warn("oauth: the browser launcher failed", "err", err)
			}
		}()
	}
	return nil
}
