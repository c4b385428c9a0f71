-- The reconciler's state per instance, one row in instances and its keys,
-- certificate and history in tables of their own: the same model as the
-- SQLite store's 0001_initial.
--
-- Instance names are COLLATE "C", so they compare and sort byte-wise as Go
-- compares strings, whatever the database's default collation. Times are
-- timestamptz (NULL when unset), to the microsecond. The uint64 counters
-- (generation, sent, received) are stored bit for bit in bigint, which is
-- signed: values from 2^63 up read back right but sort negative.

CREATE TABLE instances (
    name             text COLLATE "C" NOT NULL PRIMARY KEY,
    applied_revision text        NOT NULL DEFAULT '',
    applied_at       timestamptz,
    generation       bigint      NOT NULL DEFAULT 0,
    previous_serial  text        NOT NULL DEFAULT '',
    -- store.AgentStatus as JSON, kept as written: json rather than jsonb,
    -- which refuses the \u0000 an agent's message may carry.
    status           json        NOT NULL DEFAULT '{}',
    sent             bigint      NOT NULL DEFAULT 0,
    received         bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL
);

CREATE TABLE rpc_keys (
    instance       text COLLATE "C" NOT NULL REFERENCES instances (name) ON DELETE CASCADE,
    -- A uint32, which integer (signed) cannot hold whole.
    version        bigint NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
    -- Ciphertext from the key provider; never a plaintext key.
    wrapped        bytea  NOT NULL CHECK (length(wrapped) > 0),
    master_version bigint NOT NULL,
    state          text   NOT NULL CHECK (state IN ('current', 'next')),
    PRIMARY KEY (instance, version),
    UNIQUE (instance, state)
);

CREATE TABLE certificates (
    instance    text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES instances (name) ON DELETE CASCADE,
    serial      text NOT NULL CHECK (serial <> ''),
    fingerprint text NOT NULL,
    not_before  timestamptz,
    not_after   timestamptz,
    state       text NOT NULL CHECK (state IN ('issued', 'installed', 'revoked'))
);

-- The last applied revisions, position 0 the newest.
CREATE TABLE history (
    instance   text COLLATE "C" NOT NULL REFERENCES instances (name) ON DELETE CASCADE,
    position   integer NOT NULL CHECK (position >= 0),
    revision   text    NOT NULL,
    generation bigint  NOT NULL,
    applied_at timestamptz,
    PRIMARY KEY (instance, position)
);
