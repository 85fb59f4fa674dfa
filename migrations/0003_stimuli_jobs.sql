-- Models, image sets, stored activations, unit vectors with exemplars, and the jobs queue.

-- A studied network: an architecture with one set of weights (identified by their SHA-256).
CREATE TABLE models (
    id              BIGSERIAL PRIMARY KEY,
    arch            TEXT NOT NULL,
    weights_sha256  TEXT NOT NULL CHECK (weights_sha256 ~ '^[0-9a-f]{64}$'),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (arch, weights_sha256)
);

CREATE TABLE image_sets (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    source      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE image_set_members (
    image_set_id  BIGINT NOT NULL REFERENCES image_sets (id) ON DELETE CASCADE,
    sha256        TEXT NOT NULL REFERENCES images (sha256),
    source_path   TEXT NOT NULL,
    PRIMARY KEY (image_set_id, sha256)
);

-- Spatial means per channel of one tap on one image (DESIGN 1.1), kept so that new bases,
-- conditions or studies never run the network again; written batch by batch, so extraction resumes.
CREATE TABLE activations (
    model_id  BIGINT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    tap       TEXT NOT NULL,
    sha256    TEXT NOT NULL REFERENCES images (sha256),
    means     REAL[] NOT NULL,
    PRIMARY KEY (model_id, tap, sha256)
);

ALTER TABLE units
    ADD COLUMN ii DOUBLE PRECISION,
    ADD COLUMN explained_variance DOUBLE PRECISION CHECK (explained_variance BETWEEN 0 AND 1);

-- The most and least activating images of a unit, in rank order from each end.
CREATE TABLE exemplars (
    unit_id     BIGINT NOT NULL REFERENCES units (id) ON DELETE CASCADE,
    side        TEXT NOT NULL CHECK (side IN ('max', 'min')),
    rank        INTEGER NOT NULL CHECK (rank >= 0),
    sha256      TEXT NOT NULL REFERENCES images (sha256),
    activation  REAL NOT NULL,
    PRIMARY KEY (unit_id, side, rank)
);

CREATE TABLE jobs (
    id                BIGSERIAL PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('weights', 'images', 'build', 'score')),
    status            TEXT NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    payload           JSONB NOT NULL,
    phase             TEXT NOT NULL DEFAULT '',
    progress          BIGINT NOT NULL DEFAULT 0 CHECK (progress >= 0),
    total             BIGINT NOT NULL DEFAULT 0 CHECK (total >= 0),
    error             TEXT,
    result            JSONB,
    cancel_requested  BOOLEAN NOT NULL DEFAULT false,
    worker            TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at        TIMESTAMPTZ,
    heartbeat_at      TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ
);
CREATE INDEX jobs_waiting ON jobs (id) WHERE status IN ('queued', 'running');
