//! Service chaining: a request to `http://<component-id>.spin.internal` is served in-process by
//! that component, never over the network.
//!
//! Outbound HTTP ([`crate::outbound_http`]) reaches the app only through [`Chain`], which the
//! app implements: the app owns the instances whose requests go out, so they hold it weakly and
//! know nothing else of it.

use std::sync::Arc;

use futures::future::BoxFuture;
use http::{Request, Response};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The suffix of service-chaining hosts.
const SUFFIX: &str = ".spin.internal";

/// The component a (lower-case) host chains to: `<component-id>` of
/// `<component-id>.spin.internal`; any other host is a network destination.
pub fn target(host: &str) -> Option<&str> {
    host.strip_suffix(SUFFIX)
        .filter(|target| !target.contains('.'))
}

/// What serves chained requests.
pub trait Chain: Send + Sync {
    /// Serves `request` in component `target`, as Spin does: a component no trigger names is
    /// `DestinationNotFound`.
    fn chain(
        self: Arc<Self>,
        target: String,
        request: Request<WasiBody>,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, HttpError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_component_id_under_spin_internal_is_chained() {
        assert_eq!(target("users.spin.internal"), Some("users"));
        assert_eq!(target("a.b.spin.internal"), None);
        assert_eq!(target("spin.internal"), None);
        assert_eq!(target("users.spin.internal.example.com"), None);
        assert_eq!(target("example.com"), None);
    }
}
