package chaos

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// TestPulsarCrashDuplicates kills a relay (SIGKILL) after the broker stored
// its messages but before it advanced the partitions' cursors: the broker
// withholds its receipts. Either the relay comes back under the same
// node, or another relay takes the partitions over when their leases
// end; either re-sends from the cursors through the partitions' producers
// (named after the log and the partition, sequence id = position). With
// the broker's deduplication on, the topic holds each message once; with
// it off, twice.
func TestPulsarCrashDuplicates(t *testing.T) {
	for _, tc := range []struct {
		dedup    bool
		takeover bool
		copies   int
	}{{true, false, 1}, {false, false, 2}, {true, true, 1}, {false, true, 2}} {
		name := map[bool]string{true: "dedup", false: "no-dedup"}[tc.dedup] + map[bool]string{true: "/takeover", false: "/restart"}[tc.takeover]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			broker := pulsartest.Start(t, pulsartest.WithDedup(tc.dedup))
			topic := pulsartest.Topic()
			url := sqlitetest.URL(t)
			store := sqlitetest.Open(t, url)
			ops := make([]*core.Operation, 50)
			for i := range ops {
				ops[i] = conformance.NewOp("crash", i)
			}
			c, err := core.NewClient(store, nil, core.Config{Strategy: core.StoreOnly})
			require.NoError(t, err)
			require.NoError(t, c.Record(ctx, ops...))

			args := func(node string) []string {
				return []string{"--log-format", "json", "--store", url,
					"--sink", broker.SinkURL(topic, "send_timeout=30s"),
					"relay", "--node", node, "--lease", "4s", "--publish-timeout", "2s", "--poll", "20ms"}
			}
			logPath := t.TempDir() + "/relay.log"
			log, err := os.Create(logPath)
			require.NoError(t, err)
			defer log.Close()
			t.Cleanup(func() {
				if t.Failed() {
					b, _ := os.ReadFile(logPath)
					t.Logf("relay log:\n%s", b)
				}
			})
			run := func(node string) *exec.Cmd {
				cmd := exec.Command(binary, args(node)...)
				cmd.Stdout, cmd.Stderr = log, log
				require.NoError(t, cmd.Start())
				return cmd
			}

			broker.WithholdReceipts(true)
			first := run("relay-a")
			require.Eventually(t, func() bool { return len(broker.Messages(topic)) == len(ops) }, time.Minute, 10*time.Millisecond,
				"the broker stores everything the relay sent")
			first.Process.Signal(syscall.SIGKILL) // before any receipt: no cursor moved
			first.Wait()
			st, err := store.Stats(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(len(ops)), st.Counts[core.StatePending], "the crash left every operation pending")

			broker.WithholdReceipts(false)
			second := run(map[bool]string{false: "relay-a", true: "relay-b"}[tc.takeover])
			defer func() { second.Process.Signal(syscall.SIGTERM); second.Wait() }()
			require.Eventually(t, func() bool {
				st, err := store.Stats(ctx)
				return err == nil && st.Counts[core.StatePublished] == int64(len(ops))
			}, testenv.Patience(t), 20*time.Millisecond, "the restarted relay finishes the work")

			copies := map[string]int{}
			for _, m := range broker.Messages(topic) {
				copies[m.Properties[core.HeaderOpID]]++
			}
			for _, op := range ops {
				assert.Equal(t, tc.copies, copies[op.OpID], "copies of %s", op.OpID)
			}
		})
	}
}
