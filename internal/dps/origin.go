package dps

import "context"

// Origin says where a request came from: which transport carried it, from
// which address, on whose authority, and the tracking ID its answer and log
// lines carry. Transports put it in the request's context (WithOrigin); the
// use cases read it only to describe what happened, for the audit log and
// log lines, never to decide anything.
type Origin struct {
	Transport  string // "https", "mqtt", "console", "cli", "seed"
	Address    string // the peer's IP address, "" when local
	Actor      string // the shared access policy that authorised the call; "" for devices
	TrackingID string // the ID an error answer names as its trackingId
}

type originKey struct{}

// WithOrigin returns ctx carrying o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin ctx carries, or the zero Origin.
func OriginFrom(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}
