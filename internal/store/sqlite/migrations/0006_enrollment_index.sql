-- Indexes for enrollment queries (docs/decisions/0013-enrollment-indexes.md):
-- the provisioning status as a column beside the body, and every top-level
-- initial-twin tag whose value is a string as a row of enrollment_tags.
-- Both are written in the transaction of each enrollment write; tag rows go
-- with their enrollment (ON DELETE CASCADE). Pages walk these indexes in
-- id_key order, as the unfiltered list walks the primary key.
ALTER TABLE enrollments ADD COLUMN provisioning_status TEXT NOT NULL DEFAULT '';
UPDATE enrollments SET provisioning_status = coalesce(json_extract(body, '$.ProvisioningStatus'), '');
CREATE INDEX enrollments_by_status ON enrollments (provisioning_status, id_key);

CREATE TABLE enrollment_tags (
    tag_name  TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    id_key    TEXT NOT NULL REFERENCES enrollments (id_key) ON DELETE CASCADE,
    PRIMARY KEY (tag_name, tag_value, id_key)
) WITHOUT ROWID;
CREATE INDEX enrollment_tags_by_enrollment ON enrollment_tags (id_key);

-- Existing enrollments: the same rows dps.IndexedTags gives (string values
-- only; bodies are plain JSON in SQLite).
INSERT INTO enrollment_tags (tag_name, tag_value, id_key)
SELECT t.key, t.value, e.id_key
FROM enrollments e, json_each(e.body, '$.InitialTwin.Tags') t
WHERE t.type = 'text' AND t.key IS NOT NULL;
