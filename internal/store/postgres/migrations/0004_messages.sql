-- The built-in hub's bounded log of device-to-cloud messages. seq comes
-- from an identity sequence, which never hands a number out twice; appends
-- are serialised by an advisory lock (see hub_messages.go) so numbers are
-- also committed in order and readers can follow the log by them.
CREATE TABLE hub_messages (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id TEXT NOT NULL,
    module_id TEXT NOT NULL,
    meta      TEXT NOT NULL, -- the message without its body, as JSON
    body      BYTEA NOT NULL
);
