//! HTTP routing with Spin's rules.
//!
//! A route is exact (`/api/products`, which also matches `/api/products/`), a wildcard
//! (`/api/products/...`, which also matches `/api/products` itself), and may contain named
//! segments (`/users/:id`). Among the routes matching a path, the best is chosen segment by
//! segment: a literal beats a `:name`, which beats the wildcard; so an exact route beats any
//! wildcard and the longer wildcard prefix wins, whatever the declaration order. Private routes
//! are never matched from outside; only service chaining reaches them.

use anyhow::bail;

/// The suffix that makes a route a wildcard.
const WILDCARD_SUFFIX: &str = "/...";

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route pattern from `[[trigger.http]] route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// What matching a path against a route yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The path after the part the route matched (`spin-path-info`): `""`, or starting with `/`;
    /// a trailing slash is kept, as Spin keeps it.
    pub path_info: String,
    /// Named segments, in route order (`spin-path-match-<name>`).
    pub params: Vec<(String, String)>,
}

/// Precedence of what a route has at one segment position; higher wins.
const RANK_WILDCARD: u8 = 1;
const RANK_PARAM: u8 = 2;
const RANK_LITERAL: u8 = 3;
/// An exact route that ends here beats a wildcard that would match nothing more.
const RANK_END: u8 = 4;

impl Route {
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        if !raw.starts_with('/') {
            bail!("route `{raw}` must start with `/`");
        }
        let (body, wildcard) = match raw.strip_suffix(WILDCARD_SUFFIX) {
            Some(prefix) => (prefix, true),
            None => (raw, false),
        };
        if body.contains("...") {
            bail!("route `{raw}`: `...` is only allowed as the last segment");
        }
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut segments = Vec::new();
        for segment in body.split('/').skip(1) {
            match segment.strip_prefix(':') {
                Some("") => bail!("route `{raw}`: a `:` segment needs a name"),
                Some(name) => segments.push(Segment::Param(name.to_string())),
                None if segment.is_empty() => bail!("route `{raw}`: empty segment"),
                None => segments.push(Segment::Literal(segment.to_string())),
            }
        }
        Ok(Self {
            raw: raw.to_string(),
            segments,
            wildcard,
        })
    }

    /// The route as written in the manifest (`spin-matched-route`, `spin-raw-component-route`).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The route without its wildcard suffix (`spin-component-route`).
    pub fn component_route(&self) -> &str {
        self.raw.strip_suffix(WILDCARD_SUFFIX).unwrap_or(&self.raw)
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Matches a request path (without the query).
    pub fn matches(&self, path: &str) -> Option<RouteMatch> {
        let mut rest = path;
        let mut params = Vec::new();
        for segment in &self.segments {
            let after_slash = rest.strip_prefix('/')?;
            let (actual, remainder) =
                after_slash.split_at(after_slash.find('/').unwrap_or(after_slash.len()));
            match segment {
                Segment::Literal(text) if text == actual => {}
                Segment::Param(name) if !actual.is_empty() => {
                    params.push((name.clone(), actual.to_string()))
                }
                _ => return None,
            }
            rest = remainder;
        }
        if self.wildcard {
            return Some(RouteMatch {
                path_info: rest.to_string(),
                params,
            });
        }
        // An exact route tolerates one trailing slash.
        matches!(rest, "" | "/").then(|| RouteMatch {
            path_info: String::new(),
            params,
        })
    }

    /// Segment-by-segment precedence; compare lexicographically, higher wins.
    fn rank(&self) -> Vec<u8> {
        let mut rank: Vec<u8> = self
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(_) => RANK_LITERAL,
                Segment::Param(_) => RANK_PARAM,
            })
            .collect();
        rank.push(if self.wildcard {
            RANK_WILDCARD
        } else {
            RANK_END
        });
        rank
    }
}

/// Where a request goes: the component id and its route.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub component: String,
    pub route: Option<Route>,
}

/// The app's routing table.
#[derive(Debug, Clone, Default)]
pub struct Router {
    entries: Vec<RouteEntry>,
}

impl Router {
    pub fn new(entries: Vec<RouteEntry>) -> Self {
        Self { entries }
    }

    /// The best public route for `path`, with its match. Of two identical routes the one
    /// declared last wins, as in Spin.
    pub fn route(&self, path: &str) -> Option<(&RouteEntry, &Route, RouteMatch)> {
        self.entries
            .iter()
            .filter_map(|entry| {
                let route = entry.route.as_ref()?;
                route.matches(path).map(|found| (entry, route, found))
            })
            .max_by(|(_, a, _), (_, b, _)| a.rank().cmp(&b.rank()))
    }

    /// Routes declared twice: `(route, shadowed component, effective component)`.
    pub fn duplicates(&self) -> Vec<(&str, &str, &str)> {
        let mut duplicates = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let Some(route) = &entry.route else { continue };
            let later = self.entries[index + 1..]
                .iter()
                .rev()
                .find(|other| other.route.as_ref().is_some_and(|r| r.raw == route.raw));
            if let Some(effective) = later {
                duplicates.push((
                    route.raw(),
                    entry.component.as_str(),
                    effective.component.as_str(),
                ));
            }
        }
        duplicates
    }

    /// A trigger of `component`, private routes included.
    pub fn by_component(&self, component: &str) -> Option<&RouteEntry> {
        self.entries
            .iter()
            .find(|entry| entry.component == component)
    }

    /// The public entries, for the start-up banner.
    pub fn public(&self) -> impl Iterator<Item = (&str, &Route)> {
        self.entries
            .iter()
            .filter_map(|entry| Some((entry.component.as_str(), entry.route.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::new(
            routes
                .iter()
                .map(|(route, component)| RouteEntry {
                    component: component.to_string(),
                    route: Some(Route::parse(route).unwrap()),
                })
                .collect(),
        )
    }

    fn winner(router: &Router, path: &str) -> Option<String> {
        router
            .route(path)
            .map(|(entry, _, _)| entry.component.clone())
    }

    #[test]
    fn exact_beats_wildcard_and_longer_prefix_wins() {
        let router = router(&[
            ("/...", "root"),
            ("/api/...", "api"),
            ("/api/products/...", "products"),
            ("/api/products/special", "special"),
        ]);
        assert_eq!(winner(&router, "/anything").as_deref(), Some("root"));
        assert_eq!(winner(&router, "/api/x").as_deref(), Some("api"));
        assert_eq!(
            winner(&router, "/api/products").as_deref(),
            Some("products")
        );
        assert_eq!(
            winner(&router, "/api/products/1").as_deref(),
            Some("products")
        );
        assert_eq!(
            winner(&router, "/api/products/special").as_deref(),
            Some("special")
        );
    }

    #[test]
    fn exact_route_matches_only_itself() {
        let router = router(&[("/health", "health")]);
        assert!(winner(&router, "/health").is_some());
        assert!(winner(&router, "/health/").is_some());
        assert!(winner(&router, "/health/x").is_none());
        assert!(winner(&router, "/healthz").is_none());
    }

    #[test]
    fn path_info_and_params() {
        let route = Route::parse("/users/:id/...").unwrap();
        let found = route.matches("/users/42/orders/7").unwrap();
        assert_eq!(found.path_info, "/orders/7");
        assert_eq!(found.params, vec![("id".to_string(), "42".to_string())]);
        let wildcard = Route::parse("/test/...").unwrap();
        for (path, info) in [
            ("/test", ""),
            ("/test/", "/"),
            ("/test/hello", "/hello"),
            ("/test/hello/", "/hello/"),
        ] {
            assert_eq!(wildcard.matches(path).unwrap().path_info, info, "{path}");
        }
        assert!(wildcard.matches("/testing").is_none());
        assert_eq!(wildcard.component_route(), "/test");
        assert_eq!(Route::parse("/...").unwrap().component_route(), "");
        assert_eq!(
            Route::parse("/...")
                .unwrap()
                .matches("/")
                .unwrap()
                .path_info,
            "/"
        );
    }

    #[test]
    fn literal_beats_parameter() {
        let router = router(&[("/users/:id", "by-id"), ("/users/me", "me")]);
        assert_eq!(winner(&router, "/users/me").as_deref(), Some("me"));
        assert_eq!(winner(&router, "/users/7").as_deref(), Some("by-id"));
    }

    #[test]
    fn literal_segment_beats_parameter_before_length() {
        let router = router(&[("/a/:x/c", "param"), ("/a/b/...", "literal")]);
        assert_eq!(winner(&router, "/a/b/c").as_deref(), Some("literal"));
    }

    #[test]
    fn last_duplicate_wins_and_is_reported() {
        let router = router(&[("/x", "first"), ("/x", "second")]);
        assert_eq!(winner(&router, "/x").as_deref(), Some("second"));
        assert_eq!(router.duplicates(), vec![("/x", "first", "second")]);
    }

    #[test]
    fn malformed_routes_are_rejected() {
        assert!(Route::parse("api").is_err());
        assert!(Route::parse("/a/.../b").is_err());
        assert!(Route::parse("/a/:").is_err());
    }
}
