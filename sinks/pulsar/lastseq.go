package pulsar

import (
	"reflect"

	pc "github.com/apache/pulsar-client-go/pulsar"
)

// brokerLastSequences returns, per partition of the topic (one entry for
// a topic without partitions), the highest sequence id the broker holds
// from p's producer name, as the broker reported it when p connected (the
// last_sequence_id of PRODUCER_SUCCESS; -1 for none), and whether it
// could be read. The broker deduplicates per partition: a re-sent id is
// dropped where it is at or below its partition's last sequence, so that
// is what says whether the broker holds a message.
//
// pulsar-client-go documents Producer.LastSequenceID as exactly this, but
// up to v0.21.0 at least it returns -1 until the first receipt of this
// producer arrives: the broker's value only seeds the producer's internal
// sequence generator (next = last + 1, set once, when it first connects).
// Reading that generator is the only way the client exposes the broker's
// value, so this reads it with reflection, right after the producer was
// created and before anything was sent through it. If a later client
// version changes the layout, ok is false and the sink gives up its
// ordered stream (every message is new to the broker: duplicates after a
// crash, never a loss); TestBrokerLastSequence fails on such an upgrade.
func brokerLastSequences(p pc.Producer) (lasts []int64, ok bool) {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	holder := v.Elem().FieldByName("producers") // atomic.Value of []Producer
	if !holder.IsValid() || holder.Kind() != reflect.Struct {
		return nil, false
	}
	parts := holder.FieldByName("v")
	if parts.IsValid() && parts.Kind() == reflect.Interface {
		parts = parts.Elem()
	}
	if !parts.IsValid() || parts.Kind() != reflect.Slice || parts.Len() == 0 {
		return nil, false
	}
	lasts = make([]int64, parts.Len()) // index i: partition i
	for i := range parts.Len() {
		pp := parts.Index(i)
		if pp.Kind() == reflect.Interface {
			pp = pp.Elem()
		}
		if pp.Kind() != reflect.Pointer || pp.IsNil() || pp.Elem().Kind() != reflect.Struct {
			return nil, false
		}
		g := pp.Elem().FieldByName("sequenceIDGenerator")
		if !g.IsValid() || g.Kind() != reflect.Pointer || g.IsNil() || g.Elem().Kind() != reflect.Uint64 {
			return nil, false
		}
		lasts[i] = int64(g.Elem().Uint()) - 1
	}
	return lasts, true
}

// partitionOf is the partition of n a message with key goes to: the hash
// pulsar-client-go's default router uses (Java's String.hashCode over the
// key's bytes, unsigned, modulo n), so keys stay where that router put
// them. The sink's producers route with it explicitly (router), so that
// the sink knows each message's partition and hence the last sequence
// that applies to it.
func partitionOf(key string, n int) int {
	if n <= 1 {
		return 0
	}
	var h uint32
	for i := 0; i < len(key); i++ {
		h = 31*h + uint32(key[i])
	}
	return int(h % uint32(n))
}

// router is the sink's producers' MessageRouter (see partitionOf).
func router(m *pc.ProducerMessage, md pc.TopicMetadata) int {
	return partitionOf(m.Key, int(md.NumPartitions()))
}

// holds reports whether lasts (per partition, see brokerLastSequences)
// say the broker holds the message with key and seq.
func holds(lasts []int64, key string, seq int64) bool {
	return len(lasts) > 0 && seq <= lasts[partitionOf(key, len(lasts))]
}
