package ck

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// notInHeader are constants of ours that p11-kit 0.24's pkcs11.h (Debian
// 12) lacks: PKCS#11 3.0 additions (profiles, CKA_UNIQUE_ID, the 3.0
// return codes) and 2.40 names it leaves out. Each is checked where the
// header has it (a newer p11-kit).
var notInHeader = map[string]bool{
	"CKA_PROFILE_ID": true, "CKA_SUBPRIME_BITS": true, "CKA_UNIQUE_ID": true,
	"CKF_EC_ECPARAMETERS": true, "CKF_EC_F_2M": true, "CKF_ERROR_STATE": true,
	"CKO_PROFILE": true, "CKP_AUTHENTICATION_TOKEN": true, "CKP_BASELINE_PROVIDER": true,
	"CKP_EXTENDED_PROVIDER": true, "CKP_INVALID_ID": true, "CKP_PUBLIC_CERTIFICATES_TOKEN": true,
	"CKR_OPERATION_CANCEL_FAILED": true, "CKR_TOKEN_RESOURCE_EXCEEDED": true,
	"CK_CERTIFICATE_CATEGORY_AUTHORITY": true, "CK_CERTIFICATE_CATEGORY_OTHER_ENTITY": true,
	"CK_CERTIFICATE_CATEGORY_TOKEN_USER": true, "CK_CERTIFICATE_CATEGORY_UNSPECIFIED": true,
	"CK_SECURITY_DOMAIN_UNSPECIFIED": true,
}

// oasisNotHeader are the values where p11-kit's header differs from the
// OASIS PKCS#11 2.40 pkcs11t.h, which ours follow: p11-kit 0.24 numbers
// these five return codes 0x1c0-0x1c4, OASIS 0x1B5-0x1B9. The module never
// returns them.
var oasisNotHeader = map[string]uint64{
	"CKR_EXCEEDED_MAX_ITERATIONS": 0x1c0, "CKR_FIPS_SELF_TEST_FAILED": 0x1c1,
	"CKR_LIBRARY_LOAD_FAILED": 0x1c2, "CKR_PIN_TOO_WEAK": 0x1c3, "CKR_PUBLIC_KEY_INVALID": 0x1c4,
}

// TestConstantsMatchHeader checks every constant of this package against
// the pkcs11.h the library is built with (p11-kit's, pkg-config
// p11-kit-1): a small C program prints the header's value of each name,
// compiled with gcc. The constants are typed by hand; this is what keeps
// them right. A constant the header does not define fails unless listed
// in notInHeader.
func TestConstantsMatchHeader(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("gcc is needed (the library is built with it): %v", err)
	}
	cflags, err := exec.Command("pkg-config", "--cflags", "p11-kit-1").Output()
	if err != nil {
		t.Fatalf("pkg-config --cflags p11-kit-1 (libp11-kit-dev): %v", err)
	}
	ours := constants(t)
	if len(ours) < 200 {
		t.Fatalf("only %d constants found in consts.go", len(ours))
	}
	names := make([]string, 0, len(ours))
	for n := range ours {
		names = append(names, n)
	}
	sort.Strings(names)

	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include <p11-kit/pkcs11.h>\nint main(void) {\n")
	for _, n := range names {
		fmt.Fprintf(&src, "#ifdef %[1]s\n\tprintf(\"%[1]s %%lu\\n\", (unsigned long)(%[1]s));\n#else\n\tprintf(\"%[1]s missing\\n\");\n#endif\n", n)
	}
	src.WriteString("\treturn 0;\n}\n")
	dir := t.TempDir()
	c, exe := filepath.Join(dir, "consts.c"), filepath.Join(dir, "consts")
	if err := os.WriteFile(c, []byte(src.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(strings.Fields(string(cflags)), "-o", exe, c)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(exe).Output()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, val, _ := strings.Cut(line, " ")
		want := ours[name]
		if val == "missing" {
			if !notInHeader[name] {
				t.Errorf("%s = %#x is not in pkcs11.h", name, want)
			}
			continue
		}
		got, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if hv, ok := oasisNotHeader[name]; ok && got == hv {
			continue
		}
		if got != want {
			t.Errorf("%s = %#x here, %#x in pkcs11.h", name, want, got)
		}
		seen++
	}
	t.Logf("%d constants checked against pkcs11.h", seen)
}

// constants reads the names and values of consts.go's constants.
func constants(t *testing.T) map[string]uint64 {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "consts.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i >= len(vs.Values) {
					t.Fatalf("%s: no explicit value", n.Name)
				}
				v, ok := evalConst(vs.Values[i], out)
				if !ok {
					t.Fatalf("%s: cannot evaluate %T", n.Name, vs.Values[i])
				}
				out[n.Name] = v
			}
		}
	}
	return out
}

// evalConst evaluates the constant expressions consts.go uses: literals,
// names defined before, |, +, <<, parentheses and conversions.
func evalConst(e ast.Expr, known map[string]uint64) (uint64, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		v := constant.MakeFromLiteral(e.Value, e.Kind, 0)
		u, ok := constant.Uint64Val(v)
		return u, ok
	case *ast.Ident:
		v, ok := known[e.Name]
		return v, ok
	case *ast.ParenExpr:
		return evalConst(e.X, known)
	case *ast.CallExpr: // a conversion such as Error(x)
		if len(e.Args) == 1 {
			return evalConst(e.Args[0], known)
		}
	case *ast.BinaryExpr:
		x, ok1 := evalConst(e.X, known)
		y, ok2 := evalConst(e.Y, known)
		if !ok1 || !ok2 {
			return 0, false
		}
		switch e.Op {
		case token.OR:
			return x | y, true
		case token.ADD:
			return x + y, true
		case token.SHL:
			return x << y, true
		}
	}
	return 0, false
}
