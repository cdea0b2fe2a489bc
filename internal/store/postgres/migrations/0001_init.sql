-- Usher's first schema, the PostgreSQL twin of
-- internal/store/sqlite/migrations/0001_init.sql (same number, same tables).
-- Records are JSON documents in text columns keyed by the case-folded ID,
-- with the etag beside them so conditional writes are one statement. Keys
-- use the "C" collation so order and comparisons are bytewise, as SQLite's
-- BINARY collation is: list order and paging match on both stores.
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE policies (
    scope    TEXT COLLATE "C" NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (scope, name_key)
);

CREATE TABLE enrollments (
    id_key TEXT COLLATE "C" PRIMARY KEY,
    etag   TEXT NOT NULL,
    body   TEXT NOT NULL
);

CREATE TABLE enrollment_groups (
    id_key TEXT COLLATE "C" PRIMARY KEY,
    etag   TEXT NOT NULL,
    body   TEXT NOT NULL
);

CREATE TABLE registrations (
    id_key    TEXT COLLATE "C" PRIMARY KEY,
    group_key TEXT COLLATE "C" NOT NULL,
    etag      TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX registrations_by_group ON registrations (group_key, id_key);
