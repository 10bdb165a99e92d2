package backoff

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// callSites are the functions that wait between tries, each in its file
// (from the module root). They used to hold a backoff loop of their own.
var callSites = []struct{ file, fn string }{
	{"core/engine.go", "Backoff"},     // an operation's next attempt
	{"core/publisher.go", "sinkDown"}, // a partition's pauses while the sink is unavailable
	{"core/publisher.go", "run"},      // after a failed read or batch
	{"core/publisher.go", "write"},    // after a failed cursor advance or retry settle
	{"core/sequencer.go", "lead"},     // a leading sequencer's failed rounds
	{"core/client.go", "publishNow"},  // PublishOnly
	{"internal/sqlstore/store.go", "retrying"},
	{"internal/sqlstore/migrate.go", "acquireWait"},
	{"drivers/postgres/listen.go", "listen"},
	{"ledger/sequencer.go", "lead"}, // a leading sequencer's failed rounds
}

// TestCallSitesUseThePackage: each call site takes its delays from this
// package and computes or waits out none of its own: no time.After,
// time.Sleep or timer, no doubling (x *= 2, 2*x, x<<n).
func TestCallSitesUseThePackage(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, site := range callSites {
		f, ok := files[site.file]
		if !ok {
			var err error
			f, err = parser.ParseFile(fset, filepath.Join("..", "..", filepath.FromSlash(site.file)), nil, 0)
			require.NoError(t, err)
			files[site.file] = f
		}
		var body *ast.BlockStmt
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == site.fn {
				body = fd.Body
			}
		}
		require.NotNil(t, body, "%s: no func %s", site.file, site.fn)
		uses := false
		ast.Inspect(body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok {
					uses = uses || x.Name == "backoff"
					if x.Name == "time" {
						switch n.Sel.Name {
						case "After", "Sleep", "NewTimer", "Tick", "NewTicker", "AfterFunc":
							t.Errorf("%s %s: waits with time.%s", site.file, site.fn, n.Sel.Name)
						}
					}
				}
			case *ast.AssignStmt:
				if n.Tok == token.MUL_ASSIGN || n.Tok == token.SHL_ASSIGN {
					t.Errorf("%s %s: %s: grows a delay of its own", site.file, site.fn, fset.Position(n.Pos()))
				}
			case *ast.BinaryExpr:
				two := func(e ast.Expr) bool { l, ok := e.(*ast.BasicLit); return ok && l.Value == "2" }
				if n.Op == token.SHL || n.Op == token.MUL && (two(n.X) || two(n.Y)) {
					t.Errorf("%s %s: %s: grows a delay of its own", site.file, site.fn, fset.Position(n.Pos()))
				}
			}
			return true
		})
		assert.True(t, uses, "%s %s: does not use package backoff", site.file, site.fn)
	}
}
