package pulsartest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// handle processes one command from c. A returned error closes c.
func (b *Broker) handle(c *conn, typ int, cmd pbmsg, payload []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error handling command %d: %v", typ, r)
		}
	}()
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed {
		return errors.New("connection closed")
	}
	if !c.connected {
		if typ != cmdConnect {
			return fmt.Errorf("expected CONNECT, got command %d", typ)
		}
		b.onConnect(c, cmd)
		return nil
	}
	switch typ {
	case cmdPing:
		c.send(frame(cmdPong, nil, nil))
	case cmdPong, cmdAuthResponse:
	case cmdPartitionedMetadata:
		b.onPartitionedMetadata(c, cmd)
	case cmdLookup:
		b.onLookup(c, cmd)
	case cmdProducer:
		b.onProducer(c, cmd)
	case cmdSend:
		b.onSend(c, cmd, payload)
	case cmdCloseProducer:
		if p := c.producers[cmd.u64(1)]; p != nil {
			removeProducerLocked(p)
		}
		c.success(cmd.u64(2))
	case cmdSubscribe:
		b.onSubscribe(c, cmd)
	case cmdFlow:
		if cons := c.consumers[cmd.u64(1)]; cons != nil {
			cons.permits += int64(uint32(cmd.u64(2)))
			b.dispatchLocked(cons.sub)
		}
	case cmdAck:
		b.onAck(c, cmd)
	case cmdRedeliver:
		b.onRedeliver(c, cmd)
	case cmdCloseConsumer:
		if cons := c.consumers[cmd.u64(1)]; cons != nil {
			b.removeConsumerLocked(cons)
		}
		c.success(cmd.u64(2))
	case cmdUnsubscribe:
		b.onUnsubscribe(c, cmd)
	case cmdGetLastMessageID:
		b.onGetLastMessageID(c, cmd)
	case cmdSeek:
		b.onSeek(c, cmd)
	case cmdGetTopicsOfNamespace:
		b.onGetTopicsOfNamespace(c, cmd)
	case cmdGetOrCreateSchema:
		// No schema registry: accept any schema, without a schema version.
		var body pb
		body.varint(1, cmd.u64(1))
		c.send(frame(cmdGetOrCreateSchemaResp, body, nil))
	default:
		if f, ok := requestIDField[typ]; ok {
			b.logf("connection %d: command %d not supported", c.id, typ)
			c.error(cmd.u64(f), errNotAllowed, fmt.Sprintf("pulsartest does not support command type %d", typ))
		} else {
			b.logf("connection %d: ignoring unknown command %d", c.id, typ)
		}
	}
	return nil
}

func (c *conn) success(requestID uint64) {
	var body pb
	body.varint(1, requestID)
	c.send(frame(cmdSuccess, body, nil))
}

func (c *conn) error(requestID uint64, code uint64, msg string) {
	var body pb
	body.varint(1, requestID)
	body.varint(2, code)
	body.str(3, msg)
	c.send(frame(cmdError, body, nil))
}

func (b *Broker) onConnect(c *conn, cmd pbmsg) {
	version := int32(cmd.u64(4))
	if version > protocolVersion || version < 0 {
		version = protocolVersion
	}
	var body pb
	body.str(1, "pulsartest")
	body.int32(2, version)
	body.int32(3, int32(b.cfg.maxMessageSize))
	c.connected = true
	c.send(frame(cmdConnected, body, nil))
}

// topicFor validates a topic name sent by a client for producing to or
// consuming from; it answers the request with ERROR when it is unusable.
func (b *Broker) topicFor(c *conn, requestID uint64, name string) (string, bool) {
	full, err := normalizeTopic(name)
	if err != nil {
		c.error(requestID, errInvalidTopicName, err.Error())
		return "", false
	}
	if _, ok := b.partitioned[full]; ok {
		c.error(requestID, errNotAllowed, full+" is a partitioned topic: use its partitions")
		return "", false
	}
	return full, true
}

