//go:build !linux

package consentbrowser

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Supported reports whether Open can start a browser here (Linux only,
// for now).
const Supported = false

// Opener is not implemented here.
type Opener struct {
	Exe, ProfileDir, CAFile string
	Logger                  *slog.Logger
}

// Open fails.
func (Opener) Open(context.Context, string) error {
	return errors.New("a separate browser process for the consent page is not implemented on this system")
}

// CloseAll does nothing.
func CloseAll(time.Duration) {}
