package main

import (
	"os/exec"
	"testing"
)

func TestPackageVersion(t *testing.T) {
	for _, tc := range []struct {
		describe string
		commits  int
		want     string
	}{
		{"v1.2.3-0-gabc1234", 0, "1.2.3"},
		{"v1.2.3-5-gabc1234", 0, "1.2.3+git5.gabc1234"},
		{"v1.2.3-5-gabc1234-dirty", 0, "1.2.3+git5.gabc1234.dirty"},
		{"v1.3.0-rc1-2-gabc1234", 0, "1.3.0~rc1+git2.gabc1234"},
		{"v1.3.0-rc.1-0-gabc1234", 0, "1.3.0~rc.1"},
		{"3a5e48d", 52, "0.0.0+git52.g3a5e48d"},
		{"3a5e48d-dirty", 52, "0.0.0+git52.g3a5e48d.dirty"},
		{"", 0, ""},
		{"3a5e48d", 0, ""},            // no tag and no commit count
		{"release-5-gabc1234", 0, ""}, // not a v tag
		{"v1.2_3-0-gabc1234", 0, ""},  // _ is no version character
	} {
		got, err := packageVersion(tc.describe, tc.commits)
		if tc.want == "" {
			if err == nil {
				t.Errorf("packageVersion(%q, %d) = %q, want an error", tc.describe, tc.commits, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("packageVersion(%q, %d) = %q, %v; want %q", tc.describe, tc.commits, got, err, tc.want)
		}
	}
}

// TestVersionOrder checks with dpkg that the versions sort as git history
// does (rpm uses the same rules for these characters).
func TestVersionOrder(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not available")
	}
	order := []string{"0.0.0+git52.g3a5e48d", "0.0.0+git53.g0000000", "1.3.0~rc1", "1.3.0~rc1+git2.gabc1234", "1.3.0", "1.3.0+git1.gffff", "1.3.0+git10.g0000"}
	for i := 1; i < len(order); i++ {
		if err := exec.Command("dpkg", "--compare-versions", order[i-1]+"-1", "lt", order[i]+"-1").Run(); err != nil {
			t.Errorf("dpkg: %s is not older than %s", order[i-1], order[i])
		}
	}
}
