package memstore

import (
	"context"
)

// subscription is one Subscribe call's channel.
type subscription struct {
	holder *Store
	ch     chan struct{}
	done   chan struct{} // closed when the subscription ends
}

// Subscribe implements core.Notifier: the channel receives a value
// (coalesced: capacity one, never blocking the writer) after every commit
// of inserts and every Append on this store, through any handle. It is
// closed when ctx ends or this handle is closed.
func (s *Store) Subscribe(ctx context.Context) (<-chan struct{}, error) {
	d, _, err := s.lock(ctx, false)
	if err != nil {
		return nil, err
	}
	sub := &subscription{holder: s, ch: make(chan struct{}, 1), done: make(chan struct{})}
	d.subs[sub] = struct{}{}
	d.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			d.unsubscribe(sub)
			d.mu.Unlock()
		case <-sub.done:
		}
	}()
	return sub.ch, nil
}

// unsubscribe ends sub once. d.mu is held, so notify never sends on a
// closed channel.
func (d *data) unsubscribe(sub *subscription) {
	if _, ok := d.subs[sub]; !ok {
		return
	}
	delete(d.subs, sub)
	close(sub.ch)
	close(sub.done)
}

// notify wakes every subscriber. d.mu is held.
func (d *data) notify() {
	for sub := range d.subs {
		select {
		case sub.ch <- struct{}{}:
		default: // a wake-up is already waiting
		}
	}
}
