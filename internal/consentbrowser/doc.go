// Package consentbrowser opens a consent page in a browser process of its
// own: for a host program that is itself the user's browser (Firefox),
// where the system browser would open the page as a tab of the host,
// whose connections wait on the very C_Sign that waits for the page.
//
// The page opens in a new instance of the host's own browser executable
// (`firefox --no-remote --profile DIR URL`) with a profile that csctoken
// keeps for it under the user's cache directory (so the service's sign-in
// is remembered between consents); when that profile is in use, a
// throwaway one. The process is ended a little after the flow ends (time
// to read the page that says how it ended), at once by CloseAll (the
// module's C_Finalize), and never outlives the host.
package consentbrowser
