-- Device registration operations (DPS) and the built-in hub's registry and
-- twins. Hub device IDs are case-sensitive, as in IoT Hub.
CREATE TABLE operations (
    operation_id TEXT COLLATE "C" PRIMARY KEY,
    created_unix BIGINT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX operations_by_age ON operations (created_unix);

CREATE TABLE hub_devices (
    device_id TEXT COLLATE "C" PRIMARY KEY,
    etag      TEXT NOT NULL,
    body      TEXT NOT NULL
);

CREATE TABLE hub_modules (
    device_id TEXT COLLATE "C" NOT NULL,
    module_id TEXT COLLATE "C" NOT NULL,
    etag      TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (device_id, module_id)
);

-- module_id is '' for a device twin.
CREATE TABLE hub_twins (
    device_id TEXT COLLATE "C" NOT NULL,
    module_id TEXT COLLATE "C" NOT NULL,
    etag      TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (device_id, module_id)
);
