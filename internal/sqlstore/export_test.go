package sqlstore

import "io/fs"

// SetMigrations gives s other migration files (a test's migration with
// no down step, say), leaving the driver's dialect as it is.
func SetMigrations(s *Store, fsys fs.FS) {
	d := *s.d
	d.Migrations = fsys
	s.d = &d
}
