package trustlog_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/matrix"

	// Every driver of this repository, registered as the CLI registers
	// them: each runs its row of the matrix in its own package
	// (drivers/<name>/conformance_test.go calls matrix.Run).
	_ "github.com/go-trustlog/trustlog/drivers/mysql"
	_ "github.com/go-trustlog/trustlog/drivers/postgres"
	_ "github.com/go-trustlog/trustlog/drivers/sqlite"
)

// drivers are the drivers whose package runs matrix.Run; aliases are
// extra schemes of a registered driver or sink.
var (
	drivers = map[string]bool{"sqlite": true, "postgres": true, "mysql": true}
	aliases = map[string]bool{"file": true, "postgresql": true, "mariadb": true, "pulsar+ssl": true}
)

// TestMatrixCoversRegistry: every registered driver runs the conformance
// matrix, and every registered sink has a harness in it.
func TestMatrixCoversRegistry(t *testing.T) {
	for _, d := range core.Drivers() {
		if !drivers[d] && !aliases[d] {
			t.Errorf("driver %q is registered but runs no conformance matrix (add drivers/%s/conformance_test.go calling matrix.Run)", d, d)
		}
	}
	for d := range drivers {
		src, err := os.ReadFile(filepath.Join("drivers", d, "conformance_test.go"))
		if err != nil || !strings.Contains(string(src), "matrix.Run(") {
			t.Errorf("drivers/%s/conformance_test.go does not call matrix.Run (%v)", d, err)
		}
	}
	for _, s := range core.Sinks() {
		if h, ok := matrix.Schemes[s]; !ok || matrix.Sinks[h] == nil {
			t.Errorf("sink %q is registered but has no harness in internal/matrix", s)
		}
	}
	if len(core.Drivers()) == 0 || len(core.Sinks()) == 0 {
		t.Fatal("no driver or sink registered: the imports above register them")
	}
}
