package kafka_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/kafka"
)

// TestParseURLUnencodedPassword: a password holding an unencoded / ? # or
// space is refused, and the error (of ParseURL, Open and core.OpenSink)
// quotes no part of it, nor of the user info.
func TestParseURLUnencodedPassword(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"kafka://kuser:LeakK1:LeakK2/x@127.0.0.1:1/topic",
		"kafka://kuser:LeakK1?LeakK2@127.0.0.1:1/topic?sasl=plain",
		"kafka://kuser:LeakK1#LeakK2@127.0.0.1:1/topic?sasl=plain",
		"kafka://kuser:LeakK1 LeakK2@127.0.0.1:1/topic?sasl=plain",
		"kafka://kuser:5/LeakK1@127.0.0.1:1/topic?sasl=plain",
	} {
		_, err := kafka.ParseURL(raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		for _, part := range []string{"LeakK1", "LeakK2", "kuser"} {
			assert.NotContains(t, err.Error(), part, raw)
		}
		assert.Contains(t, err.Error(), "percent-encoded", raw)
		_, err = kafka.Open(raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), "LeakK", raw)
		_, err = core.OpenSink(context.Background(), raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), "LeakK", raw)
	}
	c, err := kafka.ParseURL("kafka://kuser:LeakK1%3ALeakK2%2Fx@127.0.0.1:1/topic?sasl=plain")
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.1:1"}, c.Brokers)
}
