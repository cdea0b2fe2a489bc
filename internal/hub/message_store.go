package hub

// MessageStore keeps the bounded log of device-to-cloud messages.
type MessageStore interface{}
