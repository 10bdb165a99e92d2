package pulsartest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// conn is one client connection. Its reader goroutine decodes frames and
// handles them under Broker.mu; everything the broker sends goes through an
// ordered outbound queue drained by its writer goroutine, so that nothing is
// ever written to the network while Broker.mu is held.
type conn struct {
	b  *Broker
	nc net.Conn
	id uint64

	// Guarded by Broker.mu.
	closed    bool
	connected bool
	producers map[uint64]*producer
	consumers map[uint64]*consumer

	outMu sync.Mutex
	out   []outFrame
	wake  chan struct{}
	done  chan struct{}
}

type outFrame struct {
	data      []byte
	notBefore time.Time
}

func newConn(b *Broker, nc net.Conn, id uint64) *conn {
	return &conn{
		b:         b,
		nc:        nc,
		id:        id,
		producers: map[uint64]*producer{},
		consumers: map[uint64]*consumer{},
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
}

// send queues a frame. It never blocks and may be called with Broker.mu held.
func (c *conn) send(data []byte) { c.sendAt(data, time.Time{}) }

// sendAt queues a frame that must not be written before notBefore.
func (c *conn) sendAt(data []byte, notBefore time.Time) {
	c.outMu.Lock()
	select {
	case <-c.done:
		c.outMu.Unlock()
		return
	default:
	}
	c.out = append(c.out, outFrame{data: data, notBefore: notBefore})
	c.outMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) writeLoop() {
	defer c.b.wg.Done()
	var buf []byte
	for {
		c.outMu.Lock()
		if len(c.out) == 0 {
			c.outMu.Unlock()
			select {
			case <-c.wake:
				continue
			case <-c.done:
				return
			}
		}
		if wait := time.Until(c.out[0].notBefore); wait > 0 {
			c.outMu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				continue
			case <-c.done:
				t.Stop()
				return
			}
		}
		// Write every frame that is due in one go.
		buf = buf[:0]
		now := time.Now()
		n := 0
		for n < len(c.out) && !c.out[n].notBefore.After(now) {
			buf = append(buf, c.out[n].data...)
			c.out[n] = outFrame{}
			n++
		}
		c.out = c.out[n:]
		c.outMu.Unlock()
		if _, err := c.nc.Write(buf); err != nil {
			c.b.closeConn(c, fmt.Sprintf("write: %v", err))
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil
		}
	}
}

func (c *conn) readLoop() {
	defer c.b.wg.Done()
	r := bufio.NewReaderSize(c.nc, 64*1024)
	maxFrame := c.b.cfg.maxMessageSize + frameHeadroom
	reason := "connection closed by client"
	defer func() { c.b.closeConn(c, reason) }()
	for {
		typ, cmd, payload, err := readFrame(r, maxFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				reason = err.Error()
			}
			return
		}
		if err := c.b.handle(c, typ, cmd, payload); err != nil {
			reason = err.Error()
			return
		}
	}
}

// readFrame reads one frame: [totalSize][commandSize][command][payload part].
func readFrame(r io.Reader, maxFrame int) (int, pbmsg, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, nil, err
	}
	total := binary.BigEndian.Uint32(hdr[:])
	if total < 4 || uint64(total) > uint64(maxFrame) {
		return 0, nil, nil, fmt.Errorf("bad frame size %d (max %d)", total, maxFrame)
	}
	buf := make([]byte, total)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, nil, err
	}
	cmdSize := binary.BigEndian.Uint32(buf[:4])
	if uint64(cmdSize) > uint64(total-4) {
		return 0, nil, nil, fmt.Errorf("bad command size %d in frame of %d bytes", cmdSize, total)
	}
	typ, cmd, err := parseCommand(buf[4 : 4+cmdSize])
	if err != nil {
		return 0, nil, nil, fmt.Errorf("malformed command: %w", err)
	}
	var payload []byte
	if rest := buf[4+cmdSize:]; len(rest) > 0 {
		payload = rest
	}
	return typ, cmd, payload, nil
}

// closeConn closes c (once) and forgets its producers and consumers.
func (b *Broker) closeConn(c *conn, reason string) {
	b.mu.Lock()
	b.closeConnLocked(c, reason)
	b.mu.Unlock()
}

func (b *Broker) closeConnLocked(c *conn, reason string) {
	if c.closed {
		return
	}
	c.closed = true
	b.logf("connection %d closed: %s", c.id, reason)
	for _, p := range c.producers {
		removeProducerLocked(p)
	}
	for _, cons := range c.consumers {
		b.removeConsumerLocked(cons)
	}
	delete(b.conns, c)
	c.outMu.Lock()
	close(c.done)
	c.out = nil
	c.outMu.Unlock()
	_ = c.nc.Close()
}
