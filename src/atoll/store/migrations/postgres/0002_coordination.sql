-- Coordination of control-plane instances sharing this database (atoll.store.coordination).

-- One row per lease (e.g. "zone/zone-1", "global"): who holds it, its term (the fencing token, +1 on
-- every change of holder) and when it expires, in the database's clock (the only clock that counts).
CREATE TABLE cp_leases (
    name       text COLLATE "C" PRIMARY KEY,
    holder     text             NOT NULL,
    term       bigint           NOT NULL,
    expires_at timestamptz      NOT NULL
);

-- One row per control-plane instance: its heartbeat and what it reports (address, version, leader
-- flag, the proxies and zones it holds). Rows whose heartbeat is old are pruned by the leader.
CREATE TABLE cp_instances (
    id           text COLLATE "C" PRIMARY KEY,
    role         text COLLATE "C" NOT NULL,
    started_at   timestamptz      NOT NULL,
    heartbeat_at timestamptz      NOT NULL,
    report       jsonb            NOT NULL
);
