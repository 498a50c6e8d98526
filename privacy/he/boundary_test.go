package he_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

const module = "github.com/concord-fl/concord"

func repoRoot(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot()
	if root == "" {
		t.Fatal("go.mod not found above the test directory")
	}
	return root
}

// The coordinator must not be able to reach a secret key: package party (the only
// holder of secret-key values) must not be among the coordinator's dependencies.
func TestCoordinatorCannotReachParty(t *testing.T) {
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "coordinator")); err != nil {
		testenv.Missing(t, "coordinator package missing: %v", err)
	}
	cmd := exec.Command("go", "list", "-e", "-deps", "./coordinator/...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./coordinator/...: %v\n%s", err, stderr.String())
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list returned no dependencies")
	}
	for _, d := range deps {
		if d == module+"/privacy/he/party" || strings.HasPrefix(d, module+"/privacy/he/party/") {
			t.Fatalf("the coordinator depends on %s, which holds secret keys", d)
		}
		if strings.HasPrefix(d, module+"/site-agent") {
			t.Fatalf("the coordinator depends on %s", d)
		}
	}
}

// forbidden are the lattigo and standard-library types and functions that hold or make
// secret material. None may appear anywhere in package he or its internal packages.
var forbidden = map[string][]string{
	"rlwe":     {"SecretKey", "NewSecretKey", "KeyGenerator", "NewKeyGenerator", "Decryptor", "NewDecryptor"},
	"mhe":      {"*"},
	"mhefloat": {"*"},
	"ecdh":     {"PrivateKey"},
}

func TestHeHoldsNoSecretTypes(t *testing.T) {
	root := repoRoot(t)
	dirs := []string{filepath.Join(root, "privacy/he"), filepath.Join(root, "privacy/he/internal/core")}
	fset := token.NewFileSet()
	checked := 0
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			local := map[string]string{} // local name -> import path
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if strings.Contains(path, "/privacy/he/party") {
					t.Errorf("%s imports %s", name, path)
				}
				base := filepath.Base(path)
				if imp.Name != nil {
					base = imp.Name.Name
				}
				local[base] = path
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				id, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				path, ok := local[id.Name]
				if !ok {
					return true
				}
				for _, bad := range forbidden[filepath.Base(path)] {
					if bad == "*" || bad == sel.Sel.Name {
						t.Errorf("%s: %s uses %s.%s, secret material", fset.Position(sel.Pos()), name, path, sel.Sel.Name)
					}
				}
				return true
			})
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if strings.HasSuffix(path, "/mhe") || strings.Contains(path, "/mhe/") {
					t.Errorf("%s imports %s (multiparty secret shares)", name, path)
				}
			}
		}
	}
	if checked < 4 {
		t.Fatalf("only %d source files checked", checked)
	}
}

// Lattigo is imported by the packages under privacy/he only, so that a move to lattigo
// v6 is one folder's change.
func TestOnlyHeImportsLattigo(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return nil // another package's broken file is its own test's business
		}
		files++
		rel, _ := filepath.Rel(root, path)
		inHe := strings.HasPrefix(filepath.ToSlash(rel), "privacy/he/")
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/tuneinsight/lattigo") && !inHe {
				t.Errorf("%s imports %s; only privacy/he may", rel, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("only %d Go files scanned", files)
	}
}
