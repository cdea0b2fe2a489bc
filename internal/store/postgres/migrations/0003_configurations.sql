-- The built-in hub's configurations (ADM and IoT Edge deployments), keyed
-- by their lower-case ID, and the content applied to single edge devices
-- with applyConfigurationContent.
CREATE TABLE hub_configurations (
    id_key TEXT COLLATE "C" PRIMARY KEY,
    etag   TEXT NOT NULL,
    body   TEXT NOT NULL
);

CREATE TABLE hub_device_deployments (
    device_id TEXT COLLATE "C" PRIMARY KEY,
    body      TEXT NOT NULL
);
