-- Bus messages too large for a NOTIFY payload (8000 bytes): the sender
-- stores the message here and notifies its id; receivers read it. Rows are
-- deleted after a minute (see bus.go).
CREATE TABLE bus_messages (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