func (b *Broker) onPartitionedMetadata(c *conn, cmd pbmsg) {
	reqID := cmd.u64(2)
	var body pb
	full, err := normalizeTopic(cmd.str(1))
	if err != nil {
		body.varint(2, reqID)
		body.varint(3, partitionedMetaFailed)
		body.varint(4, errInvalidTopicName)
		body.str(5, err.Error())
	} else {
		body.varint(1, uint64(b.partitioned[full]))
		body.varint(2, reqID)
		body.varint(3, partitionedMetaSuccess)
	}
	c.send(frame(cmdPartitionedMetadataResp, body, nil))
}

func (b *Broker) onLookup(c *conn, cmd pbmsg) {
	reqID := cmd.u64(2)
	var body pb
	if _, err := normalizeTopic(cmd.str(1)); err != nil {
		body.varint(3, lookupFailed)
		body.varint(4, reqID)
		body.varint(6, errInvalidTopicName)
		body.str(7, err.Error())
	} else {
		body.str(1, b.URL())
		body.varint(3, lookupConnect)
		body.varint(4, reqID)
		body.boolean(5, true)
	}
	c.send(frame(cmdLookupResp, body, nil))
}

func (b *Broker) onProducer(c *conn, cmd pbmsg) {
	pid, reqID := cmd.u64(2), cmd.u64(3)
	name, ok := b.topicFor(c, reqID, cmd.str(1))
	if !ok {
		return
	}
	if cmd.boolean(5) {
		c.error(reqID, errNotAllowed, "pulsartest does not support encryption")
		return
	}
	if cmd.u64(12) != 0 {
		c.error(reqID, errNotAllowed, "pulsartest does not support transactions")
		return
	}
	if b.refuse {
		c.error(reqID, errMetadata, "refused by RefuseProducers")
		return
	}
	t := b.topicLocked(name, true)
	pname := cmd.str(4)
	if pname == "" {
		b.nextName++
		pname = fmt.Sprintf("pulsartest-%d", b.nextName)
	}
	if held := t.named[pname]; held != nil && (held.c != c || held.id != pid) {
		// As a real broker: one producer per name and topic at a time. A
		// reconnecting producer retries until the old connection is gone.
		c.error(reqID, errProducerBusy, fmt.Sprintf("org.apache.pulsar.broker.service.BrokerServiceException$NamingException: Producer with name '%s' is already connected to topic '%s'", pname, name))
		return
	}
	p := &producer{id: pid, name: pname, t: t, c: c}
	c.producers[pid], t.named[pname] = p, p
	if sub := cmd.str(13); sub != "" && t.subs[sub] == nil {
		t.newSubscription(sub, true, uint64(len(t.entries)))
	}
	last := int64(-1)
	if v, ok := t.lastSeq[pname]; ok && b.dedup {
		last = v
	}
	var body pb
	body.varint(1, reqID)
	body.str(2, pname)
	body.varint(3, uint64(last))
	body.boolean(6, true)
	c.send(frame(cmdProducerSuccess, body, nil))
}

// sendItem is one message of a SEND.
type sendItem struct {
	seq   uint64
	key   string
	props map[string]string
	body  []byte
	raw   []byte // batches: the [size][SingleMessageMetadata][body] segment
}

var errMalformed = errors.New("malformed message")

