package pulsartest

import (
	"bufio"
	"encoding/binary"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/internal/testenv"
)

// rawConn talks the wire protocol by hand.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t *testing.T, b *Broker) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (rc *rawConn) write(raw []byte) {
	rc.t.Helper()
	_, err := rc.nc.Write(raw)
	require.NoError(rc.t, err)
}

func (rc *rawConn) read() (int, pbmsg, []byte, error) {
	_ = rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	return readFrame(rc.r, 10<<20)
}

func (rc *rawConn) expect(typ int) pbmsg {
	rc.t.Helper()
	got, cmd, _, err := rc.read()
	require.NoError(rc.t, err)
	require.Equal(rc.t, typ, got, "command type")
	return cmd
}

func (rc *rawConn) connect() {
	rc.t.Helper()
	var body pb
	body.str(1, "raw-test-client")
	body.int32(4, 20)
	rc.write(frame(cmdConnect, body, nil))
	connected := rc.expect(cmdConnected)
	require.Equal(rc.t, uint64(20), connected.u64(2))
	require.Equal(rc.t, uint64(defaultMaxMessageSize), connected.u64(3))
}

// sendFrame builds a SEND by hand; corrupt alters the checksummed bytes
// after the checksum has been computed.
func sendFrame(producerID, seq uint64, payload string, corrupt func([]byte)) []byte {
	var meta pb
	meta.str(1, "raw")
	meta.varint(2, seq)
	meta.varint(3, uint64(time.Now().UnixMilli()))
	meta.str(6, "the-key")
	part := wrapPayload(meta, []byte(payload))
	if corrupt != nil {
		corrupt(part)
	}
	var send pb
	send.varint(1, producerID)
	send.varint(2, seq)
	return frame(cmdSend, send, part)
}

