-- The catalogue's products: the same entries as the embedded JSON catalogue
-- (components/catalogue/products.json), so falling back changes nothing a client sees.
INSERT INTO products (id, description, image_url, name) VALUES
    (1, 'Beautiful origami paper in 24 vivid colours, 15 x 15 cm, 200 sheets.', '/static/images/origami/001-origami.png', 'Origami Paper Set'),
    (2, 'Everything needed to fold a thousand cranes, with step-by-step diagrams.', '/static/images/origami/002-origami-2.png', 'Origami Crane Kit'),
    (3, 'Instructional book covering 40 classic and modern models, beginner to expert.', '/static/images/origami/003-origami-3.png', 'Origami Guide'),
    (4, 'Hand-made Japanese washi paper with traditional patterns, 50 sheets.', '/static/images/origami/004-origami-4.png', 'Washi Paper Collection'),
    (5, 'Polished bone folder for crisp creases on thick and layered paper.', '/static/images/origami/005-origami-5.png', 'Bone Folder'),
    (6, 'Pre-cut paper and instructions for 12 modular polyhedra.', '/static/images/origami/006-origami-6.png', 'Modular Origami Pack');
SELECT setval('products_id_seq', (SELECT max(id) FROM products));
