package module

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/csctoken/csctoken/module/objects"
)

// refreshAsync starts a background listing unless one is running.
func (t *token) refreshAsync() {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				t.log.Error("panic in background refresh", "panic", fmt.Sprint(r))
			}
		}()
		if err := t.refresh(t.st.ctx); err != nil {
			t.log.Info("background listing failed", "err", err.Error())
		}
	}()
}

// maybeRefresh starts a background listing when the last one is older
// than the TTL. Never blocks.
func (t *token) maybeRefresh() {
	if t.st.opts.NoBackgroundRefresh || t.svc == nil {
		return
	}
	t.mu.Lock()
	stale := t.refreshing == nil && t.staleLocked()
	t.mu.Unlock()
	if stale {
		t.refreshAsync()
	}
}

// staleLocked reports whether the listing is older than the TTL (or from
// the future: a clock that went back, a foreign cache). Called with t.mu
// held.
func (t *token) staleLocked() bool {
	age := t.st.opts.Now().Sub(t.listedAt)
	return age > t.st.opts.ListingTTL || age < -time.Minute
}

// neverListed reports whether the token has no listing at all: neither
// from this process nor from the disk cache.
func (t *token) neverListed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.listedAt.IsZero()
}

// refresh lists the credentials, single-flight: a caller arriving while a
// listing runs waits for that one (or for ctx).
func (t *token) refresh(ctx context.Context) error {
	if t.svc == nil {
		return errNoService
	}
	t.mu.Lock()
	if ch := t.refreshing; ch != nil {
		t.mu.Unlock()
		select {
		case <-ch:
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.refreshErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ch := make(chan struct{})
	t.refreshing = ch
	t.mu.Unlock()

	lctx, cancel := context.WithTimeout(ctx, t.cfg.ListTimeout)
	creds, err := t.svc.ListCredentials(lctx)
	cancel()
	var ks *objects.KeySet
	if err == nil {
		ks = t.parse(creds, true)
		// Save before publishing: a program that exits as soon as it sees
		// the objects (pkcs11-tool --list-slots) must not cut the write
		// short.
		if ctx.Err() == nil {
			t.saveCache(ks.Creds())
		}
	}

	t.mu.Lock()
	if err == nil {
		t.objs = t.build(ks)
		t.listedAt = t.st.opts.Now()
	} else {
		err = fmt.Errorf("list credentials: %w", err)
	}
	t.refreshErr = err
	t.refreshing = nil
	close(ch)
	t.mu.Unlock()
	return err
}

// loadCache shows the last listing cached on disk (cache.go) until a
// listing of this process replaces it. A missing, unreadable, corrupt or
// foreign cache is ignored (with a log line, but for a missing one).
func (t *token) loadCache() {
	if t.cachePath == "" {
		return
	}
	removeStaleTemps(filepath.Dir(t.cachePath))
	data, err := os.ReadFile(t.cachePath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			t.log.Warn("cache unreadable", "path", t.cachePath, "err", err.Error())
		} else if old := t.oldCachePath(); fileExists(old) {
			t.log.Info("cache of an older version ignored", "path", old)
		}
		return
	}
	cf, err := objects.DecodeCache(data)
	if err == nil && (cf.URL != t.cfg.URL || cf.User != t.cfg.Username) {
		err = errors.New("written for another service URL or user")
	}
	if err != nil {
		t.log.Warn("cache ignored", "path", t.cachePath, "err", err.Error())
		return
	}
	ks := t.parse(cf.Creds, false)
	t.mu.Lock()
	t.objs = t.build(ks)
	t.listedAt = cf.Listed
	t.mu.Unlock()
}

func (t *token) saveCache(creds []Credential) {
	if t.cachePath == "" {
		return
	}
	data, err := objects.EncodeCache(objects.CacheData{URL: t.cfg.URL, User: t.cfg.Username, Listed: t.st.opts.Now().UTC(), Creds: creds})
	if err == nil {
		err = writeFileAtomic(t.cachePath, data)
	}
	if err != nil {
		t.log.Warn("cache not written", "path", t.cachePath, "err", err.Error())
		return
	}
	if old := t.oldCachePath(); fileExists(old) {
		_ = os.Remove(old)
	}
}

// oldCachePath is where versions before cache format 2 kept the listing
// (JSON).
func (t *token) oldCachePath() string {
	return strings.TrimSuffix(t.cachePath, objects.CacheExt) + ".json"
}