// parseSend decodes the metadata and splits a batch into its messages. It
// returns a ServerError code with its error.
func parseSend(md pbmsg, payload []byte, seq uint64) ([]sendItem, uint64, error) {
	if v := md.u64(8); v != 0 {
		return nil, errNotAllowed, fmt.Errorf("pulsartest does not support compression (type %d)", v)
	}
	if md.has(13) || md.has(14) {
		return nil, errNotAllowed, errors.New("pulsartest does not support encryption")
	}
	if int32(md.u64(27)) > 1 || md.has(29) {
		return nil, errNotAllowed, errors.New("pulsartest does not support chunked messages")
	}
	if md.u64(22) != 0 || md.u64(23) != 0 {
		return nil, errNotAllowed, errors.New("pulsartest does not support transactions")
	}
	if v, ok := md.uint(2); ok {
		seq = v
	}
	nb, batched := md.uint(11)
	if !batched {
		return []sendItem{{seq: seq, key: md.str(6), props: md.keyValues(4), body: payload}}, 0, nil
	}
	n := int(int32(nb))
	if n < 1 || n > len(payload) {
		return nil, errUnknown, fmt.Errorf("%w: num_messages_in_batch %d for %d bytes", errMalformed, n, len(payload))
	}
	items := make([]sendItem, 0, n)
	rest := payload
	for i := 0; i < n; i++ {
		if len(rest) < 4 {
			return nil, errUnknown, fmt.Errorf("%w: batch truncated at message %d", errMalformed, i)
		}
		size := uint64(binary.BigEndian.Uint32(rest))
		if size > uint64(len(rest)-4) {
			return nil, errUnknown, fmt.Errorf("%w: batch message %d metadata truncated", errMalformed, i)
		}
		smm, err := decodePB(rest[4 : 4+size])
		if err != nil {
			return nil, errUnknown, fmt.Errorf("%w: batch message %d: %v", errMalformed, i, err)
		}
		ps := int64(int32(smm.u64(3)))
		start := 4 + int64(size)
		if ps < 0 || start+ps > int64(len(rest)) {
			return nil, errUnknown, fmt.Errorf("%w: batch message %d payload truncated", errMalformed, i)
		}
		it := sendItem{
			seq:   seq + uint64(i),
			key:   smm.str(2),
			props: smm.keyValues(1),
			body:  rest[start : start+ps],
			raw:   rest[:start+ps],
		}
		if v, ok := smm.uint(8); ok {
			it.seq = v
		}
		items = append(items, it)
		rest = rest[start+ps:]
	}
	return items, 0, nil
}

func (b *Broker) onSend(c *conn, cmd pbmsg, payload []byte) {
	pid, seq := cmd.u64(1), cmd.u64(2)
	sendError := func(code uint64, msg string) {
		b.logf("connection %d: SEND_ERROR producer %d seq %d: %s", c.id, pid, seq, msg)
		var body pb
		body.varint(1, pid)
		body.varint(2, seq)
		body.varint(3, code)
		body.str(4, msg)
		c.send(frame(cmdSendError, body, nil))
	}
	p := c.producers[pid]
	if p == nil {
		sendError(errUnknown, fmt.Sprintf("producer %d is not ready", pid))
		return
	}
	metaRaw, body, err := unwrapPayload(payload)
	if err != nil {
		sendError(errChecksum, err.Error())
		return
	}
	if cmd.boolean(7) {
		sendError(errNotAllowed, "pulsartest does not support chunked messages")
		return
	}
	if cmd.u64(4) != 0 || cmd.u64(5) != 0 || cmd.boolean(8) {
		sendError(errNotAllowed, "pulsartest does not support transactions or markers")
		return
	}
	if b.reject {
		sendError(errPersistence, "rejected by RejectSends")
		return
	}
	md, err := decodePB(metaRaw)
	if err != nil {
		sendError(errUnknown, "malformed message metadata: "+err.Error())
		return
	}
	items, code, err := parseSend(md, body, seq)
	if err != nil {
		sendError(code, err.Error())
		return
	}
	_, batched := md.uint(11)

	// As a real broker (MessageDeduplication): a SEND is one unit. It is a
	// duplicate when its highest sequence id (highest_sequence_id, or its
	// sequence_id when the client sets none, as pulsar-client-go never
	// does) is not above the last the broker holds from that producer name:
	// then nothing of it is stored, not even messages of a batch whose own
	// ids are new. Otherwise all of it is stored, messages whose own ids
	// the broker already holds included, and that id becomes the last.
	t := p.t
	last, known := t.lastSeq[p.name]
	if !known {
		last = -1
	}
	top := int64(seq)
	if h, ok := cmd.uint(6); ok {
		top = max(top, int64(h))
	}
	highest := int64(-1) // of the messages, for a batch's receipt
	for _, it := range items {
		highest = max(highest, int64(it.seq))
	}
	keep := items
	if b.dedup && top <= last {
		keep = nil
	} else {
		t.lastSeq[p.name] = top
	}

	var receipt pb
	receipt.varint(1, pid)
	receipt.varint(2, seq)
	if len(keep) == 0 {
		// A duplicate: acknowledged but not stored, message id -1:-1.
		receipt.bytes(3, msgID(negativeOne, negativeOne, -1, -1))
	} else {
		e := b.storeLocked(t, md, metaRaw, body, batched, items)
		receipt.bytes(3, msgID(t.ledger, e.id, t.partition, -1))
	}
	if batched {
		receipt.varint(4, uint64(highest))
	}
	if !b.withhold {
		if b.delay > 0 {
			c.sendAt(frame(cmdSendReceipt, receipt, nil), time.Now().Add(b.delay))
		} else {
			c.send(frame(cmdSendReceipt, receipt, nil))
		}
	}
	if len(keep) > 0 {
		for _, s := range t.subs {
			b.dispatchLocked(s)
		}
	}
}

