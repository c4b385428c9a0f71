-- Who leads the replicas, in one row: the leader takes the advisory lock
-- LeaderLockKey in a session of its own, then bumps epoch here. Every write
-- of a replica that campaigned reads epoch FOR SHARE and is refused when it
-- is not the epoch it won, so a new epoch commits only after the writes of
-- the old one, and none of theirs after it.
--
-- SQLite has no 0004: it serves one process, which leads alone.
CREATE TABLE leader (
    id          integer     NOT NULL PRIMARY KEY CHECK (id = 1),
    epoch       bigint      NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    holder      text        NOT NULL DEFAULT '',
    address     text        NOT NULL DEFAULT '',
    acquired_at timestamptz
);

INSERT INTO leader (id) VALUES (1);
