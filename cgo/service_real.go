//go:build !csctoken_fake

package main

import (
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
)

// loadConfig is the module's config loader: nil means config.LoadDefault
// ($CSCTOKEN_CONFIG, then the user's file, then the machine's).
var loadConfig func() (*config.Config, error)

// newService builds the Service of one [[service]] table: the CSC client
// adapter, with the service token from the OS keyring or the token file
// that `csctoken login` wrote.
var newService = cscservice.Factory()

// afterInitialize runs after a successful C_Initialize; nothing here (the
// module lists credentials in the background).
var afterInitialize func()
