package mysql_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
)

func TestCheckVersion(t *testing.T) {
	t.Parallel()
	for v, ok := range map[string]bool{
		"10.11.19-MariaDB-0+deb12u1": true,
		"10.6.0-MariaDB":             true,
		"11.4.2-MariaDB-log":         true,
		"10.5.27-MariaDB":            false,
		"5.5.5-10.4.13-MariaDB":      false,
		"5.5.5-10.6.5-MariaDB":       true,
		"8.0.36":                     true,
		"8.0.17":                     true,
		"8.0.16":                     false, // no NO PAD binary collation (utf8mb4_0900_bin)
		"8.0.1":                      false,
		"8.0.0-dmr":                  false,
		"8.4.0-commercial":           true,
		"5.7.44-log":                 false,
		"garbage":                    false,
	} {
		err := mysql.CheckVersion(v)
		if ok {
			assert.NoError(t, err, v)
			continue
		}
		var ve *mysql.VersionError
		require.ErrorAs(t, err, &ve, v)
		assert.Equal(t, v, ve.Found)
		assert.Contains(t, err.Error(), v, "says the version found")
		assert.Contains(t, err.Error(), ">=", "and the one needed")
	}
}

func TestOpenChecksServer(t *testing.T) {
	t.Parallel()
	url := mysqltest.NewDatabase(t)
	s, err := mysql.Open(context.Background(), url)
	require.NoError(t, err, "the local server has SKIP LOCKED")
	require.NoError(t, s.Close())
	db := mysqltest.DB(t, url)
	require.NoError(t, mysql.CheckServer(context.Background(), db))
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	cfg, opts, conns, err := mysql.ParseURL("mysql://app:p%40ss@db.internal/trust?prefix=orders_&max_conns=8&timeout=5s")
	require.NoError(t, err)
	assert.Equal(t, "orders_", opts.Prefix)
	assert.Equal(t, 8, conns)
	assert.Equal(t, "db.internal:3306", cfg.Addr)
	assert.Equal(t, "p@ss", cfg.Passwd)
	assert.True(t, cfg.ParseTime, "parseTime is the driver's business, not the user's")
	assert.True(t, cfg.ClientFoundRows)
	for _, bad := range []string{
		"mysql://host", "mysql:///db", "postgres://h/db", "mysql://h/db?prefix=Bad-Prefix",
		"mysql://h/db?max_conns=one", "mysql://u:secret@h/db?unknownflag=%zz",
	} {
		_, _, _, err := mysql.ParseURL(bad)
		require.Error(t, err, bad)
		assert.True(t, errors.Is(err, core.ErrInvalidURL), bad)
		assert.NotContains(t, err.Error(), "secret")
	}
}
