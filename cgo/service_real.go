//go:build !csctoken_fake

package main

import (
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/cscservice"
)

// loadConfig is the module's config loader: nil means config.LoadDefault
// ($CSCTOKEN_CONFIG, then the user's file, then the machine's).
var loadConfig func() (*config.Config, error)

// newService builds the Service of one [[service]] table: the CSC client
// adapter, with the service token from the OS keyring or the token file
// that `csctoken login` wrote. Its client does each call's I/O on the
// calling thread (cscclient.WithCallerIO), so C_Sign's remote part runs
// there too (remoteOnCaller): one thread hand-off less per signature and
// none inside the HTTP exchange.
var newService = cscservice.Factory(cscservice.WithClientOptions(cscclient.WithCallerIO()))

// remoteOnCaller is module.Options.RemoteOnCaller.
const remoteOnCaller = cscclient.CallerIOSupported

// afterInitialize runs after a successful C_Initialize; nothing here (the
// module lists credentials in the background).
var afterInitialize func()
