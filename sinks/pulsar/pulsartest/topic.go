package pulsartest

import (
	"slices"
	"sort"
	"strconv"
	"strings"
)

// topic is one persistent topic or one partition of a partitioned topic.
// Everything in this file is guarded by Broker.mu.
type topic struct {
	name      string
	partition int32  // partition index, -1 for a non-partitioned topic
	ledger    uint64 // the single "ledger" all entries of the topic live in
	entries   []*entry
	lastSeq   map[string]int64     // producer name -> highest sequence id stored
	named     map[string]*producer // producer name -> the producer connected under it
	subs      map[string]*subscription
}

// entry is what one SEND stored: one message, or one batch of messages.
type entry struct {
	id          uint64
	batched     bool
	publishTime uint64    // milliseconds
	wire        []byte    // payload part of MESSAGE frames: magic, crc32c, metadata, payload
	msgs        []Message // for inspection; len(msgs) >= 1
}

type producer struct {
	id   uint64
	name string
	t    *topic
	c    *conn
}

// removeProducerLocked forgets p, and frees its name for another producer.
func removeProducerLocked(p *producer) {
	delete(p.c.producers, p.id)
	if p.t.named[p.name] == p {
		delete(p.t.named, p.name)
	}
}

type consumer struct {
	id      uint64
	name    string
	c       *conn
	sub     *subscription
	permits int64
}

// subscription is a cursor over a topic's entries. Entries below ackedBelow,
// and those in acked, are acknowledged; partial holds the acknowledged batch
// indexes of partly acknowledged batches; pending maps the entries dispatched
// but not acknowledged to their consumer; redeliver is sorted.
type subscription struct {
	name         string
	t            *topic
	durable      bool
	exclusive    bool
	consumers    []*consumer
	rr           int
	ackedBelow   uint64
	acked        map[uint64]bool
	partial      map[uint64]map[int32]bool
	readPos      uint64
	pending      map[uint64]*consumer
	redeliver    []uint64
	redeliveries map[uint64]uint32
}

// topicLocked returns the topic called name (a full name), creating it when
// create is set.
func (b *Broker) topicLocked(name string, create bool) *topic {
	t := b.topics[name]
	if t != nil || !create {
		return t
	}
	part := int32(-1)
	const suffix = "-partition-"
	if i := strings.LastIndex(name, suffix); i > 0 {
		if n, ok := b.partitioned[name[:i]]; ok {
			if p, err := strconv.Atoi(name[i+len(suffix):]); err == nil && p >= 0 && p < n {
				part = int32(p)
			}
		}
	}
	t = &topic{
		name:      name,
		partition: part,
		ledger:    b.nextLedger,
		lastSeq:   map[string]int64{},
		named:     map[string]*producer{},
		subs:      map[string]*subscription{},
	}
	b.nextLedger++
	b.topics[name] = t
	return t
}

// position returns the index of the first entry at or after message id
// (ledger, entryID), both read as signed numbers as the client means them
// (-1:-1 is "earliest", MaxInt64:MaxInt64 "latest").
func (t *topic) position(ledger, entryID int64) uint64 {
	n := uint64(len(t.entries))
	switch {
	case ledger < 0 || uint64(ledger) < t.ledger || entryID < 0:
		return 0
	case uint64(ledger) > t.ledger || uint64(entryID) > n:
		return n
	default:
		return uint64(entryID)
	}
}

func (t *topic) newSubscription(name string, durable bool, pos uint64) *subscription {
	s := &subscription{
		name:         name,
		t:            t,
		durable:      durable,
		acked:        map[uint64]bool{},
		partial:      map[uint64]map[int32]bool{},
		pending:      map[uint64]*consumer{},
		redeliveries: map[uint64]uint32{},
	}
	s.reset(pos)
	t.subs[name] = s
	return s
}

// reset moves the cursor to entry pos: everything before it counts as
// acknowledged, everything from it on as not acknowledged and not dispatched.
func (s *subscription) reset(pos uint64) {
	s.ackedBelow = pos
	s.readPos = pos
	clear(s.acked)
	clear(s.partial)
	clear(s.pending)
	clear(s.redeliveries)
	s.redeliver = nil
}

func (s *subscription) isAcked(id uint64) bool { return id < s.ackedBelow || s.acked[id] }

// ackEntry acknowledges entry id. ackSet, when not nil, is the client's batch
// index bitmap in which set bits are the messages still unacknowledged.
func (s *subscription) ackEntry(id uint64, ackSet []uint64) {
	if id >= uint64(len(s.t.entries)) || s.isAcked(id) {
		return
	}
	e := s.t.entries[id]
	if ackSet != nil && e.batched {
		acked := s.partial[id]
		if acked == nil {
			acked = map[int32]bool{}
			s.partial[id] = acked
		}
		for i := range e.msgs {
			if w := i / 64; w >= len(ackSet) || ackSet[w]&(1<<(uint(i)%64)) == 0 {
				acked[int32(i)] = true
			}
		}
		if len(acked) < len(e.msgs) {
			return
		}
	}
	delete(s.partial, id)
	delete(s.pending, id)
	delete(s.redeliveries, id)
	if i, ok := slices.BinarySearch(s.redeliver, id); ok {
		s.redeliver = slices.Delete(s.redeliver, i, i+1)
	}
	s.acked[id] = true
	for s.acked[s.ackedBelow] {
		delete(s.acked, s.ackedBelow)
		s.ackedBelow++
	}
}

