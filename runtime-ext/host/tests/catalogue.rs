//! The catalogue component (seed 000, JSON mode) served from the app's own `spin.toml`.

mod common;

use common::{get, get_json, start, workspace_root};

fn host() -> common::Host {
    start(&workspace_root().join("spin.toml"), &[], &[])
}

#[tokio::test]
async fn lists_every_product_of_the_embedded_catalogue() {
    let host = host();
    let (status, json) = get_json(&host, "/api/products").await;
    assert_eq!(status, 200);
    let products = json.as_array().unwrap();
    let embedded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("components/catalogue/products.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(&json, &embedded);
    assert!(products.len() >= 2);
    for product in products {
        for field in ["id", "name", "description", "image_url"] {
            assert!(!product[field].is_null(), "{field} missing in {product}");
        }
    }
}

#[tokio::test]
async fn finds_one_product_by_id() {
    let host = host();
    let (status, json) = get_json(&host, "/api/products/3").await;
    assert_eq!(status, 200);
    assert_eq!(json["id"], 3);
    assert_eq!(json["name"], "Origami Guide");
}

#[tokio::test]
async fn unknown_or_malformed_id_is_a_json_404() {
    let host = host();
    for id in ["999", "0", "-1", "abc", "1.5", "1%27%20OR%201=1", "3/extra"] {
        let (status, body) = get(&host, &format!("/api/products/{id}")).await;
        assert_eq!(status, 404, "{id}");
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{id}: {body}"));
        assert_eq!(json["error"], "Product not found", "{id}");
    }
}

#[tokio::test]
async fn other_methods_are_refused() {
    let host = host();
    let response = common::client()
        .delete(format!("{}/api/products/1", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let json: serde_json::Value = response.json().await.unwrap();
    assert!(json["error"].as_str().unwrap().contains("GET"));
}
