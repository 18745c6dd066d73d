-- The catalogue's products table, as seed 000 defines it.
CREATE TABLE products (
    id SERIAL PRIMARY KEY,
    description TEXT,
    image_url VARCHAR(255),
    name VARCHAR(255)
);
