-- Indexes for enrollment queries, the PostgreSQL twin of
-- internal/store/sqlite/migrations/0006_enrollment_index.sql
-- (docs/decisions/0013-enrollment-indexes.md): the provisioning status as a
-- column beside the body, and every top-level initial-twin tag whose value
-- is a string as a row of enrollment_tags. Both are written in the
-- transaction of each enrollment write; tag rows go with their enrollment
-- (ON DELETE CASCADE). Pages walk these indexes in id_key order, as the
-- unfiltered list walks the primary key.
--
-- Bodies may be sealed with the secrets key, which SQL never sees, so
-- existing enrollments are not indexed here: their provisioning_status
-- stays NULL, and the store indexes them in Go before its first filtered
-- list (indexOlderEnrollments in enrollment.go), finding them through
-- enrollments_unindexed.
ALTER TABLE enrollments ADD COLUMN provisioning_status TEXT COLLATE "C";
CREATE INDEX enrollments_by_status ON enrollments (provisioning_status, id_key);
CREATE INDEX enrollments_unindexed ON enrollments (id_key) WHERE provisioning_status IS NULL;

CREATE TABLE enrollment_tags (
    tag_name  TEXT COLLATE "C" NOT NULL,
    tag_value TEXT COLLATE "C" NOT NULL,
    id_key    TEXT COLLATE "C" NOT NULL REFERENCES enrollments (id_key) ON DELETE CASCADE,
    PRIMARY KEY (tag_name, tag_value, id_key)
);
CREATE INDEX enrollment_tags_by_enrollment ON enrollment_tags (id_key);
