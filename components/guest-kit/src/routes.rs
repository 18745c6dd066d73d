//! A component's routes, declared once in a [`Routes`] table: what each path and method
//! dispatches to, the label its requests are counted under in the metrics, the 404 for a path
//! no route matches and the 405 (with `Allow`) for a method a route does not serve.
//!
//! Patterns use Spin's route syntax, matched against the request's path: literal segments,
//! `:name` for any one segment, and a final `/...` for whatever follows (nothing included). A
//! trailing slash is ignored, as Spin ignores it on an exact route. The first route whose
//! pattern matches is the route.

// The method type of a route's methods, named here for [`crate::service_routes`].
pub use http::Method;
use spin_sdk::http::Request;

use crate::ApiError;

/// One route: its pattern, the metrics label, and the endpoint serving each method.
pub struct Route<E: 'static> {
    pub path: &'static str,
    /// What the metrics call the route (the seed's name for it, so dashboards keep working);
    /// `None` for a route not to count (the scrape of `/metrics` itself).
    pub label: Option<&'static str>,
    pub methods: &'static [(Method, E)],
}

/// Every route of a component, in the order they are tried.
pub struct Routes<E: 'static>(pub &'static [Route<E>]);

/// The segments a path's `:name`s matched, by name.
type Params<'p> = Vec<(&'static str, &'p str)>;

/// The route a request matched: its endpoint and the segments its `:name`s matched.
#[derive(Debug, PartialEq)]
pub struct Matched<'p, E> {
    pub endpoint: E,
    params: Params<'p>,
}

impl<'p, E> Matched<'p, E> {
    /// The segment `:name` matched, as it came (still percent-encoded).
    pub fn param(&self, name: &str) -> &'p str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| *value)
            .unwrap_or_default()
    }
}

impl<E: Copy> Routes<E> {
    /// The endpoint for the request's method and path: a 404 when no route matches the path, a
    /// 405 naming the route's methods in `Allow` when it does not serve the method.
    pub fn find<'r>(&self, request: &'r Request) -> Result<Matched<'r, E>, ApiError> {
        self.find_path(request.method(), crate::request::path(request))
    }

    fn find_path<'p>(&self, method: &Method, path: &'p str) -> Result<Matched<'p, E>, ApiError> {
        let (route, params) = self
            .matching(path)
            .ok_or_else(|| ApiError::not_found(format!("no route for {path}")))?;
        let endpoint = route
            .methods
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, endpoint)| *endpoint)
            .ok_or_else(|| {
                let allow: Vec<&str> = route.methods.iter().map(|(m, _)| m.as_str()).collect();
                ApiError::method_not_allowed(allow.join(", "))
            })?;
        Ok(Matched { endpoint, params })
    }

    /// The label `path` is counted under: its route's, `unmatched` for a path no route
    /// matches (so label values stay few), `None` for a route not counted.
    pub fn label(&self, path: &str) -> Option<&'static str> {
        match self.matching(path) {
            Some((route, _)) => route.label,
            None => Some("unmatched"),
        }
    }

    /// The routes' patterns that do not start with `prefix`: a seed-004 service's own
    /// endpoints, without its probes and metrics (which live under `/<name>/`).
    pub fn paths_outside(&self, prefix: &str) -> Vec<&'static str> {
        self.0
            .iter()
            .map(|route| route.path)
            .filter(|path| !path.starts_with(prefix))
            .collect()
    }

    fn matching<'p>(&self, path: &'p str) -> Option<(&Route<E>, Params<'p>)> {
        self.0
            .iter()
            .find_map(|route| Some((route, captures(route.path, path)?)))
    }
}

/// The `:name` segments of `pattern` in `path`, when `path` matches it.
fn captures<'p>(pattern: &'static str, path: &'p str) -> Option<Params<'p>> {
    let (pattern, rest) = match pattern.strip_suffix("/...") {
        Some(prefix) => (prefix, true),
        None => (pattern, false),
    };
    let mut wanted = segments(pattern);
    let mut given = segments(path.trim_end_matches('/'));
    let mut params = Vec::new();
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(params),
            (None, Some(_)) => return rest.then_some(params),
            (Some(_), None) => return None,
            (Some(want), Some(segment)) => match want.strip_prefix(':') {
                Some(name) if !segment.is_empty() => params.push((name, segment)),
                None if want == segment => {}
                _ => return None,
            },
        }
    }
}

