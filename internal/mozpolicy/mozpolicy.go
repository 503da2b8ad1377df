// Package mozpolicy adds a PKCS#11 module to a Firefox or Thunderbird
// enterprise policy file (policies.json: policies.SecurityDevices.Add), and
// takes it out again, for every user of a machine.
//
// The file belongs to the administrator: Add and Remove change only the one
// entry, keep every other policy, device and key order, and write through a
// temporary file renamed over the original (same mode and owner; a symlink
// is followed). A file that is not a JSON object whose policies,
// SecurityDevices and Add are objects is never written: the error wraps
// ErrBroken and the file stays as it was. Firefox's policy format:
// https://mozilla.github.io/policy-templates/#securitydevices
package mozpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrBroken says the file is not a policy file this package can change
// safely; it was left unchanged.
var ErrBroken = errors.New("not a valid policies.json")

// ErrNotOurs says an entry of that name is there for another library; it
// was left unchanged.
var ErrNotOurs = errors.New("the entry belongs to another library")

// maxSize bounds what is read (policy files with embedded certificates are
// large, but not this large).
const maxSize = 16 << 20

// moduleFile is the file name of the module: an entry of our name whose
// library has this name is ours (an older path is replaced).
const moduleFile = "libcsctoken.so"

// Result is what Add or Remove did.
type Result int

const (
	Unchanged   Result = iota // the file already said so
	Added                     // the entry was added (the file created if needed)
	Updated                   // our entry pointed to another path of the module
	Removed                   // the entry was removed
	FileRemoved               // the entry was removed and with it the file, which held nothing else
	NotPresent                // there was no entry to remove
)

func (r Result) String() string {
	switch r {
	case Unchanged:
		return "already registered"
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Removed:
		return "removed"
	case FileRemoved:
		return "removed (and the file, which held nothing else)"
	case NotPresent:
		return "not registered"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// Add makes policies.SecurityDevices.Add[name] = library in the policy file
// at path, creating the file (and its directory) when there is none.
func Add(path, name, library string) (Result, error) {
	if name == "" || library == "" {
		return Unchanged, errors.New("mozpolicy: empty name or library")
	}
	target, doc, mode, exists, err := read(path)
	if err != nil {
		return Unchanged, err
	}
	policies, sd, add, err := devices(doc)
	if err != nil {
		return Unchanged, fmt.Errorf("%s: %w", target, err)
	}
	res := Added
	if cur, ok := add.get(name); ok {
		var lib string
		if json.Unmarshal(cur, &lib) != nil || (lib != library && filepath.Base(lib) != moduleFile) {
			return Unchanged, fmt.Errorf("%s: SecurityDevices.Add %q is %s: %w", target, name, cur, ErrNotOurs)
		}
		if lib == library {
			return Unchanged, nil
		}
		res = Updated
	}
	add.set(name, jsonString(library))
	sd.set("Add", add.raw())
	policies.set("SecurityDevices", sd.raw())
	doc.set("policies", policies.raw())
	if !exists {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return Unchanged, err
		}
	}
	if err := write(target, doc, mode); err != nil {
		return Unchanged, err
	}
	return res, nil
}

// Remove deletes policies.SecurityDevices.Add[name] when it is ours (its
// library is library, or a file named libcsctoken.so), and the containers
// it leaves empty; a file left with no policy at all is removed, and its
// directory and the directory above when they are empty.
func Remove(path, name, library string) (Result, error) {
	target, doc, mode, exists, err := read(path)
	if err != nil || !exists {
		return NotPresent, err
	}
	policies, sd, add, err := devices(doc)
	if err != nil {
		return NotPresent, fmt.Errorf("%s: %w", target, err)
	}
	cur, ok := add.get(name)
	if !ok {
		return NotPresent, nil
	}
	var lib string
	if json.Unmarshal(cur, &lib) != nil || (lib != library && filepath.Base(lib) != moduleFile) {
		return NotPresent, fmt.Errorf("%s: SecurityDevices.Add %q is %s: %w", target, name, cur, ErrNotOurs)
	}
	add.del(name)
	if len(add) == 0 {
		sd.del("Add")
	} else {
		sd.set("Add", add.raw())
	}
	if len(sd) == 0 {
		policies.del("SecurityDevices")
	} else {
		policies.set("SecurityDevices", sd.raw())
	}
	if len(policies) == 0 {
		doc.del("policies")
	} else {
		doc.set("policies", policies.raw())
	}
	if len(doc) == 0 {
		if err := os.Remove(target); err != nil {
			return NotPresent, err
		}
		// Directories we may have made; rmdir leaves one that holds anything.
		dir := filepath.Dir(target)
		if os.Remove(dir) == nil {
			os.Remove(filepath.Dir(dir))
		}
		return FileRemoved, nil
	}
	if err := write(target, doc, mode); err != nil {
		return NotPresent, err
	}
	return Removed, nil
}

// read resolves path (following symlinks) and parses the file there; a
// missing file is an empty document.
func read(path string) (target string, doc object, mode os.FileMode, exists bool, err error) {
	target = path
	if real, err := filepath.EvalSymlinks(path); err == nil {
		target = real
	}
	f, err := os.Open(target)
	if errors.Is(err, fs.ErrNotExist) {
		return target, object{}, 0o644, false, nil
	}
	if err != nil {
		return target, nil, 0, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return target, nil, 0, false, err
	}
	if !st.Mode().IsRegular() {
		return target, nil, 0, true, fmt.Errorf("%s: not a regular file: %w", target, ErrBroken)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return target, nil, 0, true, err
	}
	if len(data) > maxSize {
		return target, nil, 0, true, fmt.Errorf("%s: larger than %d bytes: %w", target, maxSize, ErrBroken)
	}
	doc, err = parseObject(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if err != nil {
		return target, nil, 0, true, fmt.Errorf("%s: %w: %w", target, ErrBroken, err)
	}
	return target, doc, st.Mode().Perm(), true, nil
}

// devices returns the policies, SecurityDevices and Add objects of doc
// (empty ones where they are missing).
func devices(doc object) (policies, sd, add object, err error) {
	if policies, err = doc.object("policies"); err != nil {
		return nil, nil, nil, err
	}
	if sd, err = policies.object("SecurityDevices"); err != nil {
		return nil, nil, nil, fmt.Errorf("policies: %w", err)
	}
	if add, err = sd.object("Add"); err != nil {
		return nil, nil, nil, fmt.Errorf("policies.SecurityDevices: %w", err)
	}
	return policies, sd, add, nil
}

// write replaces target with doc, indented, through a temporary file in the
// same directory that takes mode and the old file's owner.
func write(target string, doc object, mode os.FileMode) error {
	var out bytes.Buffer
	if err := json.Indent(&out, doc.raw(), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	var uid, gid = -1, -1
	if st, err := os.Stat(target); err == nil {
		uid, gid = owner(st)
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), ".policies-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if uid >= 0 && (uid != os.Geteuid() || gid != os.Getegid()) {
		if err := tmp.Chown(uid, gid); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(target)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// jsonString is s as a JSON string (without HTML escapes).
func jsonString(s string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return bytes.TrimRight(b.Bytes(), "\n")
}
