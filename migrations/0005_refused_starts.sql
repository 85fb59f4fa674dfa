-- A start with an external id that already has a session is refused (ids are not secrets); the refusals
-- are counted on that session so the participant table shows who may have been locked out by another.
ALTER TABLE sessions
    ADD COLUMN refused_starts  INTEGER NOT NULL DEFAULT 0 CHECK (refused_starts >= 0),
    ADD COLUMN last_refused_at TIMESTAMPTZ;
