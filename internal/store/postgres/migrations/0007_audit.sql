-- The audit log (internal/audit): append-only, pruned by age and count.
-- seq comes from an identity sequence; at is the entry's time in Unix
-- nanoseconds; subject_key is the case-folded registration ID, group ID or
-- policy name; body is the whole entry as JSON (sealed with the secrets key
-- when there is one).
CREATE TABLE audit_log (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_subject ON audit_log (subject_key, seq);
