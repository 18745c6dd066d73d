//! The request as a component gets it, as Spin's HTTP trigger rewrites it: an absolute URI, and
//! the `spin-*` headers that tell the component how it was reached.

use std::net::SocketAddr;

use http::{HeaderName, HeaderValue, Request, Uri};

use crate::routes::{Route, RouteMatch};

/// The client address Spin reports for a chained request.
const CHAINED_CLIENT: &str = "0.0.0.0:0";
/// Spin's synthetic route for chained requests, which match the whole path.
const CHAINED_ROUTE: &str = "/...";

/// The request's URI made absolute, `http://<authority><path>?<query>`, as components read it
/// (and `spin-full-url` reports it): the authority is the `Host` the client sent, else the
/// address the server listens on. An error if they make no URI (the client gets a 400).
pub fn absolute_uri<B>(request: &Request<B>, listen_addr: SocketAddr) -> Result<Uri, http::Error> {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| listen_addr.to_string());
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Uri::builder()
        .scheme("http")
        .authority(host.as_str())
        .path_and_query(path_and_query)
        .build()
}

/// The `spin-*` request headers; `spin-full-url` is the request's (absolute) URI.
pub struct SpinHeaders<'a> {
    path_info: String,
    matched_route: &'a str,
    component_route: &'a str,
    client_addr: String,
    params: Vec<(String, String)>,
}

impl<'a> SpinHeaders<'a> {
    /// The headers of a request from `client` that the router matched to `route`.
    pub fn routed(route: &'a Route, found: RouteMatch, client: SocketAddr) -> Self {
        Self {
            path_info: found.path_info,
            matched_route: route.raw(),
            component_route: route.component_route(),
            client_addr: client.to_string(),
            params: found.params,
        }
    }
}

impl SpinHeaders<'static> {
    /// The headers of a request chained from another component: Spin's synthetic route `/...`,
    /// with the whole path as path info.
    pub fn chained(path: &str) -> Self {
        Self {
            path_info: path.to_string(),
            matched_route: CHAINED_ROUTE,
            component_route: "",
            client_addr: CHAINED_CLIENT.to_string(),
            params: Vec::new(),
        }
    }
}

impl SpinHeaders<'_> {
    /// Sets the headers, replacing any a client sent under the same names: a component trusts
    /// them to come from the host.
    pub fn apply<B>(self, request: &mut Request<B>) {
        let full_url = request.uri().to_string();
        let headers = request.headers_mut();
        let mut set = |name: HeaderName, value: &str| {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(name, value);
            }
        };
        set(HeaderName::from_static("spin-path-info"), &self.path_info);
        set(HeaderName::from_static("spin-full-url"), &full_url);
        set(
            HeaderName::from_static("spin-matched-route"),
            self.matched_route,
        );
        set(HeaderName::from_static("spin-base-path"), "/");
        set(
            HeaderName::from_static("spin-raw-component-route"),
            self.matched_route,
        );
        set(
            HeaderName::from_static("spin-component-route"),
            self.component_route,
        );
        set(
            HeaderName::from_static("spin-client-addr"),
            &self.client_addr,
        );
        for (name, value) in &self.params {
            let name = format!("spin-path-match-{}", name.to_ascii_lowercase());
            if let Ok(name) = HeaderName::try_from(name) {
                set(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTEN: &str = "127.0.0.1:3000";
    const CLIENT: &str = "10.0.0.7:51234";

    fn request(target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    /// The request as the component gets it after routing `route`.
    fn routed(route: &str, mut request: Request<()>) -> Request<()> {
        let route = Route::parse(route).unwrap();
        let found = route
            .matches(request.uri().path())
            .expect("the route matches");
        *request.uri_mut() = absolute_uri(&request, LISTEN.parse().unwrap()).unwrap();
        SpinHeaders::routed(&route, found, CLIENT.parse().unwrap()).apply(&mut request);
        request
    }

    fn header<'r>(request: &'r Request<()>, name: &str) -> Option<&'r str> {
        request.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn a_wildcard_route_with_named_segments() {
        let request = routed(
            "/users/:id/files/...",
            request("/users/42/files/a/b/?x=1", &[("host", "example.com:8080")]),
        );
        let expected = [
            (
                "spin-full-url",
                "http://example.com:8080/users/42/files/a/b/?x=1",
            ),
            ("spin-path-info", "/a/b/"),
            ("spin-matched-route", "/users/:id/files/..."),
            ("spin-raw-component-route", "/users/:id/files/..."),
            ("spin-component-route", "/users/:id/files"),
            ("spin-base-path", "/"),
            ("spin-client-addr", CLIENT),
            ("spin-path-match-id", "42"),
        ];
        for (name, value) in expected {
            assert_eq!(header(&request, name), Some(value), "{name}");
        }
    }

    #[test]
    fn an_exact_route_has_no_path_info() {
        let request = routed("/api/products", request("/api/products/", &[]));
        assert_eq!(header(&request, "spin-path-info"), Some(""));
        assert_eq!(
            header(&request, "spin-matched-route"),
            Some("/api/products")
        );
        assert_eq!(
            header(&request, "spin-component-route"),
            Some("/api/products")
        );
    }

    #[test]
    fn the_full_url_falls_back_to_the_listen_address() {
        let request = routed("/...", request("/hello", &[]));
        assert_eq!(
            header(&request, "spin-full-url"),
            Some("http://127.0.0.1:3000/hello")
        );
        assert_eq!(header(&request, "spin-path-info"), Some("/hello"));
        assert_eq!(header(&request, "spin-component-route"), Some(""));
    }

    #[test]
    fn a_host_that_makes_no_uri_is_refused() {
        let request = request("/", &[("host", "bad host")]);
        assert!(absolute_uri(&request, LISTEN.parse().unwrap()).is_err());
    }

    #[test]
    fn path_match_names_are_lower_case() {
        let request = routed("/:Name", request("/Ada", &[]));
        assert_eq!(header(&request, "spin-path-match-name"), Some("Ada"));
    }

    #[test]
    fn headers_a_client_sent_are_replaced() {
        let request = routed(
            "/...",
            request(
                "/x",
                &[
                    ("spin-client-addr", "1.2.3.4:5"),
                    ("spin-path-info", "/forged"),
                ],
            ),
        );
        assert_eq!(header(&request, "spin-client-addr"), Some(CLIENT));
        assert_eq!(header(&request, "spin-path-info"), Some("/x"));
        let all: Vec<_> = request.headers().get_all("spin-path-info").iter().collect();
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn a_chained_request_has_spins_synthetic_route() {
        let mut request = request("http://users.spin.internal/users/7?full=1", &[]);
        SpinHeaders::chained(request.uri().path()).apply(&mut request);
        let expected = [
            ("spin-full-url", "http://users.spin.internal/users/7?full=1"),
            ("spin-path-info", "/users/7"),
            ("spin-matched-route", "/..."),
            ("spin-raw-component-route", "/..."),
            ("spin-component-route", ""),
            ("spin-base-path", "/"),
            ("spin-client-addr", "0.0.0.0:0"),
        ];
        for (name, value) in expected {
            assert_eq!(header(&request, name), Some(value), "{name}");
        }
        assert!(
            !request
                .headers()
                .keys()
                .any(|name| name.as_str().starts_with("spin-path-match-"))
        );
    }
}
