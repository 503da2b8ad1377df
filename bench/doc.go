// Package bench holds the speed benchmarks of csctoken that span the
// module, the client, the RSSP and the built libcsctoken.so (`make bench`).
// Everything is in the _test.go files: BenchmarkSign, BenchmarkP11Kit,
// BenchmarkColdStart (with BenchmarkColdStartParts, which separates the Go
// runtime's start from the module's work, and BenchmarkColdStartModule, the
// same in process for profiling), BenchmarkPkcs11ToolSign,
// BenchmarkCredentials1000 and BenchmarkMemory; BenchmarkNodes (signHash on
// SQLite, on PostgreSQL with one node and two, at 16 and 64 clients, with
// the CPU of the PostgreSQL server) and BenchmarkAuditAppend (rows per
// second of the serialized audit chain, by writers); package module has
// BenchmarkLoadCache (the listing cache of 2 and 1,000 credentials). The library is only ever loaded by C hosts (p11bench,
// cbench/p11bench.c, compiled with gcc by the benchmarks, and pkcs11-tool);
// Go code uses package module in process, and directhost/ is the CSC client
// alone as a process of its own. A benchmark whose tool is missing is
// skipped (CSCTOKEN_REQUIRE_TOOLS=1 makes that a failure).
//
//	go test -run '^$' -bench . -benchtime=1s ./bench/...
//
// The RSSPs run in the test process with the production log level, PINs
// hashed at the tests' argon2 cost (BenchmarkColdStart also at the
// production cost), max_multisign raised so that the direct client
// authorizes once per run.
//
// Environment:
//
//	CSCTOKEN_BENCH_LIB=path   use that libcsctoken.so instead of building one
//	CSCTOKEN_BENCH_WRAP=cmd   run the C hosts under cmd, e.g.
//	                          "perf record -e cpu-clock -g -o /tmp/p.data --"
//	CSCTOKEN_BENCH_LOG=dir    the C hosts' module log goes to dir/module.log
//	CSCTOKEN_BENCH_SESSIONS=n BenchmarkP11Kit with n sessions only
//	CSCTOKEN_BENCH_ROUNDS=n   BenchmarkP11Kit runs its variants in n turns (3)
//	CSCTOKEN_REQUIRE_TOOLS=1  fail instead of skipping when a tool is missing
package bench
