package main

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// TestRelayWaitsForItsSink: a relay started while its broker is down does
// not exit; it retries, and relays once the broker is up. Stopped, it
// exits 0.
func TestRelayWaitsForItsSink(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := pulsartest.Start(t)
	topic := pulsartest.Topic()
	b.Stop()
	storeURL := "sqlite:" + filepath.Join(t.TempDir(), "start.db")
	code, _, errOut := cli(t, ctx, "", "--store", storeURL, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = cli(t, ctx, opLine(1, "start-1")+"\n"+opLine(2, "start-2")+"\n", "--store", storeURL, "record")
	require.Equal(t, 0, code, errOut)

	relayCtx, stop := context.WithCancel(ctx)
	type result struct {
		code   int
		errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, _, errOut := cli(t, relayCtx, "", "--store", storeURL, "--sink", b.SinkURL(topic, "operation_timeout=300ms"),
			"relay", "--poll", "20ms")
		done <- result{code, errOut}
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("the relay exited while the broker was down: %d %s", r.code, r.errOut)
	default:
	}
	require.NoError(t, b.Restart())
	require.Eventually(t, func() bool { return len(b.Messages(topic)) == 2 }, testenv.Patience(t), 20*time.Millisecond)
	stop()
	r := <-done
	assert.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, r.errOut, "relay cannot start yet; retrying")
	// pulsar-client-go's own lines about the broker it cannot reach go
	// where the relay logs, in its format (not to slog.Default()).
	assert.Contains(t, r.errOut, `"component":"pulsar-client"`)

	// A mistake in the configuration is reported at once.
	code, _, errOut = cli(t, ctx, "", "--store", storeURL, "--sink", "pulsar://127.0.0.1:1/persistent://a/b/c?no_such_option=1", "relay")
	assert.Equal(t, 2, code, errOut)
	assert.True(t, strings.Contains(errOut, "no_such_option"), errOut)
	for _, topic := range []string{"persistent:///ns/t", "persistent://a//t", "persistent://a/b/", "persistent://a/b/c/d"} {
		code, _, errOut = cli(t, ctx, "", "--store", storeURL, "--sink", "pulsar://127.0.0.1:1/"+topic, "relay")
		assert.Equal(t, 2, code, "%s: %s", topic, errOut)
		assert.Contains(t, errOut, "topic", topic)
	}
}

// TestRelayRefusedByTheDatabase: a database server that refuses the
// relay's connection (no such database, wrong password) is a mistake in
// the configuration, not a server still starting: the relay reports it
// at once (exit 2) instead of waiting, and the password stays out of the
// message.
func TestRelayRefusedByTheDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, want string
		url        func(t *testing.T) string
	}{
		{"postgres no such database", "does not exist", func(t *testing.T) string {
			u, err := url.Parse(postgrestest.Server.Need(t))
			require.NoError(t, err)
			u.Path = "/trustlog_no_such_database"
			return u.String()
		}},
		{"postgres unknown option", "foo", func(t *testing.T) string {
			u, err := url.Parse(postgrestest.Server.Need(t))
			require.NoError(t, err)
			q := u.Query()
			q.Set("foo", "bar")
			u.RawQuery = q.Encode()
			return u.String()
		}},
		{"mysql unknown option", "foo", func(t *testing.T) string {
			return mysqltest.Server.Need(t) + "?foo=bar"
		}},
		{"mysql wrong password", "Access denied", func(t *testing.T) string {
			u, err := url.Parse(mysqltest.Server.Need(t))
			require.NoError(t, err)
			u.User = url.UserPassword(u.User.Username(), "wrong-secret-3141")
			return u.String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code, _, errOut := cli(t, ctx, "", "--store", tc.url(t), "--sink", "memory://", "relay")
			assert.Equal(t, 2, code, errOut)
			assert.Contains(t, errOut, "refused the connection")
			assert.Contains(t, errOut, tc.want)
			assert.NotContains(t, errOut, "relay cannot start yet")
			assert.NotContains(t, errOut, "wrong-secret-3141")
		})
	}
}
