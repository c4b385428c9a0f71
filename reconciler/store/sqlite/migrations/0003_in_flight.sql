-- The generation published and not yet confirmed (store.InFlight as JSON,
-- NULL when there is none), so a restarted daemon confirms it rather than
-- issuing again.
ALTER TABLE instances ADD COLUMN in_flight TEXT CHECK (in_flight IS NULL OR json_valid(in_flight));