// ackCumulative acknowledges every entry up to id, and id itself (partly
// when ackSet is set).
func (s *subscription) ackCumulative(id uint64, ackSet []uint64) {
	n := uint64(len(s.t.entries))
	if n == 0 {
		return
	}
	if id >= n {
		id, ackSet = n-1, nil
	}
	for i := s.ackedBelow; i < id; i++ {
		s.ackEntry(i, nil)
	}
	s.ackEntry(id, ackSet)
}

func (s *subscription) addRedeliver(id uint64) {
	i, found := slices.BinarySearch(s.redeliver, id)
	if !found {
		s.redeliver = slices.Insert(s.redeliver, i, id)
	}
}

// requeue takes back the entries dispatched to cons (all of them, or only
// those in ids when it is not nil) for redelivery.
func (s *subscription) requeue(cons *consumer, ids map[uint64]bool) {
	for id, owner := range s.pending {
		if owner == cons && (ids == nil || ids[id]) {
			delete(s.pending, id)
			s.redeliveries[id]++
			s.addRedeliver(id)
		}
	}
}

// next returns the next entry to dispatch: redeliveries first, lowest first,
// then entries never dispatched.
func (s *subscription) next() *entry {
	for len(s.redeliver) > 0 {
		id := s.redeliver[0]
		s.redeliver = s.redeliver[1:]
		if !s.isAcked(id) && s.pending[id] == nil {
			return s.t.entries[id]
		}
	}
	for s.readPos < uint64(len(s.t.entries)) {
		id := s.readPos
		s.readPos++
		if !s.isAcked(id) && s.pending[id] == nil {
			return s.t.entries[id]
		}
	}
	return nil
}

// pickConsumer returns the next consumer, round robin, that has permits.
func (s *subscription) pickConsumer() *consumer {
	n := len(s.consumers)
	for i := 0; i < n; i++ {
		k := (s.rr + i) % n
		if s.consumers[k].permits > 0 {
			s.rr = (k + 1) % n
			return s.consumers[k]
		}
	}
	return nil
}

// dispatchLocked pushes entries to the subscription's consumers while they
// have permits. A batch costs as many permits as it has messages (the
// client counts permits in messages), so permits may go below zero.
func (b *Broker) dispatchLocked(s *subscription) {
	for {
		cons := s.pickConsumer()
		if cons == nil {
			return
		}
		e := s.next()
		if e == nil {
			return
		}
		s.pending[e.id] = cons
		cons.permits -= int64(len(e.msgs))
		cons.c.send(s.messageFrame(cons, e))
	}
}

func (s *subscription) messageFrame(cons *consumer, e *entry) []byte {
	var body pb
	body.varint(1, cons.id)
	body.bytes(2, msgID(s.t.ledger, e.id, s.t.partition, -1))
	if n := s.redeliveries[e.id]; n > 0 {
		body.varint(3, uint64(n))
	}
	if acked := s.partial[e.id]; len(acked) > 0 {
		// ack_set: bit i set = message i still to be delivered.
		words := make([]uint64, (len(e.msgs)+63)/64)
		for i := range e.msgs {
			if !acked[int32(i)] {
				words[i/64] |= 1 << (uint(i) % 64)
			}
		}
		for _, w := range words {
			body.varint(4, w)
		}
	}
	return frame(cmdMessage, body, e.wire)
}

// removeConsumerLocked detaches cons from its connection and subscription;
// what it had not acknowledged is redelivered to the others (or to whoever
// subscribes next). A non-durable subscription goes away with its last
// consumer.
func (b *Broker) removeConsumerLocked(cons *consumer) {
	if cons.c.consumers[cons.id] == cons {
		delete(cons.c.consumers, cons.id)
	}
	s := cons.sub
	i := slices.Index(s.consumers, cons)
	if i < 0 {
		return
	}
	s.consumers = slices.Delete(s.consumers, i, i+1)
	s.requeue(cons, nil)
	if len(s.consumers) == 0 {
		if !s.durable && s.t.subs[s.name] == s {
			delete(s.t.subs, s.name)
		}
		return
	}
	b.dispatchLocked(s)
}

// detachAllLocked disconnects every consumer of s, telling each client with
// CLOSE_CONSUMER so that it re-subscribes (used by SEEK and UNSUBSCRIBE).
func (b *Broker) detachAllLocked(s *subscription, except *consumer) {
	for _, cons := range s.consumers {
		if cons.c.consumers[cons.id] == cons {
			delete(cons.c.consumers, cons.id)
		}
		if cons != except {
			var body pb
			body.varint(1, cons.id)
			body.varint(2, noRequestID)
			cons.c.send(frame(cmdCloseConsumer, body, nil))
		}
	}
	s.consumers = nil
	clear(s.pending)
}

// namespaceTopicsLocked lists the persistent topics (partitions) of a
// namespace, including the partitions of partitioned topics.
func (b *Broker) namespaceTopicsLocked(ns string) []string {
	prefix := "persistent://" + ns + "/"
	set := map[string]bool{}
	for name := range b.topics {
		if strings.HasPrefix(name, prefix) {
			set[name] = true
		}
	}
	for name, n := range b.partitioned {
		if strings.HasPrefix(name, prefix) {
			for i := 0; i < n; i++ {
				set[partitionName(name, i)] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
