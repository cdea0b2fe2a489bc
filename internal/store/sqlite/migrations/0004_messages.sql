-- The built-in hub's bounded log of device-to-cloud messages. seq never
-- reuses a number (AUTOINCREMENT), so readers can follow the log by it.
CREATE TABLE hub_messages (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    module_id TEXT NOT NULL,
    meta      TEXT NOT NULL, -- the message without its body, as JSON
    body      BLOB NOT NULL
);
