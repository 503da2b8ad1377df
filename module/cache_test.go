package module

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/module/objects"
	"github.com/csctoken/csctoken/module/objects/objectstest"
)

// TestCacheObjects: a token that loads the cache another token saved shows
// the same objects, built lazily (package objects checks them attribute by
// attribute).
func TestCacheObjects(t *testing.T) {
	creds := objectstest.Mixed(t)
	dir := t.TempDir()
	listed := benchToken(dir)
	ks := listed.parse(creds, true)
	listed.objs = listed.build(ks)
	listed.saveCache(ks.Creds())
	loaded := benchToken(dir)
	loaded.loadCache()
	a, b := listed.objects().List, loaded.objects().List
	if len(a) != len(b) || len(a) != 1+3*len(creds)-1+2 {
		t.Fatalf("%d objects listed, %d loaded", len(a), len(b))
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Class != b[i].Class || a[i].Private != b[i].Private {
			t.Fatalf("object %d: %s vs %s", i, a[i].Key, b[i].Key)
		}
	}
}

// TestCacheIgnored: a corrupt, foreign, other-version or old JSON cache is
// ignored with a log line; the token shows no credential, nothing panics.
func TestCacheIgnored(t *testing.T) {
	creds := objectstest.Mixed(t)
	for _, tc := range []struct {
		name, want string
		mangle     func(t *token, data []byte)
	}{
		{"flipped byte", "checksum", func(tk *token, data []byte) {
			data[len(data)/2] ^= 1
			os.WriteFile(tk.cachePath, data, 0o600)
		}},
		{"truncated", "checksum", func(tk *token, data []byte) { os.WriteFile(tk.cachePath, data[:len(data)-9], 0o600) }},
		{"other version", "version", func(tk *token, data []byte) {
			data[len(objects.CacheMagic)+1]++
			os.WriteFile(tk.cachePath, data, 0o600)
		}},
		{"not a cache", "not a cache", func(tk *token, data []byte) { os.WriteFile(tk.cachePath, []byte("{}"), 0o600) }},
		{"other user", "another service", func(tk *token, _ []byte) {
			d, _ := objects.EncodeCache(objects.CacheData{URL: tk.cfg.URL, User: "mallory", Creds: creds})
			os.WriteFile(tk.cachePath, d, 0o600)
		}},
		{"old JSON cache", "older version", func(tk *token, _ []byte) {
			os.Remove(tk.cachePath)
			os.WriteFile(tk.oldCachePath(), []byte(`{"version":1}`), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tk := benchToken(dir)
			tk.saveCache(creds)
			data, err := os.ReadFile(tk.cachePath)
			if err != nil {
				t.Fatal(err)
			}
			tc.mangle(tk, data)
			var log strings.Builder
			tk2 := benchToken(dir)
			tk2.log = slog.New(slog.NewTextHandler(&log, nil))
			tk2.loadCache()
			if n := len(tk2.objects().List); n != 1 || !tk2.listedAt.IsZero() {
				t.Fatalf("%d objects from an ignored cache", n)
			}
			if !strings.Contains(log.String(), tc.want) {
				t.Fatalf("log %q, want %q", log.String(), tc.want)
			}
			// The next listing replaces it (and the old JSON file).
			tk2.saveCache(creds)
			tk3 := benchToken(dir)
			tk3.loadCache()
			if n := len(tk3.objects().List); n < len(creds) || fileExists(tk3.oldCachePath()) {
				t.Fatalf("after a new save: %d objects, old cache %v", n, fileExists(tk3.oldCachePath()))
			}
			if files, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(files) != 0 {
				t.Fatalf("temporary files left: %v", files)
			}
		})
	}
}
