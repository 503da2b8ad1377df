package sqlite

import (
	"testing"

	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/storetest"
)

func TestOAuthConformance(t *testing.T) {
	storetest.RunOAuth(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestPendingConformance(t *testing.T) {
	storetest.RunPending(t, func(t *testing.T) store.Store { return openTemp(t) })
}
