-- Content-addressed images: the file lives at <data-dir>/images/<sha256[0..2]>/<sha256>.
CREATE TABLE images (
    sha256      TEXT PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    width       INTEGER NOT NULL CHECK (width > 0),
    height      INTEGER NOT NULL CHECK (height > 0),
    byte_size   BIGINT NOT NULL CHECK (byte_size > 0),
    mime        TEXT NOT NULL CHECK (mime IN ('image/png', 'image/jpeg', 'image/webp')),
    label       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE studies (
    id          BIGSERIAL PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    title       TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    status      TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused', 'closed')),
    config      JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A unit is a direction in a tap's channel space; imported stimuli name their model and layer.
CREATE TABLE units (
    id          BIGSERIAL PRIMARY KEY,
    study_id    BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    model       TEXT NOT NULL,
    tap         TEXT NOT NULL,
    basis       TEXT NOT NULL CHECK (basis IN ('neuron', 'pca', 'kmeans', 'synthetic')),
    unit_index  INTEGER NOT NULL CHECK (unit_index >= 0),
    vector      REAL[],
    UNIQUE (study_id, model, tap, basis, unit_index)
);

CREATE TABLE trials (
    id            BIGSERIAL PRIMARY KEY,
    study_id      BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    unit_id       BIGINT NOT NULL REFERENCES units (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('main', 'catch', 'practice')),
    condition     TEXT NOT NULL,
    batch         INTEGER NOT NULL CHECK (batch >= 0),
    max_query     TEXT NOT NULL REFERENCES images (sha256),
    min_query     TEXT NOT NULL REFERENCES images (sha256),
    max_refs      TEXT[] NOT NULL CHECK (cardinality(max_refs) BETWEEN 1 AND 36),
    min_refs      TEXT[] NOT NULL CHECK (cardinality(min_refs) BETWEEN 1 AND 36),
    CHECK (max_query <> min_query)
);
CREATE INDEX trials_study_kind ON trials (study_id, kind);

CREATE TABLE sessions (
    id                      BIGSERIAL PRIMARY KEY,
    token                   TEXT NOT NULL UNIQUE CHECK (token ~ '^[0-9a-f]{64}$'),
    study_id                BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    -- HMAC-SHA256 of (study, external id) under the server secret: one participation per id, no raw ids kept.
    external_id_hash        TEXT CHECK (external_id_hash ~ '^[0-9a-f]{64}$'),
    source                  TEXT NOT NULL CHECK (source IN ('prolific', 'mturk', 'sona', 'link')),
    params                  JSONB NOT NULL DEFAULT '{}',
    stage                   TEXT NOT NULL DEFAULT 'consent'
                            CHECK (stage IN ('consent', 'instructions', 'practice', 'trials', 'debrief', 'complete')),
    main_total              INTEGER NOT NULL CHECK (main_total >= 0),
    practice_attempts       INTEGER NOT NULL DEFAULT 0 CHECK (practice_attempts >= 0),
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    consented_at            TIMESTAMPTZ,
    instructions_done_at    TIMESTAMPTZ,
    practice_done_at        TIMESTAMPTZ,
    trials_done_at          TIMESTAMPTZ,
    completed_at            TIMESTAMPTZ,
    completion_code         TEXT,
    feedback                TEXT CHECK (length(feedback) <= 5000),
    excluded                BOOLEAN NOT NULL DEFAULT false,
    exclusion_reasons       JSONB NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX sessions_one_per_external_id ON sessions (study_id, external_id_hash)
    WHERE external_id_hash IS NOT NULL;

-- Main and catch trials take positions 0..main_total-1 at session start; practice rounds are appended after them.
CREATE TABLE assignments (
    session_id  BIGINT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL CHECK (position >= 0),
    trial_id    BIGINT NOT NULL REFERENCES trials (id),
    attempt     INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_first   BOOLEAN NOT NULL,
    PRIMARY KEY (session_id, position)
);
CREATE INDEX assignments_trial ON assignments (trial_id);

CREATE TABLE responses (
    response_id  UUID PRIMARY KEY,
    session_id   BIGINT NOT NULL,
    position     INTEGER NOT NULL,
    chosen       SMALLINT NOT NULL CHECK (chosen IN (0, 1)),
    correct      BOOLEAN NOT NULL,
    confidence   SMALLINT NOT NULL CHECK (confidence BETWEEN 1 AND 3),
    rt_ms        INTEGER NOT NULL CHECK (rt_ms BETWEEN 0 AND 3600000),
    client_at    TIMESTAMPTZ,
    server_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    reply        JSONB NOT NULL,
    UNIQUE (session_id, position),
    FOREIGN KEY (session_id, position) REFERENCES assignments (session_id, position) ON DELETE CASCADE
);
