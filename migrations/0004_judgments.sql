-- The in-silico observer's judgment of a trial (DESIGN 1.5): one row per trial and observer, e.g.
-- `lpips-alex/max-set`. Re-scoring overwrites the row. `correct` is 1, 0, or 0.5 on a tie (s_t = 0),
-- so the mean of `correct` is the observer's accuracy with ties counted one half.
CREATE TABLE judgments (
    trial_id    BIGINT NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    observer    TEXT NOT NULL CHECK (observer ~ '^[a-z0-9][a-z0-9./-]{0,63}$'),
    score       DOUBLE PRECISION NOT NULL CHECK (score = score),
    choice      TEXT NOT NULL CHECK (choice IN ('max', 'min', 'tie')),
    correct     DOUBLE PRECISION NOT NULL CHECK (correct IN (0, 0.5, 1)),
    scored_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (trial_id, observer),
    CHECK ((choice = 'max') = (correct = 1) AND (choice = 'tie') = (correct = 0.5))
);
CREATE INDEX judgments_observer ON judgments (observer);
