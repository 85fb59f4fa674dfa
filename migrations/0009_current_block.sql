-- One definition of a session's current block, used by every query that asks for it: the assignments
-- of its current practice round (positions from main_total, the latest attempt) while it practises,
-- of its main trials (positions below main_total, attempt 0) while it does the trials, none otherwise.
-- A simple immutable SQL function, so the planner inlines it.
CREATE FUNCTION in_current_block(
    session_stage text,
    session_main_total int,
    session_practice_attempts int,
    assignment_position int,
    assignment_attempt int
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE session_stage
        WHEN 'practice' THEN assignment_position >= session_main_total
                             AND assignment_attempt = session_practice_attempts
        WHEN 'trials' THEN assignment_position < session_main_total AND assignment_attempt = 0
        ELSE false
    END
$$;
