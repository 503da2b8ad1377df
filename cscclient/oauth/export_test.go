package oauth

// SetListenHook makes every flow report its redirect URI to f; the
// returned function restores the previous hook. Tests that use it must not
// run in parallel.
func SetListenHook(f func(redirectURI string)) (restore func()) {
	old := testHookListening
	testHookListening = f
	return func() { testHookListening = old }
}
