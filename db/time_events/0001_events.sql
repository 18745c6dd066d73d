-- Seed 002's event tables (SQLite there: http_requests, http_responses, errors), written by the
-- time service's consumer route. `event_id` makes redelivered events a no-op.
CREATE TABLE http_requests (
    event_id    text PRIMARY KEY,
    request_id  text NOT NULL,
    occurred_at timestamptz NOT NULL,
    method      text NOT NULL,
    path        text NOT NULL,
    user_ip     text NOT NULL,
    user_agent  text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE http_responses (
    event_id    text PRIMARY KEY,
    request_id  text NOT NULL,
    occurred_at timestamptz NOT NULL,
    status_code integer NOT NULL,
    duration_ms double precision NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE errors (
    event_id    text PRIMARY KEY,
    request_id  text NOT NULL,
    occurred_at timestamptz NOT NULL,
    path        text NOT NULL,
    error       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Events published with POST /kafka/publish.
CREATE TABLE custom_events (
    event_id    text PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    name        text NOT NULL,
    data        jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX http_responses_request_idx ON http_responses (request_id);
