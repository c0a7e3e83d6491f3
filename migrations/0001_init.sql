-- The audit store: every grade, the transcripts they came from, and the human reviews beside
-- them. One schema for SQLite and PostgreSQL: only TEXT, BIGINT and DOUBLE PRECISION columns
-- (booleans are 0/1 BIGINTs, times are Unix milliseconds, JSON is TEXT), so the same SQL runs
-- on both. Grades are insert-only: a review is a row of its own, never an update of the grade.

CREATE TABLE grades (
    id             TEXT PRIMARY KEY,          -- the Grade's UUID (v7: ordered by time)
    created_at     BIGINT NOT NULL,           -- Unix ms
    request_id     TEXT,                      -- x-request-id, or the CLI run's id
    source         TEXT NOT NULL,             -- api | cli | batch | slack
    slack_team     TEXT,
    slack_user     TEXT,
    transcript_id  TEXT,                      -- when graded as part of a transcript
    pair_index     BIGINT,                    -- the pair's index in that transcript
    candidate      TEXT,                      -- who answered (for purge --candidate)
    question       TEXT NOT NULL,             -- the question as asked
    rubric_id      TEXT NOT NULL,
    rubric_version TEXT NOT NULL,
    adhoc          BIGINT NOT NULL,           -- 1: graded against a reference answer
    answer         TEXT,                      -- NULL when store.keep_answers = false
    reference_answer TEXT,                    -- ad hoc grades: what the answer was graded against
    grade_json     TEXT NOT NULL,             -- the full Grade as returned
    score          DOUBLE PRECISION NOT NULL,
    max_score      DOUBLE PRECISION NOT NULL,
    judge          TEXT NOT NULL,
    model          TEXT NOT NULL,
    flags          TEXT NOT NULL,             -- comma-separated, for display
    priority       BIGINT NOT NULL,           -- review queue priority (0 = nothing to look at)
    reasons        TEXT NOT NULL              -- comma-separated queue reasons
);
CREATE INDEX grades_created ON grades (created_at, id);
CREATE INDEX grades_rubric ON grades (rubric_id, created_at, id);
CREATE INDEX grades_queue ON grades (priority, created_at, id);
CREATE INDEX grades_candidate ON grades (candidate);
CREATE INDEX grades_transcript ON grades (transcript_id);

-- One row per flag, so `?flag=` is an indexed lookup.
CREATE TABLE grade_flags (
    flag     TEXT NOT NULL,
    grade_id TEXT NOT NULL REFERENCES grades (id),
    PRIMARY KEY (flag, grade_id)
);
CREATE INDEX grade_flags_grade ON grade_flags (grade_id);

CREATE TABLE reviews (
    id             TEXT PRIMARY KEY,
    grade_id       TEXT NOT NULL REFERENCES grades (id),
    created_at     BIGINT NOT NULL,
    reviewer       TEXT NOT NULL,
    criteria_json  TEXT NOT NULL,             -- [{id, verdict}] for every criterion
    score_override DOUBLE PRECISION,
    human_score    DOUBLE PRECISION NOT NULL, -- the override, else the score of the verdicts
    note           TEXT NOT NULL
);
CREATE INDEX reviews_grade ON reviews (grade_id, created_at);

CREATE TABLE transcripts (
    id           TEXT PRIMARY KEY,
    created_at   BIGINT NOT NULL,
    request_id   TEXT,
    source       TEXT NOT NULL,
    slack_team   TEXT,
    slack_user   TEXT,
    candidate    TEXT,
    name         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    report_json  TEXT NOT NULL               -- the report; pairs' answers blanked when not kept
);
CREATE INDEX transcripts_created ON transcripts (created_at);
CREATE INDEX transcripts_candidate ON transcripts (candidate);
