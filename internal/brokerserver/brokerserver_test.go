package brokerserver

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/go-trustlog/trustlog/internal/testenv"
)

// TestStartAgainWhenTheBrokerFails: a broker that does not come up (here
// its first process dies before it answers; a restarted Pulsar broker
// can also stay stuck loading topics, apache/pulsar#7443) is stopped and
// started again, and Start returns once the new one answers.
func TestStartAgainWhenTheBrokerFails(t *testing.T) {
	if err := Available(); err != nil {
		if testenv.Required() {
			t.Fatalf("TRUSTLOG_REQUIRE_SERVICES=1 but no private broker can start here: %v", err)
		}
		t.Skipf("no private broker here (%v): scripts/services.sh, Java and Maven are needed", err)
	}
	t.Parallel()
	s := Start(t, "kafka", func(ctx context.Context, s *Server) error {
		s.mu.Lock()
		first, pid := s.starts == 1, s.cmd.Process.Pid
		s.mu.Unlock()
		if first {
			syscall.Kill(-pid, syscall.SIGKILL)
			return errors.New("the first broker died")
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Equal(t, 2, s.starts, "started again after the first one died")
}
