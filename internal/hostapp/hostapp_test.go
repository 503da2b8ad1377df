package hostapp

import (
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		exe        string
		kind       Kind
		wait       time.Duration
		ownBrowser bool
	}{
		{"/usr/lib/firefox-esr/firefox-esr", Firefox, 2 * time.Second, true},
		{"/usr/lib/firefox/firefox", Firefox, 2 * time.Second, true},
		{"/snap/firefox/123/usr/lib/firefox/firefox", Firefox, 2 * time.Second, true},
		{"/app/lib/librewolf/librewolf", Firefox, 2 * time.Second, true},
		{"/usr/lib/thunderbird/thunderbird", Thunderbird, 0, false},
		{"/usr/lib/chromium/chromium", Chromium, 0, false},
		{"/usr/bin/pkcs11-tool", Other, 0, false},
		{"/usr/lib/libreoffice/program/soffice.bin", Other, 0, false},
	}
	for _, tt := range tests {
		h := Classify(tt.exe)
		if h.Kind != tt.kind || h.SignWait() != tt.wait || h.OwnBrowser() != tt.ownBrowser {
			t.Errorf("%s: %v wait %v own %v; want %v %v %v", tt.exe, h.Kind, h.SignWait(), h.OwnBrowser(), tt.kind, tt.wait, tt.ownBrowser)
		}
		if (h.HandshakeLimit() != 0) != (tt.kind == Firefox) {
			t.Errorf("%s: handshake limit %v", tt.exe, h.HandshakeLimit())
		}
	}
}
