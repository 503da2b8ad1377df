package main

import (
	"errors"
	"fmt"

	"github.com/csctoken/csctoken/internal/mozpolicy"
)

// registerPolicies adds (or with remove takes out) the module in Firefox or
// Thunderbird enterprise policy files (policies.json, SecurityDevices.Add;
// the packages' maintainer scripts run it for /etc/firefox/policies and
// /etc/thunderbird/policies). A file that does not parse, or whose entry of
// that name is another library's, is left as it is, with a warning. It
// returns the files that failed.
func (c *cli) registerPolicies(files []string, name, library string, remove bool) []string {
	var failed []string
	for _, file := range files {
		var res mozpolicy.Result
		var err error
		if remove {
			res, err = mozpolicy.Remove(file, name, library)
		} else {
			res, err = mozpolicy.Add(file, name, library)
		}
		switch {
		case errors.Is(err, mozpolicy.ErrBroken), errors.Is(err, mozpolicy.ErrNotOurs):
			failed = append(failed, "policy "+file)
			fmt.Fprintf(c.stderr, "policy %s: warning: left unchanged: %v\n", file, err)
		case err != nil:
			failed = append(failed, "policy "+file)
			fmt.Fprintf(c.stderr, "policy %s: %v\n", file, err)
		case remove:
			fmt.Fprintf(c.stdout, "policy %s: %q %s\n", file, name, res)
		default:
			fmt.Fprintf(c.stdout, "policy %s: %q %s (%s)\n", file, name, res, library)
		}
	}
	return failed
}
