package sqlite_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
)

// TestUpgrade: Migrate upgrades a store of the previous release in place:
// every operation gets a position and keeps its publishing state (see
// storetest.Upgrade).
func TestUpgrade(t *testing.T) {
	t.Parallel()
	storetest.Upgrade(t, sqlitetest.URL(t))
}

// TestUpgradeInterrupted: an upgrade interrupted after the positions
// migration did its work is finished without carrying anything over
// twice.
func TestUpgradeInterrupted(t *testing.T) {
	t.Parallel()
	storetest.UpgradeInterrupted(t, sqlitetest.URL(t))
}

// TestUpgradeWithPrefix: the upgrade names every table, index and view
// with the store's prefix.
func TestUpgradeWithPrefix(t *testing.T) {
	t.Parallel()
	storetest.Upgrade(t, sqlitetest.URL(t)+"?prefix=app_")
}
