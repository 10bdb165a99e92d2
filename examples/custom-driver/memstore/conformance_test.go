package memstore_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/examples/custom-driver/memstore"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/memory/memorytest"
)

// newHarness is the conformance harness: a fresh named store per test (so
// subtests run in parallel), migrated, dropped at cleanup. Reopen opens
// another handle on the same name, as another process would connect to
// the same database; DB is the handle whose transactions Insert joins.
func newHarness(t *testing.T) conformance.StoreHarness {
	url := fresh(t, "")
	reopen := func(t *testing.T) core.Store {
		st, err := memstore.Open(testenv.Context(t), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st := open(t, url)
	return conformance.StoreHarness{Store: st, DB: st.DB(), Reopen: reopen}
}

func TestConformance(t *testing.T) {
	t.Run("store", func(t *testing.T) { conformance.RunStore(t, newHarness) })
	t.Run("pair", func(t *testing.T) { conformance.RunPair(t, newHarness, memorytest.Harness) })
}
