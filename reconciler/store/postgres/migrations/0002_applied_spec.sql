-- The instance document last applied, as the daemon encoded it (JSON), so
-- a restarted daemon plans from what is on the hosts, whatever the source.
ALTER TABLE instances ADD COLUMN applied_spec bytea NOT NULL DEFAULT ''::bytea;
