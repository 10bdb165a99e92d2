// Package kafkatest starts an in-process cluster that speaks the real Kafka
// wire protocol (github.com/twmb/franz-go/pkg/kfake) for a test, so
// anyone's tests can point a trustlog Kafka sink, or any Kafka client, at a
// broker over TCP on 127.0.0.1 with no server installed.
//
//	c := kafkatest.Start(t, kfake.SeedTopics(3, "ops"))
//	sink, _ := kafka.Open(c.URL("ops"))
//
// It is also the conformance harness of the Kafka sink. Server, NeedReal
// and RealHarness do the same on a real Apache Kafka broker
// (TRUSTLOG_KAFKA_ADDR; `scripts/services.sh up kafka` starts one).
package kafkatest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/conformance"
)

// Cluster is a running test cluster with one broker. Its data lives in a
// temporary directory, so Restart brings the same topics and messages back
// on the same port, as a restarted broker would.
type Cluster struct {
	t    testing.TB
	mu   sync.Mutex
	c    *kfake.Cluster
	port int
	dir  string
	opts []kfake.Opt
}

// Start starts a cluster and stops it when t ends. opts are kfake options
// (SeedTopics, BrokerConfigs, EnableSASL, …).
func Start(t testing.TB, opts ...kfake.Opt) *Cluster {
	t.Helper()
	c := &Cluster{t: t, dir: t.TempDir(), opts: opts}
	c.start(0)
	t.Cleanup(c.Stop)
	return c
}

func (c *Cluster) start(port int) {
	c.t.Helper()
	opts := append([]kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(c.dir), kfake.Ports(port)}, c.opts...)
	kc, err := kfake.NewCluster(opts...)
	if err != nil {
		c.t.Fatalf("kafkatest: start cluster: %v", err)
	}
	_, p, err := net.SplitHostPort(kc.ListenAddrs()[0])
	if err != nil {
		c.t.Fatal(err)
	}
	c.port, _ = strconv.Atoi(p)
	c.c = kc
}

// Addr is the broker's host:port.
func (c *Cluster) Addr() string { return "127.0.0.1:" + strconv.Itoa(c.port) }

// URL returns the sink URL of a topic, with optional "key=value"
// parameters.
func (c *Cluster) URL(topic string, params ...string) string {
	u := "kafka://" + c.Addr() + "/" + topic
	if len(params) > 0 {
		u += "?" + strings.Join(params, "&")
	}
	return u
}

// Kfake returns the running kfake cluster (for its control hooks).
func (c *Cluster) Kfake() *kfake.Cluster {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c
}

// Stop shuts the broker down: clients see connections refused until
// Restart. It is idempotent.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// Restart starts the broker again on the same port with the same data.
func (c *Cluster) Restart() {
	c.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start(c.port)
}

// Topic returns a new unique topic name.
func Topic() string {
	var b [4]byte
	rand.Read(b[:])
	return "trustlog-test-" + hex.EncodeToString(b[:])
}

// Harness returns a conformance harness: a Kafka sink on a fresh cluster
// and topic (three partitions), read back through kafka-go Readers of a
// second, independent client. RealHarness is the same on a real broker.
func Harness(t *testing.T) conformance.SinkHarness {
	topic := Topic()
	c := Start(t, kfake.SeedTopics(3, topic))
	return harness(t, c.URL(topic))
}
