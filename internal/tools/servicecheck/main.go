// Command servicecheck proves that a broker started by scripts/services.sh
// answers as the tests need it to: a topic created, a message produced and
// the same message consumed back, through the client libraries trustlog
// itself uses. For Pulsar it also checks that the broker deduplicates (a
// second message under the same producer name and sequence id, from a new
// producer, is dropped).
//
//	go run ./internal/tools/servicecheck kafka 127.0.0.1:9092
//	go run ./internal/tools/servicecheck pulsar pulsar://127.0.0.1:6650 http://127.0.0.1:8080
//
// It exits 0 when the round trip succeeds, 1 with the reason otherwise.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"
	pclog "github.com/apache/pulsar-client-go/pulsar/log"
	kgo "github.com/segmentio/kafka-go"

	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: servicecheck kafka ADDR | pulsar SERVICE_URL ADMIN_URL")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	switch os.Args[1] {
	case "kafka":
		err = checkKafka(ctx, os.Args[2])
	case "pulsar":
		err = checkPulsar(ctx, os.Args[2])
	default:
		err = fmt.Errorf("unknown service %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "servicecheck %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func token() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func checkKafka(ctx context.Context, addr string) error {
	topic := "trustlog-servicecheck-" + token()
	if err := kafkatest.CreateTopic(ctx, addr, topic, 1); err != nil {
		return err
	}
	defer func() {
		if c, err := kgo.DialContext(context.Background(), "tcp", addr); err == nil {
			c.DeleteTopics(topic)
			c.Close()
		}
	}()
	w := &kgo.Writer{Addr: kgo.TCP(addr), Topic: topic, RequiredAcks: kgo.RequireAll}
	defer w.Close()
	want := "round trip " + token()
	if err := w.WriteMessages(ctx, kgo.Message{Value: []byte(want)}); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	r := kgo.NewReader(kgo.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	if string(m.Value) != want {
		return fmt.Errorf("consumed %q, produced %q", m.Value, want)
	}
	return nil
}

func checkPulsar(ctx context.Context, serviceURL string) error {
	client, err := pc.NewClient(pc.ClientOptions{
		URL: serviceURL, OperationTimeout: 30 * time.Second,
		Logger: pclog.NewLoggerWithSlog(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		return err
	}
	defer client.Close()
	topic := "persistent://public/default/trustlog-servicecheck-" + token()
	name := "servicecheck-" + token()
	// The reader first, from the earliest message, so nothing is missed.
	reader, err := client.CreateReader(pc.ReaderOptions{Topic: topic, StartMessageID: pc.EarliestMessageID()})
	if err != nil {
		return fmt.Errorf("reader: %w", err)
	}
	defer reader.Close()
	send := func(seq int64, payload string) error {
		p, err := client.CreateProducer(pc.ProducerOptions{Topic: topic, Name: name, DisableBatching: true})
		if err != nil {
			return fmt.Errorf("producer: %w", err)
		}
		defer p.Close()
		_, err = p.Send(ctx, &pc.ProducerMessage{Payload: []byte(payload), SequenceID: &seq})
		return err
	}
	if err := send(1, "first"); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	// The same producer name and sequence id again: a deduplicating broker
	// drops it; then a higher id, which it keeps.
	if err := send(1, "copy"); err != nil {
		return fmt.Errorf("produce the copy: %w", err)
	}
	if err := send(2, "second"); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	var got []string
	for len(got) < 2 {
		m, err := reader.Next(ctx)
		if err != nil {
			return fmt.Errorf("consume (have %q): %w", got, err)
		}
		got = append(got, string(m.Payload()))
	}
	if got[0] != "first" || got[1] != "second" {
		if got[1] == "copy" {
			return errors.New("the broker does not deduplicate: a message with a sequence id it already holds from the producer name was stored (brokerDeduplicationEnabled)")
		}
		return fmt.Errorf("consumed %q, want [first second]", got)
	}
	return nil
}