// storeLocked appends an entry with the messages of a SEND.
func (b *Broker) storeLocked(t *topic, md pbmsg, metaRaw, body []byte, batched bool, items []sendItem) *entry {
	e := &entry{
		id:          uint64(len(t.entries)),
		batched:     batched,
		publishTime: md.u64(3),
		wire:        wrapPayload(metaRaw, body),
	}
	producerName := md.str(1)
	for i, it := range items {
		bi := int32(-1)
		if batched {
			bi = int32(i)
		}
		e.msgs = append(e.msgs, Message{
			Topic:       t.name,
			Producer:    producerName,
			SequenceID:  it.seq,
			Key:         it.key,
			Properties:  it.props,
			Payload:     it.body,
			PublishTime: time.UnixMilli(int64(e.publishTime)),
			LedgerID:    t.ledger,
			EntryID:     e.id,
			Partition:   t.partition,
			BatchIndex:  bi,
		})
	}
	t.entries = append(t.entries, e)
	return e
}

func (b *Broker) onSubscribe(c *conn, cmd pbmsg) {
	reqID, cid := cmd.u64(5), cmd.u64(4)
	name, ok := b.topicFor(c, reqID, cmd.str(1))
	if !ok {
		return
	}
	subName := cmd.str(2)
	if subName == "" {
		c.error(reqID, errNotAllowed, "empty subscription name")
		return
	}
	create := true
	if v, ok := cmd.uint(15); ok {
		create = v != 0
	}
	t := b.topicLocked(name, create)
	if t == nil {
		c.error(reqID, errTopicNotFound, "topic "+name+" does not exist")
		return
	}
	durable := true
	if v, ok := cmd.uint(8); ok {
		durable = v != 0
	}
	if old := c.consumers[cid]; old != nil { // the client re-subscribes with the same id
		b.removeConsumerLocked(old)
	}
	exclusive := cmd.u64(3) == 0
	s := t.subs[subName]
	if s != nil && len(s.consumers) > 0 && (exclusive || s.exclusive) {
		c.error(reqID, errConsumerBusy, "exclusive consumer is already connected to subscription "+subName)
		return
	}
	if s == nil {
		pos := uint64(len(t.entries)) // initial position Latest
		if start, ok := cmd.sub(9); ok && !durable {
			pos = t.position(int64(start.u64(1)), int64(start.u64(2)))
		} else if cmd.u64(13) == 1 { // Earliest
			pos = 0
		}
		s = t.newSubscription(subName, durable, pos)
	}
	cons := &consumer{id: cid, name: cmd.str(6), c: c, sub: s}
	s.exclusive = exclusive
	s.consumers = append(s.consumers, cons)
	c.consumers[cid] = cons
	c.success(reqID)
}

func (b *Broker) onAck(c *conn, cmd pbmsg) {
	cid := cmd.u64(1)
	reqID, withResponse := cmd.uint(8)
	cons := c.consumers[cid]
	if cons != nil {
		s := cons.sub
		cumulative := cmd.u64(2) == 1
		for _, mid := range cmd.subs(3) {
			if mid.u64(1) != s.t.ledger {
				continue
			}
			entryID := int64(mid.u64(2))
			if entryID < 0 {
				continue
			}
			var ackSet []uint64
			if mid.has(5) {
				ackSet = mid.varints(5)
			}
			if cumulative {
				s.ackCumulative(uint64(entryID), ackSet)
			} else {
				s.ackEntry(uint64(entryID), ackSet)
			}
		}
	}
	if withResponse {
		var body pb
		body.varint(1, cid)
		if cons == nil {
			body.varint(4, errConsumerNotFound)
			body.str(5, fmt.Sprintf("consumer %d not found", cid))
		}
		body.varint(6, reqID)
		c.send(frame(cmdAckResponse, body, nil))
	}
}

