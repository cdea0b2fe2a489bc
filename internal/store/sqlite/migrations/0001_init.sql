-- Usher's first schema. Records are stored as JSON documents keyed by the
-- case-folded ID, with the etag beside them so conditional writes are one
-- statement.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE policies (
    scope    TEXT NOT NULL,
    name_key TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (scope, name_key)
);

CREATE TABLE enrollments (
    id_key TEXT PRIMARY KEY,
    etag   TEXT NOT NULL,
    body   TEXT NOT NULL
);

CREATE TABLE enrollment_groups (
    id_key TEXT PRIMARY KEY,
    etag   TEXT NOT NULL,
    body   TEXT NOT NULL
);

CREATE TABLE registrations (
    id_key    TEXT PRIMARY KEY,
    group_key TEXT NOT NULL,
    etag      TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX registrations_by_group ON registrations (group_key, id_key);
