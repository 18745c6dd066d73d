"""The Flask baseline for bench/run.sh: the seeds' endpoints as their originals implement them
(Flask + psycopg2, one connection per gunicorn worker), with nothing else: no metrics, logs or
tracing, so the comparison flatters Flask rather than spinyard."""
import os

import psycopg2
import psycopg2.extras
from flask import Flask, jsonify, request

app = Flask(__name__)
_connections = {}


def connection(dsn_env):
    conn = _connections.get(dsn_env)
    if conn is None or conn.closed:
        conn = psycopg2.connect(os.environ[dsn_env])
        conn.autocommit = True
        _connections[dsn_env] = conn
    return conn


@app.get("/api/products")
def catalogue_products():
    with connection("CATALOGUE_DSN").cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT id, name, description, image_url FROM products ORDER BY id")
        return jsonify(cur.fetchall())


@app.get("/api/products/<product_id>")
def catalogue_product(product_id):
    if not product_id.isdecimal() or int(product_id) < 1:
        return jsonify({"error": "Product not found", "id": product_id}), 404
    with connection("CATALOGUE_DSN").cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT id, name, description, image_url FROM products WHERE id = %s",
                    (int(product_id),))
        row = cur.fetchone()
        if row is None:
            return jsonify({"error": "Product not found", "id": product_id}), 404
        return jsonify(row)


def product_json(row):
    return {"id": row[0], "name": row[1], "price": row[2], "category": row[3],
            "created_at": row[4].isoformat()}


@app.get("/products")
def backend_products():
    with connection("PRODUCTS_DSN").cursor() as cur:
        cur.execute("SELECT id, name, price, category, created_at FROM products ORDER BY id")
        return jsonify([product_json(r) for r in cur.fetchall()])


@app.get("/products/<int:product_id>")
def backend_product(product_id):
    with connection("PRODUCTS_DSN").cursor() as cur:
        cur.execute("SELECT id, name, price, category, created_at FROM products WHERE id = %s",
                    (product_id,))
        row = cur.fetchone()
        if row is None:
            return jsonify({"error": f"product {product_id} not found"}), 404
        return jsonify(product_json(row))


@app.post("/products")
def backend_create():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify({"error": "body: expected a JSON object"}), 400
    name, price, category = data.get("name"), data.get("price"), data.get("category")
    if not isinstance(name, str) or not name.strip():
        return jsonify({"error": "name is required"}), 400
    if not isinstance(price, (int, float)) or price < 0:
        return jsonify({"error": "price must be a number >= 0"}), 400
    if not isinstance(category, str) or not category.strip():
        return jsonify({"error": "category is required"}), 400
    with connection("PRODUCTS_DSN").cursor() as cur:
        cur.execute("INSERT INTO products (name, price, category) VALUES (%s, %s, %s) "
                    "RETURNING id, name, price, category, created_at", (name, price, category))
        return jsonify(product_json(cur.fetchone())), 201


@app.get("/api/v1/users")
def users():
    limit = request.args.get("limit", "") or "100"
    if not limit.isdecimal() or not 1 <= int(limit) <= 1000:
        return jsonify({"error": f"limit: must be a whole number from 1 to 1000, got `{limit}`",
                        "field": "limit"}), 400
    with connection("APPDB_DSN").cursor() as cur:
        cur.execute("SELECT id, username, email, created_at FROM users ORDER BY id LIMIT %s",
                    (int(limit),))
        rows = [{"id": r[0], "username": r[1], "email": r[2], "created_at": r[3].isoformat()}
                for r in cur.fetchall()]
        return jsonify({"users": rows, "count": len(rows)})
