-- Seed 004's tables: users, orders, ingested_data.
CREATE TABLE users (
    id SERIAL PRIMARY KEY,
    username VARCHAR(50) NOT NULL UNIQUE,
    email VARCHAR(255) NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

CREATE TABLE orders (
    id SERIAL PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    amount NUMERIC(12, 2) NOT NULL CHECK (amount > 0),
    status VARCHAR(20) NOT NULL DEFAULT 'processed',
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
-- A user's orders (the foreign key is not indexed by itself).
CREATE INDEX orders_user_id_idx ON orders (user_id);

CREATE TABLE ingested_data (
    id BIGSERIAL PRIMARY KEY,
    data_type VARCHAR(50) NOT NULL,
    source VARCHAR(100) NOT NULL,
    payload JSONB NOT NULL,
    ingested_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
-- `GET /api/v1/ingest/recent?limit=N`: newest first.
CREATE INDEX ingested_data_recent_idx ON ingested_data (ingested_at DESC, id DESC);
