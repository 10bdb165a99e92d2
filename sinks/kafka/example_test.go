package kafka_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/sinks/kafka" // registers kafka://
)

// What a kafka URL configures. Credentials in the URL become the SASL
// mechanism; errors never quote the password.
func ExampleParseURL() {
	c, err := kafka.ParseURL("kafka://relay:s3cret@broker1:9093,broker2:9093/trustlog.operations" +
		"?acks=all&compression=zstd&tls=true&sasl=scram-sha-512&client_id=relay-a&write_timeout=5s")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("brokers:", c.Brokers)
	fmt.Println("topic:", c.Topic)
	fmt.Println("acks all:", c.Acks == kafka.AcksAll)
	fmt.Println("compression:", c.Compression)
	fmt.Println("tls:", c.TLS != nil)
	fmt.Println("sasl:", c.SASL.Name())
	fmt.Println("client id:", c.ClientID)
	fmt.Println("write timeout:", c.WriteTimeout)

	_, err = kafka.ParseURL("kafka://relay:s3cret@broker1:9093/trustlog.operations?acks=two")
	fmt.Println(err)
	// Output:
	// brokers: [broker1:9093 broker2:9093]
	// topic: trustlog.operations
	// acks all: true
	// compression: zstd
	// tls: true
	// sasl: SCRAM-SHA-512
	// client id: relay-a
	// write timeout: 5s
	// trustlog: invalid URL: kafka URL "kafka://relay:xxxxx@broker1:9093/trustlog.operations?acks=two": acks must be all, one or none
}

// Relay to Kafka by URL: the blank import registers the scheme, and
// core.Open picks the sink from Config.Sink. It needs a broker at
// 127.0.0.1:9092 (scripts/services.sh up kafka) and the topic created
// beforehand (or auto_create=true).
func ExampleOpen() {
	ctx := context.Background()
	client, err := core.Open(ctx, core.Config{
		Store:   "sqlite:app.db",
		Sink:    "kafka://127.0.0.1:9092/trustlog.operations?acks=all&compression=zstd",
		Migrate: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	engine, err := client.Engine()
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer engine.Stop(ctx)

	if err := client.Record(ctx, &core.Operation{
		Source: core.SourceDOIP, Type: core.OpCreate,
		DOID: "10.1000/object-1", DOPrefix: "10.1000",
		Actor: "alice", ProducerID: "repo-service",
	}); err != nil {
		log.Fatal(err)
	}
	// ... the engine publishes it, keyed by the DOID.
}

// A sink built from a Config, with TLS and SCRAM credentials from the
// environment, for a client over a store the application opened.
func ExampleNew() {
	ctx := context.Background()
	mechanism, err := scram.Mechanism(scram.SHA512, "relay", os.Getenv("KAFKA_PASSWORD"))
	if err != nil {
		log.Fatal(err)
	}
	sink, err := kafka.New(kafka.Config{
		Brokers:     []string{"broker1:9093", "broker2:9093"},
		Topic:       "trustlog.operations",
		Compression: compress.Zstd,
		TLS:         &tls.Config{MinVersion: tls.VersionTLS12},
		SASL:        mechanism,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	store, err := sqlite.Open(ctx, "sqlite:app.db")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	client, err := core.NewClient(store, sink, core.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	// ... client.RecordTx in the application's transactions, and an engine.
}

// Read the topic back through Kafka's own consumer (what `trustlog
// verify-sink` does): every message since a time, in order per partition.
func ExampleSink_Replay() {
	ctx := context.Background()
	sink, err := kafka.Open("kafka://127.0.0.1:9092/trustlog.operations")
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	perObject := map[string]int{}
	err = sink.Replay(ctx, time.Now().Add(-24*time.Hour), func(d core.Delivered) error {
		op, err := core.DecodeSealed(d.Payload) // checks the op_hash
		if err != nil {
			return fmt.Errorf("%s: %w", d.Position, err)
		}
		perObject[op.DOID]++
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(perObject)
}
