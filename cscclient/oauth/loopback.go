package oauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/csctoken/csctoken/cscclient"
)

// pageWait bounds how long the browser's request waits for the outcome of
// the token exchange, to tell the user how it ended.
const pageWait = 15 * time.Second

// callback is the loopback redirect URI (RFC 8252 §7.3): an HTTP server
// on 127.0.0.1 on a port the system chose, answering one authorization
// response.
type callback struct {
	redirectURI string
	path, host  string
	state       string
	issuer      string
	requireIss  bool
	log         *slog.Logger

	srv    *http.Server
	served chan struct{} // closed when Serve returned

	once    sync.Once // the first request to the path is the answer
	result  chan callbackResult
	outcome chan error    // the flow's final outcome, for the page
	closing chan struct{} // closed when the flow stops waiting
	closed  sync.Once
}

type callbackResult struct {
	code string
	err  error
}

// testHookListening, when set (by tests), gets each redirect URI.
var testHookListening func(redirectURI string)

// listenCallback starts the listener. The caller must call close.
func listenCallback(path, state, issuer string, requireIss bool, log *slog.Logger) (*callback, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("oauth: loopback listener: %w", err)
	}
	cb := &callback{
		path: path, host: ln.Addr().String(), state: state, issuer: issuer, requireIss: requireIss, log: log,
		served: make(chan struct{}), result: make(chan callbackResult, 1), outcome: make(chan error, 1),
		closing: make(chan struct{}),
	}
	cb.redirectURI = "http://" + cb.host + path
	if testHookListening != nil {
		testHookListening(cb.redirectURI)
	}
	cb.srv = &http.Server{
		Handler:           cb,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       20 * time.Second,
		WriteTimeout:      pageWait + 10*time.Second,
		IdleTimeout:       10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(cb.served)
		if err := cb.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("oauth: loopback listener failed", "err", err)
		}
	}()
	return cb, nil
}

// finish hands the flow's outcome to the page being answered, if any.
func (cb *callback) finish(err error) {
	select {
	case cb.outcome <- err:
	default:
	}
}

// close stops the listener and waits until it has stopped: the port is
// free and no goroutine is left when it returns.
func (cb *callback) close() {
	cb.closed.Do(func() {
		close(cb.closing)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := cb.srv.Shutdown(ctx); err != nil {
			_ = cb.srv.Close()
		}
		<-cb.served
	})
}

// ServeHTTP answers the browser.
func (cb *callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != cb.path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// A page elsewhere may reach 127.0.0.1 through a name of its own (DNS
	// rebinding); the browser's redirect names the listener itself.
	if r.Host != cb.host {
		http.Error(w, "Wrong host", http.StatusBadRequest)
		return
	}
	first := false
	cb.once.Do(func() { first = true })
	if !first {
		page(w, http.StatusGone, "Already answered", "This authorization was already answered. You can close this window.")
		return
	}
	code, err := cb.check(r.URL.Query())
	cb.result <- callbackResult{code: code, err: err}
	if err == nil {
		select {
		case err = <-cb.outcome:
		case <-cb.closing:
			err = errors.New("the application stopped waiting")
		case <-r.Context().Done():
			return
		case <-time.After(pageWait):
			page(w, http.StatusOK, "Authorization received",
				"The application received the authorization. You can close this window.")
			return
		}
	}
	if err == nil {
		page(w, http.StatusOK, "Done", "The application is authorized. You can close this window.")
		return
	}
	cb.log.Debug("oauth: authorization response refused", "err", err)
	var oe *Error
	switch {
	case errors.Is(err, cscclient.ErrAccessDenied):
		page(w, http.StatusOK, "Not authorized", "The authorization was declined. You can close this window.")
	case errors.As(err, &oe) && oe.Description != "":
		page(w, http.StatusBadRequest, "Authorization failed", oe.Description+". You can close this window.")
	default:
		page(w, http.StatusBadRequest, "Authorization failed", err.Error()+". You can close this window.")
	}
}

// check reads an authorization response (RFC 6749 §4.1.2, RFC 9207).
func (cb *callback) check(q url.Values) (string, error) {
	if len(q["state"]) != 1 || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(cb.state)) != 1 {
		return "", ErrStateMismatch
	}
	switch iss := q["iss"]; {
	case len(iss) > 1 || (len(iss) == 1 && iss[0] != cb.issuer):
		return "", fmt.Errorf("%w: got %q, want %q", ErrIssuerMismatch, q.Get("iss"), cb.issuer)
	case len(iss) == 0 && cb.requireIss:
		return "", fmt.Errorf("%w: no iss, which the server promises (RFC 9207)", ErrIssuerMismatch)
	}
	if code := q.Get("error"); code != "" {
		return "", &Error{Endpoint: EndpointAuthorize, Code: clip(code),
			Description: clip(q.Get("error_description")), URI: clip(q.Get("error_uri"))}
	}
	if len(q["code"]) != 1 || q.Get("code") == "" {
		return "", badResponse(EndpointAuthorize, 0, "the authorization response has neither code nor error")
	}
	return q.Get("code"), nil
}

// pageHTML is the page of page(): the title (twice), then the message,
// both HTML-escaped. (A template engine is not worth loading with the
// library for two strings in text context.)
const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title>
<style>%s</style>
</head>
<body>
<main>
<h1>%s</h1>
<p id="message">%s</p>
</main>
</body>
</html>
`

const pageCSS = `body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}` +
	`main{max-width:32rem;margin:3rem auto;padding:1.5rem;background:#fff;border:1px solid #d0d7de;border-radius:8px}`

// pageCSP allows the page's own style and nothing else.
var pageCSP = func() string {
	h := sha256.Sum256([]byte(pageCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(h[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// page answers the browser with a small page. The URL it answers holds the
// code: no-referrer keeps it from leaking.
func page(w http.ResponseWriter, status int, title, msg string) {
	var buf bytes.Buffer
	t := html.EscapeString(title)
	fmt.Fprintf(&buf, pageHTML, t, pageCSS, t, html.EscapeString(msg))
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
