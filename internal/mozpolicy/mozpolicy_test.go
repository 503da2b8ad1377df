package mozpolicy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	lib    = "/usr/lib/x86_64-linux-gnu/pkcs11/libcsctoken.so"
	oldLib = "/usr/local/lib/libcsctoken.so"
)

// admin is an administrator's policy file: other policies, another device
// in the new and the legacy form, keys in an order of their own.
const admin = `{
  "policies": {
    "DisableTelemetry": true,
    "SecurityDevices": {
      "Add": {"OpenSC": "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"},
      "Legacy token": "/usr/lib/legacy.so"
    },
    "Certificates": {"Install": ["/etc/ssl/corp-root.pem"]},
    "Homepage": {"URL": "http://intranet.example/?a=1&b=<2>"}
  },
  "comment": "managed by IT"
}
`

func TestAdd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		before  *string // nil: no file
		want    Result
		wantErr error
		check   func(t *testing.T, doc map[string]any)
	}{
		{name: "ok no file", want: Added, check: func(t *testing.T, doc map[string]any) {
			want := map[string]any{"policies": map[string]any{"SecurityDevices": map[string]any{"Add": map[string]any{"csctoken": lib}}}}
			if !reflect.DeepEqual(doc, want) {
				t.Errorf("got %v, want %v", doc, want)
			}
		}},
		{name: "ok empty object", before: ptr(`{}`), want: Added},
		{name: "ok admin file kept", before: ptr(admin), want: Added, check: func(t *testing.T, doc map[string]any) {
			p := doc["policies"].(map[string]any)
			sd := p["SecurityDevices"].(map[string]any)
			add := sd["Add"].(map[string]any)
			if add["OpenSC"] != "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so" || add["csctoken"] != lib {
				t.Errorf("Add = %v", add)
			}
			if sd["Legacy token"] != "/usr/lib/legacy.so" || p["DisableTelemetry"] != true || doc["comment"] != "managed by IT" {
				t.Errorf("lost a policy: %v", doc)
			}
			if p["Homepage"].(map[string]any)["URL"] != "http://intranet.example/?a=1&b=<2>" {
				t.Errorf("Homepage = %v", p["Homepage"])
			}
		}},
		{name: "ok already there", before: ptr(`{"policies":{"SecurityDevices":{"Add":{"csctoken":"` + lib + `"}}}}`), want: Unchanged},
		{name: "ok older path of ours", before: ptr(`{"policies":{"SecurityDevices":{"Add":{"csctoken":"` + oldLib + `"}}}}`), want: Updated},
		{name: "ok BOM", before: ptr("\xef\xbb\xbf{\"policies\":{}}"), want: Added},
		{name: "fail another library under our name", before: ptr(`{"policies":{"SecurityDevices":{"Add":{"csctoken":"/opt/other.so"}}}}`), wantErr: ErrNotOurs},
		{name: "fail not JSON", before: ptr(`{"policies": {`), wantErr: ErrBroken},
		{name: "fail empty file", before: ptr(``), wantErr: ErrBroken},
		{name: "fail trailing data", before: ptr(`{} {}`), wantErr: ErrBroken},
		{name: "fail array", before: ptr(`[]`), wantErr: ErrBroken},
		{name: "fail policies not an object", before: ptr(`{"policies": []}`), wantErr: ErrBroken},
		{name: "fail SecurityDevices not an object", before: ptr(`{"policies": {"SecurityDevices": "x"}}`), wantErr: ErrBroken},
		{name: "fail Add not an object", before: ptr(`{"policies": {"SecurityDevices": {"Add": ["x"]}}}`), wantErr: ErrBroken},
		{name: "fail duplicate policies", before: ptr(`{"policies": {}, "policies": {}}`), wantErr: ErrBroken},
		{name: "fail comments", before: ptr("{\n// IT\n\"policies\": {}}"), wantErr: ErrBroken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "firefox", "policies", "policies.json")
			if tc.before != nil {
				os.MkdirAll(filepath.Dir(file), 0o755)
				if err := os.WriteFile(file, []byte(*tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Add(file, "csctoken", lib)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				after, _ := os.ReadFile(file)
				if string(after) != *tc.before {
					t.Errorf("the file changed:\n%s", after)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Add = %v, %v; want %v", got, err, tc.want)
			}
			doc := readJSON(t, file)
			add := doc["policies"].(map[string]any)["SecurityDevices"].(map[string]any)["Add"].(map[string]any)
			if add["csctoken"] != lib {
				t.Errorf("Add = %v", add)
			}
			if tc.check != nil {
				tc.check(t, doc)
			}
			// A second run changes nothing.
			if got, err := Add(file, "csctoken", lib); err != nil || got != Unchanged {
				t.Errorf("second Add = %v, %v", got, err)
			}
		})
	}
}

func TestAddKeepsOrderModeOwnerAndSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "managed.json")
	if err := os.WriteFile(real, []byte(admin), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "policies.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Add(link, "csctoken", lib); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v %v", fi.Mode(), err)
	}
	st, err := os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(real)
	s := string(data)
	order := []string{`"policies"`, `"DisableTelemetry"`, `"SecurityDevices"`, `"Add"`, `"OpenSC"`, `"csctoken"`, `"Legacy token"`, `"Certificates"`, `"Homepage"`, `"comment"`}
	last := -1
	for _, k := range order {
		i := strings.Index(s, k)
		if i <= last {
			t.Fatalf("%s out of order in:\n%s", k, s)
		}
		last = i
	}
	if !strings.Contains(s, `b=<2>`) {
		t.Errorf("a value was re-escaped:\n%s", s)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".policies-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestRemove(t *testing.T) {
	t.Run("ok keeps the admin's entries", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "policies.json")
		os.WriteFile(file, []byte(admin), 0o644)
		if _, err := Add(file, "csctoken", lib); err != nil {
			t.Fatal(err)
		}
		if got, err := Remove(file, "csctoken", lib); err != nil || got != Removed {
			t.Fatalf("Remove = %v, %v", got, err)
		}
		var before, after map[string]any
		json.Unmarshal([]byte(admin), &before)
		after = readJSON(t, file)
		if !reflect.DeepEqual(before, after) {
			t.Errorf("after removal:\n%v\nwant:\n%v", after, before)
		}
		if got, err := Remove(file, "csctoken", lib); err != nil || got != NotPresent {
			t.Errorf("second Remove = %v, %v", got, err)
		}
	})
	t.Run("ok last entry removes the file and empty directories", func(t *testing.T) {
		root := t.TempDir()
		file := filepath.Join(root, "firefox", "policies", "policies.json")
		if _, err := Add(file, "csctoken", lib); err != nil {
			t.Fatal(err)
		}
		if got, err := Remove(file, "csctoken", lib); err != nil || got != FileRemoved {
			t.Fatalf("Remove = %v, %v", got, err)
		}
		if _, err := os.Stat(filepath.Join(root, "firefox")); !os.IsNotExist(err) {
			t.Errorf("directory left: %v", err)
		}
	})
	t.Run("ok other SecurityDevices keys stay", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "policies.json")
		os.WriteFile(file, []byte(`{"policies":{"SecurityDevices":{"Delete":["x"],"Add":{"csctoken":"`+lib+`"}}}}`), 0o644)
		if got, err := Remove(file, "csctoken", lib); err != nil || got != Removed {
			t.Fatalf("Remove = %v, %v", got, err)
		}
		want := map[string]any{"policies": map[string]any{"SecurityDevices": map[string]any{"Delete": []any{"x"}}}}
		if got := readJSON(t, file); !reflect.DeepEqual(got, want) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("ok no file", func(t *testing.T) {
		if got, err := Remove(filepath.Join(t.TempDir(), "policies.json"), "csctoken", lib); err != nil || got != NotPresent {
			t.Fatalf("Remove = %v, %v", got, err)
		}
	})
	for _, tc := range []struct{ name, before string }{
		{"fail another library", `{"policies":{"SecurityDevices":{"Add":{"csctoken":"/opt/other.so"}}}}`},
		{"fail broken", `{"policies":{"SecurityDevices":{"Add":{"csctoken":"` + lib + `"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "policies.json")
			os.WriteFile(file, []byte(tc.before), 0o644)
			if _, err := Remove(file, "csctoken", lib); err == nil {
				t.Fatal("no error")
			}
			if after, _ := os.ReadFile(file); string(after) != tc.before {
				t.Errorf("the file changed:\n%s", after)
			}
		})
	}
}

func readJSON(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v\n%s", file, err, data)
	}
	return doc
}

func ptr(s string) *string { return &s }
