// Package soak is the fault and load suite of csctoken (`make soak`): a
// real rssp process on 127.0.0.1, loaded by HTTPS clients and by a C host
// through libcsctoken.so, and hurt on purpose: kill -9 mid-load, a full
// disk, network faults between the module and the server, a flood of bad
// logins, a SoftHSM2 token taken away mid-load. Every phase checks what the design promises (docs/security.md):
// no signature without its audit row, an intact audit chain and database,
// clean 503s and recovery without restart, CKR_DEVICE_ERROR within the
// configured timeout and never a hang, bounded memory.
//
// The phases are bounded in time. `make test` runs a short soak;
// `make soak SOAK_TIME=60s SOAK_BAD_LOGINS=500` a longer one.
//
// Environment:
//
//	CSCTOKEN_SOAK_TIME=d        length of each load phase (default 3s)
//	CSCTOKEN_SOAK_BAD_LOGINS=n  concurrent bad logins of the memory phase (default 200)
//	CSCTOKEN_SOAK_RSSP=path     an rssp binary to test instead of building one
//	CSCTOKEN_REQUIRE_TOOLS=1    fail instead of skipping when gcc or p11-kit is missing
package soak
