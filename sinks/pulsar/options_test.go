package pulsar_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
)

// TestParseURLStreams: max_streams and stream_idle configure the stream
// producers; bad values are refused.
func TestParseURLStreams(t *testing.T) {
	t.Parallel()
	c, err := pulsar.ParseURL("pulsar://b:6650/persistent://t/ns/ops?max_streams=16&stream_idle=2m")
	require.NoError(t, err)
	assert.Equal(t, 16, c.MaxStreams)
	assert.Equal(t, 2*time.Minute, c.StreamIdle)
	c, err = pulsar.ParseURL("pulsar://b:6650/persistent://t/ns/ops")
	require.NoError(t, err)
	assert.Zero(t, c.MaxStreams, "New applies the default")
	assert.Zero(t, c.StreamIdle)
	for _, q := range []string{"max_streams=0", "max_streams=x", "stream_idle=0s", "stream_idle=soon"} {
		_, err := pulsar.ParseURL("pulsar://b:6650/persistent://t/ns/ops?" + q)
		require.ErrorIs(t, err, core.ErrInvalidURL, q)
	}
}
