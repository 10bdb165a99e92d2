package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	kgo "github.com/segmentio/kafka-go"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/kafka"
)

// Server is the real Apache Kafka broker tests use besides the in-process
// one: TRUSTLOG_KAFKA_ADDR (default 127.0.0.1:9092, where
// `scripts/services.sh up kafka` starts one). Tests that need it skip when
// it does not answer, and fail instead with TRUSTLOG_REQUIRE_SERVICES=1.
var Server = &testenv.Server{
	Name:    "Apache Kafka",
	Service: "kafka",
	Env:     "TRUSTLOG_KAFKA_ADDR",
	Default: "127.0.0.1:9092",
	Ping: func(ctx context.Context, addr string) error {
		conn, err := kgo.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.ApiVersions()
		return err
	},
}

// Real is a real Kafka broker, by address.
type Real struct {
	// Addr is the broker's host:port.
	Addr string
}

// NeedReal returns the real broker, or skips t (fails it with
// TRUSTLOG_REQUIRE_SERVICES=1) when it does not answer.
func NeedReal(t testing.TB) *Real {
	t.Helper()
	return &Real{Addr: Server.Need(t)}
}

// URL returns the sink URL of a topic, with optional "key=value"
// parameters.
func (r *Real) URL(topic string, params ...string) string {
	u := "kafka://" + r.Addr + "/" + topic
	if len(params) > 0 {
		u += "?" + strings.Join(params, "&")
	}
	return u
}

// CreateTopic creates a topic with the given number of partitions (one
// replica) and waits until every partition has a leader, so the first
// write does not meet LEADER_NOT_AVAILABLE. The topic is deleted when t
// ends.
func (r *Real) CreateTopic(t testing.TB, topic string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := CreateTopic(ctx, r.Addr, topic, partitions); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		DeleteTopic(ctx, r.Addr, topic)
	})
}

// DeleteTopic deletes topic from the broker at addr.
func DeleteTopic(ctx context.Context, addr, topic string) error {
	c, err := controller(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.DeleteTopics(topic)
}

// CreateTopic creates topic on the broker at addr with the given number
// of partitions and one replica, and waits until each partition has a
// leader.
func CreateTopic(ctx context.Context, addr, topic string, partitions int) error {
	c, err := controller(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	err = c.CreateTopics(kgo.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
	if err != nil && !errors.Is(err, kgo.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for {
		ps, err := c.ReadPartitions(topic)
		led := 0
		for _, p := range ps {
			if p.Leader.ID >= 0 && p.Leader.Host != "" {
				led++
			}
		}
		if err == nil && led == partitions {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s: %d of %d partitions have a leader (%v): %w", topic, led, partitions, err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func controller(ctx context.Context, addr string) (*kgo.Conn, error) {
	conn, err := kgo.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	b, err := conn.Controller()
	if err != nil {
		return nil, err
	}
	return kgo.DialContext(ctx, "tcp", net.JoinHostPort(b.Host, fmt.Sprint(b.Port)))
}

// RealHarness is Harness on the real broker (Server): a Kafka sink on a
// fresh topic of three partitions, read back through a second client.
func RealHarness(t *testing.T) conformance.SinkHarness {
	r := NeedReal(t)
	topic := Topic()
	r.CreateTopic(t, topic, 3)
	return harness(t, r.URL(topic))
}

func harness(t *testing.T, url string) conformance.SinkHarness {
	sink, err := kafka.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	reader, err := kafka.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	return conformance.SinkHarness{Sink: sink, Read: conformance.ReadFrom(reader)}
}
