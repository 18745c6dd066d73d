-- The ten sample products seed 001's init_db.py creates.
INSERT INTO products (name, price, category, created_at) VALUES
    ('MacBook Pro 16"', 2899.99, 'Ordinateurs', '2024-12-14 20:00:00'),
    ('Dell XPS 13', 1499.00, 'Ordinateurs', '2024-12-14 20:00:00'),
    ('iPhone 15 Pro', 1229.00, 'Smartphones', '2024-12-14 20:00:00'),
    ('Samsung Galaxy S24', 999.99, 'Smartphones', '2024-12-14 20:00:00'),
    ('AirPods Pro', 279.00, 'Audio', '2024-12-14 20:00:00'),
    ('Sony WH-1000XM5', 399.99, 'Audio', '2024-12-14 20:00:00'),
    ('iPad Air', 769.00, 'Tablettes', '2024-12-14 20:00:00'),
    ('Apple Watch Series 9', 449.00, 'Montres', '2024-12-14 20:00:00'),
    ('LG UltraFine 27"', 699.99, 'Écrans', '2024-12-14 20:00:00'),
    ('Logitech MX Master 3S', 109.99, 'Accessoires', '2024-12-14 20:00:00');
