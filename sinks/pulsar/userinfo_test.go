package pulsar_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
)

// TestParseURLUnencodedPassword: user info whose password holds an
// unencoded / ? # or space is refused, and the error (of ParseURL, Open,
// core.OpenSink and core.OpenReplayer) quotes no part of it, where
// splitting at the first "/" would have read it as the topic.
func TestParseURLUnencodedPassword(t *testing.T) {
	t.Parallel()
	const secret = "S3cr3tPart"
	for _, raw := range []string{
		"pulsar://u:a/S3cr3tPart@127.0.0.1:1/persistent://t/ns/topic",
		"pulsar+ssl://u:a?S3cr3tPart@127.0.0.1:1/persistent://t/ns/topic",
		"pulsar://u:a#S3cr3tPart@127.0.0.1:1/persistent://t/ns/topic",
		"pulsar://u:a S3cr3tPart@127.0.0.1:1/persistent://t/ns/topic",
	} {
		_, err := pulsar.ParseURL(raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
		assert.Contains(t, err.Error(), "percent-encoded", raw)
		_, err = pulsar.Open(raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
		_, err = core.OpenSink(context.Background(), raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
		_, err = core.OpenReplayer(context.Background(), raw)
		require.ErrorIs(t, err, core.ErrInvalidURL, raw)
		assert.NotContains(t, err.Error(), secret, raw)
	}
}