func TestRawChecksumAndMalformedFrames(t *testing.T) {
	b := Start(t)
	topic := "persistent://public/default/raw"
	rc := dialRaw(t, b)
	rc.connect()

	var prod pb
	prod.str(1, topic)
	prod.varint(2, 7) // producer id
	prod.varint(3, 1) // request id
	prod.str(4, "raw")
	rc.write(frame(cmdProducer, prod, nil))
	ps := rc.expect(cmdProducerSuccess)
	require.Equal(t, uint64(1), ps.u64(1))
	require.Equal(t, "raw", ps.str(2))
	require.Equal(t, int64(-1), int64(ps.u64(3)))

	// A flipped payload bit, a wrong checksum, a missing magic number: all
	// refused with ChecksumError, nothing stored.
	for name, corrupt := range map[string]func([]byte){
		"payload bit": func(p []byte) { p[len(p)-1] ^= 0x01 },
		"checksum":    func(p []byte) { p[2] ^= 0xff },
		"magic":       func(p []byte) { p[0], p[1] = 0, 0 },
	} {
		rc.write(sendFrame(7, 0, "hello", corrupt))
		se := rc.expect(cmdSendError)
		require.Equal(t, uint64(7), se.u64(1), name)
		require.Equal(t, uint64(0), se.u64(2), name)
		require.Equal(t, uint64(errChecksum), se.u64(3), name)
		require.NotEmpty(t, se.str(4), name)
	}
	require.Empty(t, b.Messages(topic))

	// The same SEND, intact, is stored and acknowledged.
	rc.write(sendFrame(7, 0, "hello", nil))
	receipt := rc.expect(cmdSendReceipt)
	require.Equal(t, uint64(7), receipt.u64(1))
	require.Equal(t, uint64(0), receipt.u64(2))
	mid, ok := receipt.sub(3)
	require.True(t, ok)
	stored := b.Messages(topic)
	require.Len(t, stored, 1)
	require.Equal(t, "hello", string(stored[0].Payload))
	require.Equal(t, "the-key", stored[0].Key)
	require.Equal(t, "raw", stored[0].Producer)
	require.Equal(t, stored[0].LedgerID, mid.u64(1))
	require.Equal(t, stored[0].EntryID, mid.u64(2))

	// Unsupported commands with a request id get an ERROR; unknown ones are
	// ignored; the connection keeps working.
	var stats pb
	stats.varint(1, 99) // request id
	stats.varint(4, 1)  // consumer id
	rc.write(frame(cmdConsumerStats, stats, nil))
	e := rc.expect(cmdError)
	require.Equal(t, uint64(99), e.u64(1))
	require.Equal(t, uint64(errNotAllowed), e.u64(2))
	rc.write(frame(99, nil, nil))
	rc.write(frame(cmdPing, nil, nil))
	rc.expect(cmdPong)

	// A SEND for an unknown producer.
	rc.write(sendFrame(8, 0, "nobody", nil))
	require.Equal(t, uint64(errUnknown), rc.expect(cmdSendError).u64(3))

	// A batch whose size fields lie is refused too.
	var meta pb
	meta.str(1, "raw")
	meta.varint(2, 1)
	meta.varint(3, 1)
	meta.int32(11, 3) // three messages announced
	bad := []byte{0, 0, 0, 200, 1, 2, 3}
	var send pb
	send.varint(1, 7)
	send.varint(2, 1)
	rc.write(frame(cmdSend, send, wrapPayload(meta, bad)))
	require.Equal(t, uint64(errUnknown), rc.expect(cmdSendError).u64(3))
	require.Len(t, b.Messages(topic), 1)

	// Garbage closes that connection only.
	rc.write([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	_, _, _, err := rc.read()
	require.Error(t, err)

	bad2 := dialRaw(t, b)
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[0:4], 4)
	binary.BigEndian.PutUint32(hdr[4:8], 0) // empty BaseCommand: no type
	bad2.write(hdr[:])
	_, _, _, err = bad2.read()
	require.Error(t, err)

	before := dialRaw(t, b) // anything but CONNECT first
	before.write(frame(cmdPing, nil, nil))
	_, _, _, err = before.read()
	require.Error(t, err)

	// The broker is fine.
	rc2 := dialRaw(t, b)
	rc2.connect()
	rc2.write(frame(cmdPing, nil, nil))
	rc2.expect(cmdPong)
}

func TestRawBatch(t *testing.T) {
	b := Start(t)
	topic := "persistent://public/default/raw-batch"
	rc := dialRaw(t, b)
	rc.connect()
	var prod pb
	prod.str(1, topic)
	prod.varint(2, 1)
	prod.varint(3, 1)
	rc.write(frame(cmdProducer, prod, nil))
	name := rc.expect(cmdProducerSuccess).str(2)
	require.NotEmpty(t, name, "a producer name is assigned")

	var batch []byte
	for i, body := range []string{"a", "bb", ""} {
		var smm pb
		kv := pb{}
		kv.str(1, "n")
		kv.str(2, body)
		smm.bytes(1, kv)
		smm.str(2, "key-"+body)
		smm.int32(3, int32(len(body)))
		smm.varint(8, uint64(10+i))
		batch = binary.BigEndian.AppendUint32(batch, uint32(len(smm)))
		batch = append(batch, smm...)
		batch = append(batch, body...)
	}
	var meta pb
	meta.str(1, name)
	meta.varint(2, 10)
	meta.varint(3, uint64(time.Now().UnixMilli()))
	meta.int32(11, 3)
	var send pb
	send.varint(1, 1)
	send.varint(2, 10)
	send.int32(3, 3)
	rc.write(frame(cmdSend, send, wrapPayload(meta, batch)))
	receipt := rc.expect(cmdSendReceipt)
	require.Equal(t, uint64(10), receipt.u64(2))
	require.Equal(t, uint64(12), receipt.u64(4), "highest_sequence_id")

	stored := b.Messages(topic)
	require.Len(t, stored, 3)
	for i, want := range []string{"a", "bb", ""} {
		m := stored[i]
		require.Equal(t, want, string(m.Payload))
		require.Equal(t, "key-"+want, m.Key)
		require.Equal(t, map[string]string{"n": want}, m.Properties)
		require.Equal(t, uint64(10+i), m.SequenceID)
		require.Equal(t, int32(i), m.BatchIndex)
		require.Equal(t, uint64(0), m.EntryID)
	}

	// Resent whole: a duplicate, acknowledged with -1:-1.
	rc.write(frame(cmdSend, send, wrapPayload(meta, batch)))
	receipt = rc.expect(cmdSendReceipt)
	mid, _ := receipt.sub(3)
	require.Equal(t, negativeOne, mid.u64(1))
	require.Equal(t, negativeOne, mid.u64(2))
	require.Len(t, b.Messages(topic), 3)

	// Compression is refused.
	meta.varint(8, 1) // LZ4
	rc.write(frame(cmdSend, send, wrapPayload(meta, batch)))
	require.Equal(t, uint64(errNotAllowed), rc.expect(cmdSendError).u64(3))
}

func brokerGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "pulsartest.(*conn).") || strings.Contains(g, "pulsartest.(*Broker).acceptLoop") {
			out = append(out, g)
		}
	}
	return out
}

func TestLifecycle(t *testing.T) {
	b, err := New()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(b.Addr(), "127.0.0.1:"))
	require.Equal(t, "pulsar://"+b.Addr(), b.URL())

	rc := dialRaw(t, b)
	rc.connect()
	var prod pb
	prod.str(1, "keep")
	prod.varint(2, 1)
	prod.varint(3, 1)
	rc.write(frame(cmdProducer, prod, nil))
	rc.expect(cmdProducerSuccess)
	rc.write(sendFrame(1, 0, "kept", nil))
	rc.expect(cmdSendReceipt)

	b.Stop()
	_, _, _, err = rc.read()
	require.Error(t, err, "Stop closes connections")
	_, err = net.Dial("tcp", b.Addr())
	require.Error(t, err, "Stop closes the listener")
	require.Len(t, b.Messages("keep"), 1, "Stop keeps the data")
	b.Stop() // twice is fine

	require.NoError(t, b.Restart())
	rc = dialRaw(t, b)
	rc.connect()
	require.Len(t, b.Messages("keep"), 1)
	require.NotEmpty(t, brokerGoroutines())

	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	require.Error(t, b.Restart())
	require.Nil(t, b.Messages("keep"))
	// Close waits for every goroutine's wg.Done, the last thing each
	// does; one may still be on the stack for an instant, returning.
	require.Eventually(t, func() bool { return len(brokerGoroutines()) == 0 }, testenv.Patience(t), time.Millisecond,
		"Close waits for every broker goroutine: %v", brokerGoroutines())

	_, err = New(WithPartitionedTopic("bad", 0))
	require.Error(t, err)
	require.Panics(t, func() { Start(t).CreatePartitionedTopic("non-persistent://public/default/x", 2) })
}
