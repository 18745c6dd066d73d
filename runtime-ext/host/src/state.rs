//! What one request's store holds, and the outbound-HTTP policy it enforces.

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::key_value::{KeyValueAccess, KeyValueView};
use crate::outbound::Outbound;
use crate::postgres::{PostgresAccess, PostgresView};
use crate::variables::ComponentVariables;

/// The data of a request's `Store`: a fresh one per request, dropped with the instance.
pub struct RequestState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub outbound: Outbound,
    pub key_value: KeyValueAccess,
    pub postgres: PostgresAccess,
    pub variables: ComponentVariables,
    pub limits: StoreLimits,
}

impl RequestState {
    pub fn key_value_view(&mut self) -> KeyValueView<'_> {
        KeyValueView {
            table: &mut self.table,
            access: &self.key_value,
        }
    }

    pub fn postgres_view(&mut self) -> PostgresView<'_> {
        PostgresView {
            table: &mut self.table,
            access: &self.postgres,
        }
    }

    pub fn variables_view(&mut self) -> &ComponentVariables {
        &self.variables
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
