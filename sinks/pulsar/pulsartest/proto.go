package pulsartest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"google.golang.org/protobuf/encoding/protowire"
)

// BaseCommand.Type values (PulsarApi.proto). In BaseCommand the field that
// carries a command's body has the same number as its type.
const (
	cmdConnect                 = 2
	cmdConnected               = 3
	cmdSubscribe               = 4
	cmdProducer                = 5
	cmdSend                    = 6
	cmdSendReceipt             = 7
	cmdSendError               = 8
	cmdMessage                 = 9
	cmdAck                     = 10
	cmdFlow                    = 11
	cmdUnsubscribe             = 12
	cmdSuccess                 = 13
	cmdError                   = 14
	cmdCloseProducer           = 15
	cmdCloseConsumer           = 16
	cmdProducerSuccess         = 17
	cmdPing                    = 18
	cmdPong                    = 19
	cmdRedeliver               = 20
	cmdPartitionedMetadata     = 21
	cmdPartitionedMetadataResp = 22
	cmdLookup                  = 23
	cmdLookupResp              = 24
	cmdConsumerStats           = 25
	cmdSeek                    = 28
	cmdGetLastMessageID        = 29
	cmdGetLastMessageIDResp    = 30
	cmdGetTopicsOfNamespace    = 32
	cmdGetTopicsOfNamespaceRsp = 33
	cmdGetSchema               = 34
	cmdAuthResponse            = 37
	cmdAckResponse             = 38
	cmdGetOrCreateSchema       = 39
	cmdGetOrCreateSchemaResp   = 40
)

// requestIDField maps commands this broker does not implement to the field
// number of their request_id, so that they can be answered with an ERROR.
var requestIDField = map[int]protowire.Number{
	cmdConsumerStats: 1,
	cmdGetSchema:     1,
	50:               1, // NEW_TXN
	52:               1, // ADD_PARTITION_TO_TXN
	54:               1, // ADD_SUBSCRIPTION_TO_TXN
	56:               1, // END_TXN
	58:               1, // END_TXN_ON_PARTITION
	60:               1, // END_TXN_ON_SUBSCRIPTION
	62:               1, // TC_CLIENT_CONNECT_REQUEST
	64:               1, // WATCH_TOPIC_LIST
	67:               1, // WATCH_TOPIC_LIST_CLOSE
}

// ServerError values.
const (
	errUnknown             = 0
	errMetadata            = 1
	errPersistence         = 2
	errConsumerBusy        = 5
	errChecksum            = 9
	errTopicNotFound       = 11
	errProducerBusy        = 16
	errConsumerNotFound    = 13
	errInvalidTopicName    = 17
	errNotAllowed          = 22
	protocolVersion        = 20 // highest protocol version advertised
	magicCrc32c            = 0x0e01
	defaultMaxMessageSize  = 5 * 1024 * 1024
	frameHeadroom          = 10 * 1024
	noRequestID            = ^uint64(0) // request_id used on broker-initiated commands
	negativeOne            = ^uint64(0) // -1 as an unsigned ledger or entry id
	lookupConnect          = 1          // CommandLookupTopicResponse.LookupType.Connect
	lookupFailed           = 2          // CommandLookupTopicResponse.LookupType.Failed
	partitionedMetaSuccess = 0
	partitionedMetaFailed  = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// field is one decoded protobuf field.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64 // varint and fixed values
	b   []byte // length-delimited values
}

// pbmsg is a decoded protobuf message: its fields in wire order.
type pbmsg []field

func decodePB(b []byte) (pbmsg, error) {
	var m pbmsg
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u = uint64(v)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		m = append(m, f)
	}
	return m, nil
}

// last returns the last occurrence of field num (protobuf's "last one wins").
func (m pbmsg) last(num protowire.Number) (field, bool) {
	for i := len(m) - 1; i >= 0; i-- {
		if m[i].num == num {
			return m[i], true
		}
	}
	return field{}, false
}

func (m pbmsg) has(num protowire.Number) bool {
	_, ok := m.last(num)
	return ok
}

func (m pbmsg) uint(num protowire.Number) (uint64, bool) {
	f, ok := m.last(num)
	if !ok || f.typ != protowire.VarintType {
		return 0, false
	}
	return f.u, true
}

func (m pbmsg) u64(num protowire.Number) uint64 {
	v, _ := m.uint(num)
	return v
}

func (m pbmsg) boolean(num protowire.Number) bool {
	return m.u64(num) != 0
}

func (m pbmsg) str(num protowire.Number) string {
	f, ok := m.last(num)
	if !ok || f.typ != protowire.BytesType {
		return ""
	}
	return string(f.b)
}

func (m pbmsg) raw(num protowire.Number) ([]byte, bool) {
	f, ok := m.last(num)
	if !ok || f.typ != protowire.BytesType {
		return nil, false
	}
	return f.b, true
}

func (m pbmsg) sub(num protowire.Number) (pbmsg, bool) {
	b, ok := m.raw(num)
	if !ok {
		return nil, false
	}
	s, err := decodePB(b)
	if err != nil {
		return nil, false
	}
	return s, true
}

