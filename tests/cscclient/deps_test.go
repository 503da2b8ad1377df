package cscclient_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientBuildsNoServer: the client's and the module's tests (and the
// packages themselves) build no rssp package; tests against the real
// server live under tests/ (or, for cscclient/oauth's browser flows, behind
// -tags rssp).
func TestClientBuildsNoServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "../../cscclient/...", "../../module/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/csctoken/csctoken/rssp") || p == "github.com/csctoken/csctoken/internal/rssptest" {
			t.Errorf("a client or module test builds %s", p)
		}
	}
}
