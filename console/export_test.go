package console

import (
	"context"
	"time"
)

// SetClock makes the chart's samples and the overview read now instead
// of the wall clock.
func (c *Console) SetClock(now func() time.Time) { c.now = now }

// Sample takes one sample for the chart now.
func (c *Console) Sample(ctx context.Context) { c.sample(ctx) }