func (m pbmsg) subs(num protowire.Number) []pbmsg {
	var out []pbmsg
	for _, f := range m {
		if f.num == num && f.typ == protowire.BytesType {
			if s, err := decodePB(f.b); err == nil {
				out = append(out, s)
			}
		}
	}
	return out
}

// varints returns a repeated varint field, packed or not.
func (m pbmsg) varints(num protowire.Number) []uint64 {
	var out []uint64
	for _, f := range m {
		if f.num != num {
			continue
		}
		switch f.typ {
		case protowire.VarintType:
			out = append(out, f.u)
		case protowire.BytesType:
			b := f.b
			for len(b) > 0 {
				v, n := protowire.ConsumeVarint(b)
				if n < 0 {
					break
				}
				out = append(out, v)
				b = b[n:]
			}
		}
	}
	return out
}

// keyValues decodes a repeated KeyValue field into a map (nil when absent).
func (m pbmsg) keyValues(num protowire.Number) map[string]string {
	var out map[string]string
	for _, kv := range m.subs(num) {
		if out == nil {
			out = map[string]string{}
		}
		out[kv.str(1)] = kv.str(2)
	}
	return out
}

// pb is a protobuf encoder.
type pb []byte

func (p *pb) varint(num protowire.Number, v uint64) {
	*p = protowire.AppendTag(*p, num, protowire.VarintType)
	*p = protowire.AppendVarint(*p, v)
}

func (p *pb) int32(num protowire.Number, v int32) { p.varint(num, uint64(int64(v))) }

func (p *pb) boolean(num protowire.Number, v bool) {
	var u uint64
	if v {
		u = 1
	}
	p.varint(num, u)
}

func (p *pb) bytes(num protowire.Number, b []byte) {
	*p = protowire.AppendTag(*p, num, protowire.BytesType)
	*p = protowire.AppendBytes(*p, b)
}

func (p *pb) str(num protowire.Number, s string) {
	*p = protowire.AppendTag(*p, num, protowire.BytesType)
	*p = protowire.AppendString(*p, s)
}

// msgID encodes a MessageIdData. partition < 0 and batchIndex < 0 are left
// out (their proto default is -1).
func msgID(ledger, entry uint64, partition, batchIndex int32) pb {
	var p pb
	p.varint(1, ledger)
	p.varint(2, entry)
	if partition >= 0 {
		p.int32(3, partition)
	}
	if batchIndex >= 0 {
		p.int32(4, batchIndex)
	}
	return p
}

// frame builds a complete frame: [totalSize][cmdSize][BaseCommand] followed
// by the optional payload part (magic, checksum, metadata, payload).
func frame(typ int, body pb, payload []byte) []byte {
	var cmd pb
	cmd.varint(1, uint64(typ))
	cmd.bytes(protowire.Number(typ), body)
	out := make([]byte, 8, 8+len(cmd)+len(payload))
	binary.BigEndian.PutUint32(out[0:4], uint32(4+len(cmd)+len(payload)))
	binary.BigEndian.PutUint32(out[4:8], uint32(len(cmd)))
	out = append(out, cmd...)
	return append(out, payload...)
}

// parseCommand decodes a BaseCommand into its type and its body.
func parseCommand(b []byte) (int, pbmsg, error) {
	m, err := decodePB(b)
	if err != nil {
		return 0, nil, err
	}
	t, ok := m.uint(1)
	if !ok {
		return 0, nil, errors.New("BaseCommand without type")
	}
	typ := int(t)
	if typ <= 1 || uint64(typ) != t {
		return 0, nil, fmt.Errorf("bad command type %d", t)
	}
	body, _ := m.sub(protowire.Number(typ))
	return typ, body, nil
}

// wrapPayload builds the payload part of a frame:
// [magic][crc32c][metadataSize][metadata][payload].
func wrapPayload(meta, payload []byte) []byte {
	out := make([]byte, 10, 10+len(meta)+len(payload))
	binary.BigEndian.PutUint16(out[0:2], magicCrc32c)
	binary.BigEndian.PutUint32(out[6:10], uint32(len(meta)))
	out = append(out, meta...)
	out = append(out, payload...)
	binary.BigEndian.PutUint32(out[2:6], crc32.Checksum(out[6:], crcTable))
	return out
}

// unwrapPayload checks the magic number and CRC32C of a payload part and
// splits it into metadata and payload.
func unwrapPayload(b []byte) (meta, payload []byte, err error) {
	if len(b) < 10 {
		return nil, nil, errors.New("payload too short")
	}
	if binary.BigEndian.Uint16(b[0:2]) != magicCrc32c {
		return nil, nil, errors.New("missing crc32c magic number")
	}
	want := binary.BigEndian.Uint32(b[2:6])
	if got := crc32.Checksum(b[6:], crcTable); got != want {
		return nil, nil, fmt.Errorf("checksum mismatch: frame says %#08x, computed %#08x", want, got)
	}
	size := binary.BigEndian.Uint32(b[6:10])
	if uint64(size) > uint64(len(b)-10) {
		return nil, nil, errors.New("metadata size exceeds frame")
	}
	return b[10 : 10+size], b[10+size:], nil
}
