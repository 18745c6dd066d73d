-- The backend's products table, as seed 001 defines it. `GET /products` reads by primary
-- key order and `GET /products/{id}` by primary key: no further index is needed.
CREATE TABLE products (
    id SERIAL PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    price FLOAT NOT NULL CHECK (price >= 0 AND price < 'Infinity'),
    category VARCHAR(100) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT NOW()
);
