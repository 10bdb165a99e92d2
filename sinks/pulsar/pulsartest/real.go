package pulsartest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/internal/testenv"
)

// Server is the real Apache Pulsar broker tests use besides the in-process
// one: TRUSTLOG_PULSAR_URL (default pulsar://127.0.0.1:6650) with its admin
// REST API at TRUSTLOG_PULSAR_ADMIN_URL (default http://127.0.0.1:8080),
// where `scripts/services.sh up pulsar` starts a standalone broker with
// deduplication on. Tests that need it skip when it does not answer, and
// fail instead with TRUSTLOG_REQUIRE_SERVICES=1.
var Server = &testenv.Server{
	Name:    "Apache Pulsar",
	Service: "pulsar",
	Env:     "TRUSTLOG_PULSAR_URL",
	Default: "pulsar://127.0.0.1:6650",
	Ping: func(ctx context.Context, serviceURL string) error {
		return (&Real{ServiceURL: serviceURL, Admin: AdminURL()}).Ready(ctx)
	},
}

// AdminURL is the real broker's admin REST API: TRUSTLOG_PULSAR_ADMIN_URL,
// or http://127.0.0.1:8080.
func AdminURL() string {
	if v := os.Getenv("TRUSTLOG_PULSAR_ADMIN_URL"); v != "" {
		return strings.TrimSuffix(v, "/")
	}
	return "http://127.0.0.1:8080"
}

// Real is a real Pulsar broker: its service URL and admin API.
type Real struct {
	// ServiceURL is pulsar://host:port.
	ServiceURL string
	// Admin is the admin REST API's base URL (http://host:port).
	Admin string
}

// NeedReal returns the real broker, or skips t (fails it with
// TRUSTLOG_REQUIRE_SERVICES=1) when it does not answer.
func NeedReal(t testing.TB) *Real {
	t.Helper()
	return &Real{ServiceURL: strings.TrimSuffix(Server.Need(t), "/"), Admin: AdminURL()}
}

// Ready reports whether the broker answers: its binary port accepts a
// connection, the namespace public/default exists (a standalone broker
// creates it after it starts) and the broker's health check (a write and
// a read through BookKeeper) passes.
func (r *Real) Ready(ctx context.Context) error {
	u, err := url.Parse(r.ServiceURL)
	if err != nil {
		return err
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	c.Close()
	if _, err := adminDo(ctx, r.Admin, http.MethodGet, "/admin/v2/namespaces/public/default", ""); err != nil {
		return err
	}
	_, err = adminDo(ctx, r.Admin, http.MethodGet, "/admin/v2/brokers/health", "")
	return err
}

// SinkURL returns the trustlog sink URL of topic on this broker, with
// optional "key=value" parameters.
func (r *Real) SinkURL(topic string, params ...string) string {
	u := r.ServiceURL + "/" + topic
	if len(params) > 0 {
		u += "?" + strings.Join(params, "&")
	}
	return u
}

// CreatePartitionedTopic creates a partitioned topic (a
// persistent://tenant/namespace/name) through the admin API and deletes it
// when t ends. Pulsar creates a non-partitioned topic on first use by
// itself; a partitioned one must be created first.
func (r *Real) CreatePartitionedTopic(t testing.TB, topic string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := CreatePartitionedTopic(ctx, r.Admin, topic, partitions); err != nil {
		t.Fatalf("pulsartest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		DeletePartitionedTopic(ctx, r.Admin, topic)
	})
}

// CreatePartitionedTopic creates a partitioned topic through the admin API
// at admin (http://host:port).
func CreatePartitionedTopic(ctx context.Context, admin, topic string, partitions int) error {
	path, err := topicPath(topic)
	if err != nil {
		return err
	}
	if _, err := adminDo(ctx, admin, http.MethodPut, path+"/partitions", strconv.Itoa(partitions)); err != nil {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	return nil
}

// DeletePartitionedTopic deletes a partitioned topic and its messages.
func DeletePartitionedTopic(ctx context.Context, admin, topic string) error {
	path, err := topicPath(topic)
	if err != nil {
		return err
	}
	_, err = adminDo(ctx, admin, http.MethodDelete, path+"/partitions?force=true", "")
	return err
}

// Deduplication reports whether the broker deduplicates on topic (its
// effective policy, from the admin API).
func (r *Real) Deduplication(ctx context.Context, topic string) (bool, error) {
	path, err := topicPath(topic)
	if err != nil {
		return false, err
	}
	body, err := adminDo(ctx, r.Admin, http.MethodGet, path+"/deduplicationEnabled?applied=true", "")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(body) == "true", nil
}

// topicPath turns persistent://tenant/ns/name into the admin API's path.
func topicPath(topic string) (string, error) {
	rest, ok := strings.CutPrefix(topic, "persistent://")
	if !ok || strings.Count(rest, "/") != 2 {
		return "", fmt.Errorf("pulsartest: topic %q is not persistent://tenant/namespace/name", topic)
	}
	return "/admin/v2/persistent/" + rest, nil
}

func adminDo(ctx context.Context, admin, method, path, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, admin+path, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// RealHarness is Harness on the real broker (Server): a Pulsar sink on a
// fresh topic, read back through a second client.
func RealHarness(t *testing.T) conformance.SinkHarness {
	return harness(t, NeedReal(t).ServiceURL)
}
