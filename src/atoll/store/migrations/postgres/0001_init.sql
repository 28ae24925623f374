-- Resources, one row each; mesh is '' for global-scoped types so (type, mesh, name) can be the key.
-- Text columns use the "C" collation so ORDER BY matches Python's string order on every server.
CREATE TABLE resources (
    type              text COLLATE "C" NOT NULL,
    mesh              text COLLATE "C" NOT NULL DEFAULT '',
    name              text COLLATE "C" NOT NULL,
    version           bigint           NOT NULL,
    labels            jsonb            NOT NULL DEFAULT '{}',
    spec              jsonb            NOT NULL,
    creation_time     timestamptz      NOT NULL,
    modification_time timestamptz      NOT NULL,
    PRIMARY KEY (type, mesh, name)
);

CREATE INDEX resources_by_mesh ON resources (mesh, type);
CREATE INDEX resources_by_labels ON resources USING gin (labels jsonb_path_ops);

-- The store-wide revision. Every write locks this row first, so revisions follow commit order.
CREATE TABLE store_revision (
    id       integer PRIMARY KEY CHECK (id = 1),
    revision bigint  NOT NULL
);
INSERT INTO store_revision (id, revision) VALUES (1, 0);

-- The change log read by every store instance after a NOTIFY (payload: the newest revision).
-- Old entries are pruned by the writers; see postgres.py (EVENTS_KEPT).
CREATE TABLE store_events (
    revision          bigint           PRIMARY KEY,
    kind              text             NOT NULL CHECK (kind IN ('created', 'updated', 'deleted')),
    type              text COLLATE "C" NOT NULL,
    mesh              text COLLATE "C" NOT NULL,
    name              text COLLATE "C" NOT NULL,
    version           bigint           NOT NULL,
    labels            jsonb            NOT NULL,
    spec              jsonb            NOT NULL,
    creation_time     timestamptz      NOT NULL,
    modification_time timestamptz      NOT NULL,
    recorded_at       timestamptz      NOT NULL DEFAULT now()
);
