-- Resources, one row each; mesh is '' for global-scoped types so (type, mesh, name) can be the key.
CREATE TABLE resources (
    type              TEXT    NOT NULL,
    mesh              TEXT    NOT NULL DEFAULT '',
    name              TEXT    NOT NULL,
    version           INTEGER NOT NULL,
    labels            TEXT    NOT NULL DEFAULT '{}',  -- JSON object of strings
    spec              TEXT    NOT NULL,               -- JSON, Resource.spec_dict()
    creation_time     TEXT    NOT NULL,               -- ISO 8601 with offset
    modification_time TEXT    NOT NULL,
    PRIMARY KEY (type, mesh, name)
) WITHOUT ROWID;

CREATE INDEX resources_by_mesh ON resources (mesh, type);

-- The store-wide revision: +1 per change event, bumped in the transaction of the write.
CREATE TABLE store_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO store_revision (id, revision) VALUES (1, 0);
