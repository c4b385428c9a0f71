-- The generation published and not yet confirmed (store.InFlight as JSON,
-- NULL when there is none), so a restarted daemon, or the replica that
-- takes over, confirms it rather than issuing again.
ALTER TABLE instances ADD COLUMN in_flight json;
