package pulsar

import (
	"reflect"

	pc "github.com/apache/pulsar-client-go/pulsar"
)

// brokerLastSequence returns the highest sequence id the broker holds from
// p's producer name, as the broker reported it when p connected (the
// last_sequence_id of PRODUCER_SUCCESS), and whether it could be read.
//
// pulsar-client-go documents Producer.LastSequenceID as exactly this, but
// up to v0.19.0 at least it returns -1 until the first receipt of this
// producer arrives: the broker's value only seeds the producer's internal
// sequence generator (next = last + 1, set once, when it first connects).
// Reading that generator is the only way the client exposes the broker's
// value, so this reads it with reflection, right after the producer was
// created and before anything was sent through it. If a later client
// version changes the layout, ok is false and the sink gives up its
// ordered stream (every message is new to the broker: duplicates after a
// crash, never a loss); TestBrokerLastSequence fails on such an upgrade.
func brokerLastSequence(p pc.Producer) (last int64, ok bool) {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return 0, false
	}
	holder := v.Elem().FieldByName("producers") // atomic.Value of []Producer
	if !holder.IsValid() || holder.Kind() != reflect.Struct {
		return 0, false
	}
	parts := holder.FieldByName("v")
	if parts.IsValid() && parts.Kind() == reflect.Interface {
		parts = parts.Elem()
	}
	if !parts.IsValid() || parts.Kind() != reflect.Slice || parts.Len() == 0 {
		return 0, false
	}
	last = -1
	for i := range parts.Len() {
		pp := parts.Index(i)
		if pp.Kind() == reflect.Interface {
			pp = pp.Elem()
		}
		if pp.Kind() != reflect.Pointer || pp.IsNil() || pp.Elem().Kind() != reflect.Struct {
			return 0, false
		}
		g := pp.Elem().FieldByName("sequenceIDGenerator")
		if !g.IsValid() || g.Kind() != reflect.Pointer || g.IsNil() || g.Elem().Kind() != reflect.Uint64 {
			return 0, false
		}
		last = max(last, int64(g.Elem().Uint())-1)
	}
	return last, true
}
