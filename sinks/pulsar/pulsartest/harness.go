package pulsartest

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
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
	return harness(t, Start(t).URL())
}

// ExternalHarness returns a conformance harness like Harness's, on a fresh
// topic of the Pulsar broker at serviceURL (pulsar://host:6650) instead of
// an in-process one: the same tests against a real Pulsar. The namespace
// public/default must exist; deduplication is whatever the broker has.
func ExternalHarness(serviceURL string) func(t *testing.T) conformance.SinkHarness {
	return func(t *testing.T) conformance.SinkHarness { return harness(t, strings.TrimSuffix(serviceURL, "/")) }
}

func harness(t *testing.T, serviceURL string) conformance.SinkHarness {
	topic := Topic()
	sinkURL := func(params ...string) string {
		u := serviceURL + "/" + topic
		if len(params) > 0 {
			u += "?" + strings.Join(params, "&")
		}
		return u
	}
	sink, err := pulsar.Open(sinkURL("producer_name=conformance-"+topic[len(topic)-8:], "send_timeout=5s"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	reader, err := pulsar.Open(sinkURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	return conformance.SinkHarness{Sink: sink, Read: conformance.ReadFrom(reader)}
}
