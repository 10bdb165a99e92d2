package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"

	kgo "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/produce"
	"github.com/stretchr/testify/assert"

	"github.com/go-trustlog/trustlog/core"
)

// TestClassify pins how the sink judges kafka-go's errors, built as
// kafka-go builds them: a condition of the cluster (a partition without
// a leader while the broker restarts or elects one, a topic or partition
// missing from the metadata, leadership moving, the network) is an
// outage, core.Unavailable, so the engine pauses the partition without
// spending the messages' attempts or sending them to the retry table; a
// message the broker refuses for itself is core.Permanent. A chaos run
// (broker down 30 s) found "topic partition has no leader" spending
// attempts: 2,631 operations went to the retry table.
func TestClassify(t *testing.T) {
	t.Parallel()
	produceErr := func(err error) error { return fmt.Errorf("kafka.(*Client).Produce: %w", produce.NewError(err)) }
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"no leader", produceErr(protocol.NewErrNoLeader("t", 0)), "unavailable"},
		{"no partition in the metadata", produceErr(protocol.NewErrNoPartition("t", 3)), "unavailable"},
		{"no topic in the metadata", produceErr(protocol.NewErrNoTopic("t")), "unavailable"},
		{"no topic in the response", fmt.Errorf("kafka.(*Client).Produce: %w", protocol.ErrNoTopic), "unavailable"},
		{"not the leader", kgo.NotLeaderForPartition, "unavailable"},
		{"leader not available", kgo.LeaderNotAvailable, "unavailable"},
		{"unknown topic", kgo.UnknownTopicOrPartition, "unavailable"},
		{"timeout", fmt.Errorf("write: %w", context.DeadlineExceeded), "unavailable"},
		{"too large", kgo.MessageSizeTooLarge, "permanent"},
		{"corrupt", kgo.InvalidMessage, "permanent"},
		{"other", errors.New("something else"), "refused"},
	} {
		got := classify(c.err)
		kind := "refused"
		switch {
		case core.IsUnavailable(got):
			kind = "unavailable"
		case core.IsPermanent(got):
			kind = "permanent"
		}
		assert.Equal(t, c.want, kind, "%s: %v", c.name, c.err)
		assert.ErrorIs(t, got, c.err, "%s: the cause is kept", c.name)
	}
}
