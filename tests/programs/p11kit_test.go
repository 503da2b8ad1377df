package programs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	p11kitProxy  = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
	p11kitClient = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
	// As root, p11-kit reads only the system registry.
	p11kitModules = "/etc/pkcs11/modules"
)

// TestP11kit registers the module with p11-kit (a .module file in the
// system registry: as root, p11-kit ignores ~/.config/pkcs11/modules),
// checks that p11-kit list-modules shows its token, signs through
// p11-kit-proxy.so with pkcs11-tool, then exports the token with
// `p11-kit server --provider` and signs through p11-kit-client.so.
func TestP11kit(t *testing.T) {
	need(t, "p11-kit", "pkcs11-tool", p11kitProxy)
	f := newFixture(t)
	doc := []byte("a contract signed through p11-kit and libcsctoken.so\n")
	docFile := f.write(t, "doc", doc)
	sum := sha256.Sum256(doc)
	hashFile := f.write(t, "doc.sha256", sum[:])

	// sign signs the document with each key through a module with
	// pkcs11-tool (keys chosen by --id: pkcs11-tool takes the first key
	// otherwise), and verifies the signatures with openssl.
	// ecMech is ECDSA-SHA256 (the token hashes) or ECDSA (pkcs11-tool
	// hands over the hash).
	sign := func(t *testing.T, module, ecMech string) {
		t.Helper()
		for _, k := range []*key{f.rsa, f.ec} {
			mech, extra, in := "SHA256-RSA-PKCS", []string(nil), docFile
			if k == f.ec {
				mech, extra = ecMech, []string{"--signature-format", "openssl"}
				if ecMech == "ECDSA" {
					in = hashFile
				}
			}
			sig := f.path(filepath.Base(module) + "." + k.label + ".sig")
			args := append([]string{"--module", module, "--token-label", tokenLabel, "--login", "--pin", pin,
				"--sign", "--id", k.id, "--mechanism", mech, "--input-file", in, "--output-file", sig}, extra...)
			f.mustRun(t, "pkcs11-tool", args...)
			f.verify(t, k, "sha256", docFile, sig)
		}
	}

	t.Run("registry", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("writing the system p11-kit registry needs root")
		}
		systemDir(t, p11kitModules)
		name := "csctoken-programs-test"
		file := filepath.Join(p11kitModules, name+".module")
		t.Cleanup(func() { os.Remove(file) })
		if err := os.WriteFile(file, []byte("module: "+f.lib+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := f.mustRun(t, "p11-kit", "list-modules")
		i := strings.Index(out, name+": "+f.lib)
		if i < 0 {
			t.Fatalf("module %s not listed:\n%s", name, out)
		}
		section := out[i:]
		if j := strings.Index(section[1:], "\n"+strings.Repeat("", 0)); j >= 0 {
			// The module's section runs to the next unindented line.
			lines := strings.SplitAfter(section, "\n")
			section = lines[0]
			for _, l := range lines[1:] {
				if !strings.HasPrefix(l, " ") {
					break
				}
				section += l
			}
		}
		if !strings.Contains(section, "token: "+tokenLabel) {
			t.Errorf("token %q not listed under %s:\n%s", tokenLabel, name, out)
		}
		sign(t, p11kitProxy, "ECDSA-SHA256")
	})

	t.Run("server", func(t *testing.T) {
		need(t, p11kitClient)
		sock := f.path("run", "p11-kit.sock")
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, "p11-kit", "server", "-f", "-s", "-n", sock, "--provider", f.lib,
			"pkcs11:token="+strings.ReplaceAll(tokenLabel, " ", "%20"))
		cmd.Env, cmd.Dir = f.vars, f.dir
		cmd.WaitDelay = 5 * time.Second
		stderr := &lockedBuffer{}
		cmd.Stderr = stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); _ = cmd.Wait() })
		// It prints P11_KIT_SERVER_ADDRESS=...; export ...; once listening.
		addr := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if a, ok := strings.CutPrefix(sc.Text(), "P11_KIT_SERVER_ADDRESS="); ok {
					a, _, _ = strings.Cut(a, ";")
					addr <- strings.Trim(a, "'\"")
				}
			}
		}()
		var address string
		select {
		case address = <-addr:
		case <-time.After(20 * time.Second):
			t.Fatalf("p11-kit server printed no address:\n%s", stderr)
		}
		t.Logf("P11_KIT_SERVER_ADDRESS=%s", address)
		f.setenv("P11_KIT_SERVER_ADDRESS", address)
		defer f.setenv("P11_KIT_SERVER_ADDRESS", "")
		// p11-kit 0.24's RPC refuses mechanisms it does not know to
		// serialize, CKM_ECDSA_SHA256 among them (CKR_MECHANISM_INVALID
		// from the client, before the module is called): ECDSA on the
		// hash instead.
		sign(t, p11kitClient, "ECDSA")
		if t.Failed() {
			t.Logf("p11-kit server:\n%s", stderr)
		}
	})
}

// systemDir makes a system directory and its missing parents, and removes
// what it made when the test ends (after the files in it, registered later).
func systemDir(t *testing.T, dir string) {
	t.Helper()
	var made []string
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range made {
			os.Remove(d)
		}
	})
}
