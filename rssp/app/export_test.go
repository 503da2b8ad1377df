package app

import (
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/store"
)

// StoreForTest and KeysForTest let the tests break what /readyz checks.
func (a *App) StoreForTest() store.Store     { return a.store }
func (a *App) KeysForTest() keystore.Backend { return a.keys }