/// A path's segments: `/a/b` is `a`, `b`; `/` and `` have none.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .filter(|_| path.len() > 1)
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Endpoint {
        List,
        Create,
        Get,
        Rest,
        Home,
        Metrics,
    }

    static ROUTES: Routes<Endpoint> = Routes(&[
        Route {
            path: "/items",
            label: Some("/items"),
            methods: &[
                (Method::GET, Endpoint::List),
                (Method::POST, Endpoint::Create),
            ],
        },
        Route {
            path: "/items/:id",
            label: Some("/items/{id}"),
            methods: &[(Method::GET, Endpoint::Get)],
        },
        Route {
            path: "/items/...",
            label: Some("other"),
            methods: &[(Method::GET, Endpoint::Rest)],
        },
        Route {
            path: "/svc",
            label: Some("/"),
            methods: &[(Method::GET, Endpoint::Home)],
        },
        Route {
            path: "/svc/metrics",
            label: None,
            methods: &[(Method::GET, Endpoint::Metrics)],
        },
    ]);

    fn endpoint(method: Method, path: &str) -> Result<Endpoint, (StatusCode, Option<String>)> {
        ROUTES
            .find_path(&method, path)
            .map(|m| m.endpoint)
            .map_err(|e| (e.status, e.allow))
    }

    #[test]
    fn dispatches_by_path_and_method_ignoring_a_trailing_slash() {
        assert_eq!(endpoint(Method::GET, "/items"), Ok(Endpoint::List));
        assert_eq!(endpoint(Method::POST, "/items/"), Ok(Endpoint::Create));
        assert_eq!(endpoint(Method::GET, "/svc"), Ok(Endpoint::Home));
        assert_eq!(endpoint(Method::GET, "/svc/metrics"), Ok(Endpoint::Metrics));
    }

    #[test]
    fn names_segments_and_takes_the_first_matching_route() {
        let matched = ROUTES.find_path(&Method::GET, "/items/a%20b").unwrap();
        assert_eq!(matched.endpoint, Endpoint::Get);
        assert_eq!(matched.param("id"), "a%20b");
        assert_eq!(matched.param("absent"), "");
        // `:id` is one segment: more goes to the wildcard after it.
        assert_eq!(endpoint(Method::GET, "/items/1/2"), Ok(Endpoint::Rest));
    }

    #[test]
    fn answers_404_and_405_with_allow() {
        assert_eq!(
            endpoint(Method::GET, "/nothing"),
            Err((StatusCode::NOT_FOUND, None))
        );
        assert_eq!(
            endpoint(Method::GET, "/"),
            Err((StatusCode::NOT_FOUND, None))
        );
        assert_eq!(
            endpoint(Method::GET, "/svcx"),
            Err((StatusCode::NOT_FOUND, None))
        );
        assert_eq!(
            endpoint(Method::DELETE, "/items"),
            Err((StatusCode::METHOD_NOT_ALLOWED, Some("GET, POST".into())))
        );
        assert_eq!(
            endpoint(Method::PUT, "/items/7"),
            Err((StatusCode::METHOD_NOT_ALLOWED, Some("GET".into())))
        );
    }

    #[test]
    fn labels_routes_unmatched_paths_and_uncounted_routes() {
        assert_eq!(ROUTES.label("/items/42"), Some("/items/{id}"));
        assert_eq!(ROUTES.label("/svc/"), Some("/"));
        assert_eq!(ROUTES.label("/elsewhere"), Some("unmatched"));
        assert_eq!(ROUTES.label("/svc/metrics"), None);
    }

    #[test]
    fn lists_the_paths_outside_a_prefix() {
        assert_eq!(
            ROUTES.paths_outside("/svc/"),
            ["/items", "/items/:id", "/items/...", "/svc"]
        );
    }
}
