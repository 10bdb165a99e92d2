package memory_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// Publish to a sink and read back what it accepted, as a consumer would.
func ExampleNew() {
	ctx := context.Background()
	sink := memory.New(memory.Faults{})
	defer sink.Close()

	var msgs []core.Message
	for i := range 3 {
		op := &core.Operation{
			Source: core.SourceDOIP, Type: core.OpUpdate,
			DOID: "10.1000/object-1", DOPrefix: "10.1000",
			Actor: fmt.Sprintf("user-%d", i), ProducerID: "example",
		}
		if err := op.Seal(nil); err != nil { // what Record does
			log.Fatal(err)
		}
		m, err := core.NewMessage(op, int64(i+1), int64(i)) // store seq, position: what the engine sends
		if err != nil {
			log.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	for i, err := range sink.Publish(ctx, msgs) {
		fmt.Println("message", i, "error:", err)
	}
	if err := sink.WaitFor(ctx, 3); err != nil { // what an engine's test waits on
		log.Fatal(err)
	}
	fmt.Println("accepted:", sink.Len())

	// Replay is core.Replayer, the interface `trustlog verify-sink` reads
	// a sink through; a memory sink can only be replayed in the process
	// that published to it, as here.
	err := sink.Replay(ctx, time.Time{}, func(d core.Delivered) error {
		op, err := core.DecodeSealed(d.Payload)
		if err != nil {
			return err
		}
		fmt.Println(d.Position, d.Key, op.Actor, d.Headers[core.HeaderOpID] == op.OpID)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// message 0 error: <nil>
	// message 1 error: <nil>
	// message 2 error: <nil>
	// accepted: 3
	// 0 10.1000/object-1 user-0 true
	// 1 10.1000/object-1 user-1 true
	// 2 10.1000/object-1 user-2 true
}

// Faults from the URL: every second message offered fails, as the engine's
// retries would see.
func ExampleOpen() {
	ctx := context.Background()
	sink, err := memory.Open("memory://?fail_every=2")
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	var msgs []core.Message
	for i := range 4 {
		op := &core.Operation{
			Source: core.SourceDOIP, Type: core.OpUpdate,
			DOID: "10.1000/object-1", DOPrefix: "10.1000",
			Actor: fmt.Sprintf("user-%d", i), ProducerID: "example",
		}
		if err := op.Seal(nil); err != nil { // what Record does
			log.Fatal(err)
		}
		m, err := core.NewMessage(op, int64(i+1), int64(i)) // store seq, position: what the engine sends
		if err != nil {
			log.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	errs := sink.Publish(ctx, msgs)
	for i, err := range errs {
		fmt.Println("message", i, "injected:", errors.Is(err, memory.ErrInjected))
	}
	offered, calls := sink.Offered()
	fmt.Println("accepted:", sink.Len(), "offered:", offered, "calls:", calls)

	_, err = memory.Open("memory://?fail_sometimes=1")
	fmt.Println("unknown option:", errors.Is(err, core.ErrInvalidURL))
	// Output:
	// message 0 injected: false
	// message 1 injected: true
	// message 2 injected: false
	// message 3 injected: true
	// accepted: 2 offered: 4 calls: 1
	// unknown option: true
}

// Faults set in code: chosen operations fail permanently (the engine sends
// them to dead at once), and a closed sink refuses everything as
// unavailable (the engine pauses instead of spending attempts).
func ExampleSink_SetFaults() {
	ctx := context.Background()
	sink := memory.New(memory.Faults{})
	var msgs []core.Message
	for i := range 2 {
		op := &core.Operation{
			Source: core.SourceDOIP, Type: core.OpUpdate,
			DOID: "10.1000/object-1", DOPrefix: "10.1000",
			Actor: fmt.Sprintf("user-%d", i), ProducerID: "example",
		}
		if err := op.Seal(nil); err != nil { // what Record does
			log.Fatal(err)
		}
		m, err := core.NewMessage(op, int64(i+1), int64(i)) // store seq, position: what the engine sends
		if err != nil {
			log.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	sink.SetFaults(memory.Faults{FailOpIDs: []string{msgs[1].ID}, Permanent: true})

	errs := sink.Publish(ctx, msgs)
	fmt.Println("first:", errs[0])
	fmt.Println("second permanent:", core.IsPermanent(errs[1]))

	sink.Close()
	errs = sink.Publish(ctx, msgs[:1])
	fmt.Println("after close unavailable:", core.IsUnavailable(errs[0]))
	fmt.Println("kept:", sink.Len())
	// Output:
	// first: <nil>
	// second permanent: true
	// after close unavailable: true
	// kept: 1
}

// A partition's stream as two owners send it: the first sends positions
// 0-3 and goes away before its cursor moved past 2, the next sends again
// from 2 on, then a retry of position 1 comes from the retry table. With
// dedup the sink drops the re-sent positions as a Pulsar broker does;
// Positions and Messages show what a test asserts on.
func ExampleSink_SetDedup() {
	ctx := context.Background()
	sink := memory.New(memory.Faults{})
	sink.SetDedup(true)

	msg := func(pos int64, retry bool) core.Message {
		op := &core.Operation{
			Source: core.SourceDOIP, Type: core.OpUpdate,
			DOID: fmt.Sprintf("10.1000/object-%d", pos%2), DOPrefix: "10.1000",
			Actor: fmt.Sprintf("user-%d", pos), ProducerID: "example",
		}
		if err := op.Seal(nil); err != nil {
			log.Fatal(err)
		}
		m, err := core.NewMessage(op, pos+1, pos)
		if err != nil {
			log.Fatal(err)
		}
		m.Stream, m.Retry = "log-p0", retry
		return m
	}
	first := []core.Message{msg(0, false), msg(1, false), msg(2, false), msg(3, false)}
	next := []core.Message{first[2], first[3], msg(4, false)}
	retry := first[1]
	retry.Retry = true
	for _, batch := range [][]core.Message{first, next, {retry}} {
		for _, err := range sink.Publish(ctx, batch) {
			if err != nil {
				log.Fatal(err)
			}
		}
	}
	last, _ := sink.LastPosition(ctx, "log-p0")
	fmt.Println("positions:", sink.Positions("log-p0"), "last:", last, "dropped:", sink.Dropped())
	for _, m := range sink.Messages() {
		fmt.Println(m.Stream, m.Position, m.Retry)
	}
	// Output:
	// positions: [0 1 2 3 4] last: 4 dropped: 2
	// log-p0 0 false
	// log-p0 1 false
	// log-p0 2 false
	// log-p0 3 false
	// log-p0 4 false
	// log-p0 1 true
}
