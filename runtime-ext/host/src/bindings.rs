//! Host bindings for the Spin interfaces spinyard implements (`wit/`, copied from spin-sdk 7).

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-imports",
    // WIT `async func`s get `async | store` by themselves; the others are `async` too, as
    // Postgres' blocking `query`/`execute` await the network. `trappable` lets a host bug
    // trap the guest (Err) while ordinary failures reach it as the interface's error (Ok(Err)).
    imports: { default: async | trappable },
    with: {
        "spin:key-value/key-value.store": crate::key_value::OpenStore,
        "spin:postgres/postgres.connection": crate::postgres::Connection,
        "spin:postgres/postgres.connection-builder": crate::postgres::ConnectionBuilder,
        "wasi:keyvalue/store.bucket": crate::key_value::Bucket,
        "wasi:keyvalue/atomics.cas": crate::key_value::Cas,
    },
});

pub use spin::key_value::key_value;
pub use spin::postgres::postgres;
pub use spin::variables::variables;
pub use wasi::keyvalue as wasi_keyvalue;
