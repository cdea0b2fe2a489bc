-- Who is connected to which node (docs/decisions/0020-presence.md). A node
-- writes one row per identity that connected to it when its first
-- connection attaches or its last detaches (and its last activity about
-- once a minute); a row counts as connected only while its node's
-- heartbeat in hub_nodes is younger than the presence TTL.
CREATE TABLE hub_nodes (
    node_id      TEXT PRIMARY KEY,
    heartbeat_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE hub_presence (
    device_id     TEXT NOT NULL,
    module_id     TEXT NOT NULL,
    node_id       TEXT NOT NULL,
    connected     BOOLEAN NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    last_activity TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (device_id, module_id, node_id)
);
CREATE INDEX hub_presence_connected ON hub_presence (node_id) WHERE connected;