func (b *Broker) onRedeliver(c *conn, cmd pbmsg) {
	cons := c.consumers[cmd.u64(1)]
	if cons == nil {
		return
	}
	s := cons.sub
	var ids map[uint64]bool
	if mids := cmd.subs(2); len(mids) > 0 {
		ids = map[uint64]bool{}
		for _, mid := range mids {
			if mid.u64(1) == s.t.ledger {
				ids[mid.u64(2)] = true
			}
		}
	}
	s.requeue(cons, ids)
	b.dispatchLocked(s)
}

func (b *Broker) onUnsubscribe(c *conn, cmd pbmsg) {
	cid, reqID := cmd.u64(1), cmd.u64(2)
	cons := c.consumers[cid]
	if cons == nil {
		c.error(reqID, errConsumerNotFound, fmt.Sprintf("consumer %d not found", cid))
		return
	}
	s := cons.sub
	if len(s.consumers) > 1 && !cmd.boolean(3) {
		c.error(reqID, errConsumerBusy, "other consumers are connected to subscription "+s.name)
		return
	}
	b.detachAllLocked(s, cons)
	if s.t.subs[s.name] == s {
		delete(s.t.subs, s.name)
	}
	c.success(reqID)
}

func (b *Broker) onGetLastMessageID(c *conn, cmd pbmsg) {
	cid, reqID := cmd.u64(1), cmd.u64(2)
	cons := c.consumers[cid]
	if cons == nil {
		c.error(reqID, errConsumerNotFound, fmt.Sprintf("consumer %d not found", cid))
		return
	}
	s := cons.sub
	t := s.t
	last := msgID(t.ledger, negativeOne, t.partition, -1)
	if n := len(t.entries); n > 0 {
		e := t.entries[n-1]
		bi := int32(-1)
		if e.batched {
			bi = int32(len(e.msgs) - 1)
		}
		last = msgID(t.ledger, e.id, t.partition, bi)
	}
	var body pb
	body.bytes(1, last)
	body.varint(2, reqID)
	body.bytes(3, msgID(t.ledger, s.ackedBelow-1, t.partition, -1))
	c.send(frame(cmdGetLastMessageIDResp, body, nil))
}

func (b *Broker) onSeek(c *conn, cmd pbmsg) {
	cid, reqID := cmd.u64(1), cmd.u64(2)
	cons := c.consumers[cid]
	if cons == nil {
		c.error(reqID, errConsumerNotFound, fmt.Sprintf("consumer %d not found", cid))
		return
	}
	s := cons.sub
	t := s.t
	var pos uint64
	if mid, ok := cmd.sub(3); ok {
		pos = t.position(int64(mid.u64(1)), int64(mid.u64(2)))
	} else if ts, ok := cmd.uint(4); ok {
		pos = uint64(len(t.entries))
		for _, e := range t.entries {
			if e.publishTime >= ts {
				pos = e.id
				break
			}
		}
	} else {
		c.error(reqID, errNotAllowed, "SEEK needs a message id or a publish time")
		return
	}
	// Like Pulsar: reset the cursor, disconnect the consumers (they
	// re-subscribe), then answer.
	s.reset(pos)
	b.detachAllLocked(s, nil)
	if !s.durable && t.subs[s.name] == s {
		delete(t.subs, s.name)
	}
	c.success(reqID)
}

func (b *Broker) onGetTopicsOfNamespace(c *conn, cmd pbmsg) {
	var topics []string
	if cmd.u64(3) != 1 { // not NON_PERSISTENT only
		topics = b.namespaceTopicsLocked(cmd.str(2))
	}
	var body pb
	body.varint(1, cmd.u64(1))
	for _, name := range topics {
		body.str(2, name)
	}
	body.boolean(3, false)
	body.boolean(5, true)
	c.send(frame(cmdGetTopicsOfNamespaceRsp, body, nil))
}
