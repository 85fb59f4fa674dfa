-- How many sessions that are not excluded were assigned each main or catch trial (the main block,
-- attempt 0): what scheduling reads at every session start (DESIGN 1.2). Triggers keep it exact on every
-- path (assignment, exclusion and its re-evaluation, withdrawal), so a start reads a few narrow rows per
-- trial instead of counting assignments, and session starts need not take turns. Each count is split
-- over 8 shards by session, so concurrent starts that pick the same least-served trials rarely wait for
-- each other; rows are locked in (trial, shard) order, so they never deadlock.
CREATE TABLE trial_loads (
    trial_id  BIGINT NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    shard     SMALLINT NOT NULL CHECK (shard BETWEEN 0 AND 7),
    served    BIGINT NOT NULL CHECK (served >= 0),
    PRIMARY KEY (trial_id, shard)
);

INSERT INTO trial_loads (trial_id, shard, served)
SELECT a.trial_id, a.session_id % 8, count(*)
FROM assignments a JOIN sessions s ON s.id = a.session_id
WHERE NOT s.excluded AND a.attempt = 0
GROUP BY 1, 2;

-- Adds `delta` times each trial's number of occurrences in `trial_ids` to the shard of `session_id`.
CREATE FUNCTION shift_trial_loads(session_id BIGINT, trial_ids BIGINT[], delta BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    slot SMALLINT := session_id % 8;
BEGIN
    IF delta > 0 THEN
        INSERT INTO trial_loads (trial_id, shard, served)
        SELECT t, slot, delta * count(*) FROM unnest(trial_ids) AS u(t) GROUP BY t ORDER BY t
        ON CONFLICT (trial_id, shard) DO UPDATE SET served = trial_loads.served + EXCLUDED.served;
    ELSE
        PERFORM 1 FROM trial_loads l
        WHERE l.trial_id = ANY (trial_ids) AND l.shard = slot
        ORDER BY l.trial_id FOR UPDATE;
        UPDATE trial_loads l SET served = l.served + delta * c.n
        FROM (SELECT t, count(*) AS n FROM unnest(trial_ids) AS u(t) GROUP BY t) c
        WHERE l.trial_id = c.t AND l.shard = slot;
    END IF;
END $$;

CREATE FUNCTION trial_loads_assigned() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM shift_trial_loads(n.session_id, array_agg(n.trial_id), 1)
    FROM assigned n JOIN sessions s ON s.id = n.session_id
    WHERE NOT s.excluded AND n.attempt = 0
    GROUP BY n.session_id;
    RETURN NULL;
END $$;

CREATE TRIGGER assignments_load_added AFTER INSERT ON assignments
REFERENCING NEW TABLE AS assigned
FOR EACH STATEMENT EXECUTE FUNCTION trial_loads_assigned();

-- A deleted session's assignments go first (its row still exists); a study's deletion removes its
-- trials' loads by cascade.
CREATE FUNCTION trial_loads_unassigned() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM shift_trial_loads(o.session_id, array_agg(o.trial_id), -1)
    FROM unassigned o JOIN sessions s ON s.id = o.session_id
    WHERE NOT s.excluded AND o.attempt = 0
    GROUP BY o.session_id;
    RETURN NULL;
END $$;

CREATE TRIGGER assignments_load_removed AFTER DELETE ON assignments
REFERENCING OLD TABLE AS unassigned
FOR EACH STATEMENT EXECUTE FUNCTION trial_loads_unassigned();

-- An excluded session's trials return to the pool; a session let back in takes them again.
CREATE FUNCTION trial_loads_exclusion() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM shift_trial_loads(NEW.id, array_agg(a.trial_id), CASE WHEN NEW.excluded THEN -1 ELSE 1 END)
    FROM assignments a
    WHERE a.session_id = NEW.id AND a.attempt = 0
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_load_exclusion AFTER UPDATE OF excluded ON sessions
FOR EACH ROW WHEN (OLD.excluded IS DISTINCT FROM NEW.excluded)
EXECUTE FUNCTION trial_loads_exclusion();
