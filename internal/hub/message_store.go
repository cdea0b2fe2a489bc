package hub

import "context"

// MessageStore keeps the bounded log of device-to-cloud messages: one
// sequence per hub, newest last.
type MessageStore interface {
	// AppendMessage adds m (its Seq is ignored) with the next sequence
	// number, greater than every number given before, and drops the oldest
	// messages so that at most keep (at least 1) remain.
	AppendMessage(ctx context.Context, m Message, keep int) error
	// Messages lists up to limit messages whose sequence number is greater
	// than afterSeq, oldest first. A reader follows the log by passing the
	// last Seq it saw; messages dropped meanwhile are skipped silently.
	Messages(ctx context.Context, afterSeq int64, limit int) ([]Message, error)
}
