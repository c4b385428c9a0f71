-- The reconciler's state per instance, one row in instances and its keys,
-- certificate and history in tables of their own.
--
-- Times are RFC 3339 text in UTC (NULL when unset). The uint64 counters
-- (generation, sent, received) are stored bit for bit in INTEGER, which is
-- signed: values from 2^63 up read back right but sort negative.

CREATE TABLE instances (
    name             TEXT    NOT NULL PRIMARY KEY,
    applied_revision TEXT    NOT NULL DEFAULT '',
    applied_at       TEXT,
    generation       INTEGER NOT NULL DEFAULT 0,
    previous_serial  TEXT    NOT NULL DEFAULT '',
    -- store.AgentStatus as JSON: what the agent reported, as it reported it.
    status           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(status)),
    sent             INTEGER NOT NULL DEFAULT 0,
    received         INTEGER NOT NULL DEFAULT 0,
    updated_at       TEXT    NOT NULL
) STRICT;

CREATE TABLE rpc_keys (
    instance       TEXT    NOT NULL REFERENCES instances (name) ON DELETE CASCADE,
    version        INTEGER NOT NULL CHECK (version > 0),
    -- Ciphertext from the key provider; never a plaintext key.
    wrapped        BLOB    NOT NULL CHECK (length(wrapped) > 0),
    master_version INTEGER NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('current', 'next')),
    PRIMARY KEY (instance, version),
    UNIQUE (instance, state)
) STRICT;

CREATE TABLE certificates (
    instance    TEXT NOT NULL PRIMARY KEY REFERENCES instances (name) ON DELETE CASCADE,
    serial      TEXT NOT NULL CHECK (serial <> ''),
    fingerprint TEXT NOT NULL,
    not_before  TEXT,
    not_after   TEXT,
    state       TEXT NOT NULL CHECK (state IN ('issued', 'installed', 'revoked'))
) STRICT;

-- The last applied revisions, position 0 the newest.
CREATE TABLE history (
    instance   TEXT    NOT NULL REFERENCES instances (name) ON DELETE CASCADE,
    position   INTEGER NOT NULL CHECK (position >= 0),
    revision   TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    applied_at TEXT,
    PRIMARY KEY (instance, position)
) STRICT;
