-- Single-layer LPIPS observers are named after their tap, e.g. `lpips-alex:conv3/max-set` or
-- `lpips-vgg:conv1_2/contrast`, so observer names may also hold `:` and `_`.
ALTER TABLE judgments DROP CONSTRAINT judgments_observer_check;
ALTER TABLE judgments ADD CONSTRAINT judgments_observer_check
    CHECK (observer ~ '^[a-z0-9][a-z0-9./:_-]{0,63}$');
