package pulsartest

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
)

// Topic returns a new unique topic name.
func Topic() string {
	var b [4]byte
	rand.Read(b[:])
	return "persistent://public/default/trustlog-test-" + hex.EncodeToString(b[:])
}

// SinkURL returns the trustlog sink URL of topic on this broker, with
// optional "key=value" parameters.
func (b *Broker) SinkURL(topic string, params ...string) string {
	u := b.URL() + "/" + topic
	for i, p := range params {
		if i == 0 {
			u += "?" + p
		} else {
			u += "&" + p
		}
	}
	return u
}

// Harness returns a conformance harness: a Pulsar sink on a fresh broker
// (deduplication on) and topic, read back through a pulsar-client-go
// reader of a second, independent client.
func Harness(t *testing.T) conformance.SinkHarness {
	b := Start(t)
	topic := Topic()
	sink, err := pulsar.Open(b.SinkURL(topic, "producer_name=conformance", "send_timeout=5s"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	reader, err := pulsar.Open(b.SinkURL(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	return conformance.SinkHarness{Sink: sink, Read: conformance.ReadFrom(reader)}
}
