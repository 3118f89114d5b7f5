package clients

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Blocking, from the spec: a blocked client's requests get an empty 429,
// each held for a while first to slow a flood down, but never more than
// MaxHeld at once so that holding them cannot exhaust file descriptors.
const (
	MaxBlockDelay = 25 * time.Second
	MaxHeld       = 100
)

// block is a client's current block.
type block struct {
	until   time.Time
	refused int64 // requests answered 429 during the block
	timer   *time.Timer
}

// Blocker keeps the blocks of one process.
type Blocker struct {
	log  *slog.Logger
	held atomic.Int32
	// blocked is how many clients are blocked now; refused how many
	// requests were answered 429 so far. For the metrics.
	blocked, refused atomic.Int64
}

// Stats returns how many clients are blocked now and how many requests
// have been refused for a block so far.
func (b *Blocker) Stats() (blocked, refused int64) { return b.blocked.Load(), b.refused.Load() }

// NewBlocker returns a Blocker that logs each block's end on log.
func NewBlocker(log *slog.Logger) *Blocker { return &Blocker{log: log} }

// Block refuses c's requests for d from now, or until the end of a longer
// block already in place. The count of refused requests is logged when
// the block ends, instead of a line per request.
func (b *Blocker) Block(c *Client, d time.Duration, now time.Time) {
	until := now.Add(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.block != nil {
		if until.After(c.block.until) {
			c.block.until = until
			c.block.timer.Reset(d)
		}
		return
	}
	bl := &block{until: until}
	c.block = bl
	b.blocked.Add(1)
	bl.timer = time.AfterFunc(d, func() { b.end(c, bl) })
	b.log.Warn("client blocked", "client", c.Addr.String(), "seconds", d.Seconds())
}

// end lifts bl unless it was extended meanwhile.
func (b *Blocker) end(c *Client, bl *block) {
	c.mu.Lock()
	if left := time.Until(bl.until); left > 0 {
		bl.timer.Reset(left)
		c.mu.Unlock()
		return
	}
	c.block = nil
	c.mu.Unlock()
	b.blocked.Add(-1)
	b.log.Warn("client block ended", "client", c.Addr.String(), "refused", bl.refused)
}

// Blocked reports whether c is blocked now, counting the request as
// refused, and how long to hold its answer: the rest of the block, at most
// MaxBlockDelay, or nothing when MaxHeld answers are already held. A
// caller given a non-zero delay must call Release after it.
func (b *Blocker) Blocked(c *Client, now time.Time) (delay time.Duration, blocked bool) {
	c.mu.Lock()
	bl := c.block
	if bl == nil || !now.Before(bl.until) {
		c.mu.Unlock()
		return 0, false
	}
	bl.refused++
	left := bl.until.Sub(now)
	c.mu.Unlock()
	b.refused.Add(1)
	if b.held.Add(1) > MaxHeld {
		b.held.Add(-1)
		return 0, true
	}
	return min(left, MaxBlockDelay), true
}

// Release ends the hold of an answer Blocked delayed.
func (b *Blocker) Release() { b.held.Add(-1) }
