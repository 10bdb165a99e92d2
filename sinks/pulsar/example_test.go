package pulsar_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/sinks/pulsar" // registers pulsar:// and pulsar+ssl://
)

// What a pulsar URL configures: the service URL, the full topic name after
// it, and options. Errors never quote the token.
func ExampleParseURL() {
	c, err := pulsar.ParseURL("pulsar+ssl://broker:6651/persistent://acme/audit/ops" +
		"?producer_name=relay-a&batching=false&send_timeout=30s&token=eyJhbGciOi&tls_trust_certs=/etc/ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("service:", c.ServiceURL)
	fmt.Println("topic:", c.Topic)
	fmt.Println("producer:", c.ProducerName)
	fmt.Println("batching:", !c.NoBatching)
	fmt.Println("send timeout:", c.SendTimeout)
	fmt.Println("token set:", c.Token != "")
	fmt.Println("trust certs:", c.TLSTrustCertsFile)

	_, err = pulsar.ParseURL("pulsar://broker:6650/persistent://acme/audit/ops?token=eyJhbGciOi&batching=maybe")
	fmt.Println(err)
	// Output:
	// service: pulsar+ssl://broker:6651
	// topic: persistent://acme/audit/ops
	// producer: relay-a
	// batching: false
	// send timeout: 30s
	// token set: true
	// trust certs: /etc/ca.pem
	// trustlog: invalid URL: pulsar URL "pulsar://broker:6650/persistent://acme/audit/ops?token=xxxxx&batching=maybe": batching must be true or false
}

// Relay to Pulsar by URL: the blank import registers the scheme, and
// core.Open picks the sink from Config.Sink. It needs a broker at
// 127.0.0.1:6650 (scripts/services.sh up pulsar). Each partition of the
// log goes out through a producer named after it, with positions as
// sequence ids, so whichever relay owns a partition next sends from its
// cursor again and the broker's deduplication drops what it holds; no
// producer name needs configuring.
func ExampleOpen() {
	ctx := context.Background()
	client, err := core.Open(ctx, core.Config{
		Store:   "sqlite:app.db",
		Sink:    "pulsar://127.0.0.1:6650/persistent://public/default/trustlog",
		Migrate: true,
		Engine:  core.EngineConfig{Node: "relay-a"},
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

// A sink built from a Config (New connects at once), with a token from the
// environment, for a client over a store the application opened.
func ExampleNew() {
	ctx := context.Background()
	sink, err := pulsar.New(pulsar.Config{
		ServiceURL:        "pulsar+ssl://broker:6651",
		Topic:             "persistent://acme/audit/ops",
		Token:             os.Getenv("PULSAR_TOKEN"),
		TLSTrustCertsFile: "/etc/ca.pem",
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
	client, err := core.NewClient(store, sink, core.Config{Engine: core.EngineConfig{Node: "relay-a"}})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	// ... client.RecordTx in the application's transactions, and an engine.
}

// Read the topic back through Pulsar's own reader (what `trustlog
// verify-sink` does): every message since a time, in order per partition.
func ExampleSink_Replay() {
	ctx := context.Background()
	sink, err := pulsar.Open("pulsar://127.0.0.1:6650/persistent://public/default/trustlog")
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

// Publish the operations of one partition of the log, as a relay does:
// each message carries its stream and its position, and goes out through
// the stream's producer with the position as sequence id. Sending the
// same positions again (a new owner of the partition, from its cursor)
// stores nothing twice on a broker that deduplicates. It needs a broker
// at 127.0.0.1:6650.
func ExampleSink_Publish() {
	ctx := context.Background()
	sink, err := pulsar.Open("pulsar://127.0.0.1:6650/persistent://public/default/trustlog")
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	op := &core.Operation{
		Source: core.SourceDOIP, Type: core.OpCreate,
		DOID: "10.1000/object-1", DOPrefix: "10.1000",
		Actor: "alice", ProducerID: "repo-service",
	}
	if err := op.Seal(nil); err != nil {
		log.Fatal(err)
	}
	m, err := core.NewMessage(op, 1, 0) // store seq 1, position 0
	if err != nil {
		log.Fatal(err)
	}
	m.Stream = "example-log-p3" // the log's identity and the partition
	for range 2 {
		if err := sink.Publish(ctx, []core.Message{m})[0]; err != nil {
			log.Fatal(err) // core.Unavailable while another relay holds the stream
		}
	}
	last, err := sink.LastPosition(ctx, m.Stream)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("last position:", last) // 0: the second send was dropped
}
