package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
)

// TestRun: both layouts give every operation the same gapless position,
// each partition reads back whole by cursor, and the figures are rates.
func TestRun(t *testing.T) {
	dsn := postgrestest.Server.Need(t)
	res, err := run(context.Background(), dsn, 3000, 256, 4)
	require.NoError(t, err)
	assert.Positive(t, res.WideSeq)
	assert.Positive(t, res.NarrowSeq)
	assert.Positive(t, res.WideRead)
	assert.Positive(t, res.NarrowRead)
	assert.Positive(t, res.Plain)
	assert.Positive(t, res.WithQueue)
}
