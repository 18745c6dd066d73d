//! The native baseline of `bench/run.sh`: what the catalogue and minimal components answer,
//! served by hyper directly, with no wasm in between. Usage: `native-baseline <addr>`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header};
use hyper_util::rt::TokioIo;

/// The catalogue component's data, the same file it embeds.
const CATALOGUE: &str = include_str!("../../../components/catalogue/products.json");

static PRODUCTS: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
    serde_json::from_str(CATALOGUE).expect("the catalogue component's products.json is valid")
});

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match request.uri().path() {
        "/ok" => (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        // Serialized per request from the catalogue parsed once, as the component does.
        "/api/products" => (
            StatusCode::OK,
            "application/json",
            Bytes::from(PRODUCTS.to_string()),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", Bytes::new()),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3100".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("Serving http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handle);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
