-- PostgreSQL only: bus_messages carries large cross-node bus messages
-- (docs/decisions/0012-multi-node.md). One SQLite file serves one process,
-- which needs no bus table; this file keeps both folders numbered alike.
SELECT 1;
