-- The audit log (internal/audit): append-only, pruned by age and count.
-- seq never reuses a number (AUTOINCREMENT); at is the entry's time in Unix
-- nanoseconds; subject_key is the case-folded registration ID, group ID or
-- policy name; body is the whole entry as JSON.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_subject ON audit_log (subject_key, seq);
