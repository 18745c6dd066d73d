//! What one instance's store holds: the context every capability reads, shared by the requests
//! the instance serves (see [`crate::instances`]).

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::key_value::{KeyValueAccess, KeyValueView};
use crate::outbound_http::Outbound;
use crate::postgres::{PostgresAccess, PostgresView};
use crate::variables::ComponentVariables;

/// The data of an instance's `Store`, dropped with the instance. Nothing in it belongs to one
/// request: requests in one instance share it, as they share the guest's memory.
pub struct InstanceState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub outbound: Outbound,
    pub key_value: KeyValueAccess,
    pub postgres: PostgresAccess,
    pub variables: ComponentVariables,
    pub limits: StoreLimits,
}

impl InstanceState {
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

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
