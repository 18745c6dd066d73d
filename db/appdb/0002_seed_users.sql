-- A first user, so the seed's `POST /api/v1/process/order {"user_id":1,...}` example works.
INSERT INTO users (username, email) VALUES ('demo', 'demo@example.com');
