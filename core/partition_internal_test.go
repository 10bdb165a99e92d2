package core

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFairShare: the members' shares add up to the partitions, differ by
// at most one, and a member not (yet) in the list counts itself in.
func TestFairShare(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 7, 16, 1024} {
		for members := 1; members <= 20; members++ {
			list := make([]string, members)
			for i := range list {
				list[i] = fmt.Sprintf("relay-%02d", i)
			}
			total, lo, hi := 0, n, 0
			for _, m := range list {
				s := fairShare(n, list, m)
				total += s
				lo, hi = min(lo, s), max(hi, s)
			}
			assert.Equal(t, n, total, "%d partitions, %d members", n, members)
			assert.LessOrEqual(t, hi-lo, 1, "%d partitions, %d members", n, members)
		}
	}
	assert.Equal(t, 8, fairShare(16, []string{"a"}, "b"), "a member not listed yet counts itself")
}

// TestStrictRuns: runs of consecutive operations in which no DOID
// appears twice, in position order, leaving out what is held or already
// failed.
func TestStrictRuns(t *testing.T) {
	t.Parallel()
	doids := []string{"a", "b", "a", "a", "c", "b", "d"}
	recs := make([]Record, len(doids))
	for i, d := range doids {
		recs[i] = Record{Op: Operation{DOID: d}, LeafIndex: int64(i)}
	}
	res := make([]result, len(recs))
	res[6].held = true
	runs := strictRuns(recs, res)
	assert.Equal(t, [][]int{{0, 1}, {2}, {3, 4, 5}}, runs)
	last := -1
	for _, run := range runs {
		for _, i := range run {
			assert.Greater(t, i, last, "positions increase across runs")
			last = i
		}
	}
}

// TestOutageStreaks: one outage however many refusals; the streak that
// ended is reported once.
func TestOutageStreaks(t *testing.T) {
	t.Parallel()
	var o outage
	_, down := o.down()
	assert.False(t, down)
	for i := range 6 {
		assert.Equal(t, i+1, o.fail())
	}
	since, down := o.down()
	assert.True(t, down)
	assert.False(t, since.IsZero())
	assert.EqualValues(t, 1, o.count.Load(), "one outage however many refusals")
	assert.Equal(t, 6, o.ok(), "the streak that ended")
	assert.Zero(t, o.ok())
}

// TestPartitionOf is the partition function docs/message-format.md
// specifies, on fixed vectors: FNV-1a 32 of the DOID's bytes, mod n.
func TestPartitionOf(t *testing.T) {
	t.Parallel()
	assert.Equal(t, int(uint32(2166136261)%16), PartitionOf("", 16))
	// FNV-1a("a") = 0xe40c292c.
	assert.Equal(t, int(uint32(0xe40c292c)%16), PartitionOf("a", 16))
	assert.Equal(t, int(uint32(0xe40c292c)%7), PartitionOf("a", 7))
	assert.Equal(t, 0, PartitionOf("10.1000/anything", 1))
}

// TestRenewalWakesAPublisherBehindItsLease: a step that found the lease
// too short to send did nothing, and the wake that came meanwhile was
// spent on it; the renewal that extends the lease wakes the publisher, so
// it does not wait for its next poll (an hour apart in the conformance
// suite's wake tests). A renewal with nobody waiting wakes nothing.
func TestRenewalWakesAPublisherBehindItsLease(t *testing.T) {
	t.Parallel()
	e := &Engine{cfg: EngineConfig{Lease: 4 * time.Second, PublishTimeout: 2 * time.Second}, pubWake: map[int]chan struct{}{}}
	p := &publisher{e: e, part: Partition{Part: 3}}
	wake := e.publisherWake(3)
	n, err := p.step() // never taken: the lease does not cover a send
	require.NoError(t, err)
	assert.Zero(t, n)
	select {
	case <-wake:
		t.Fatal("woken before any renewal")
	default:
	}
	p.renewed(time.Now())
	select {
	case <-wake:
	default:
		t.Fatal("the renewal did not wake the publisher behind its lease")
	}
	assert.True(t, p.leaseCovers())

	wake = e.publisherWake(3)
	p.renewed(time.Now())
	select {
	case <-wake:
		t.Fatal("a renewal woke a publisher that was not behind")
	default:
	}
}
