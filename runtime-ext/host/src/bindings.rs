//! Host bindings for the Spin interfaces spinyard implements (`wit/`, copied from spin-sdk 7).

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-imports",
    // WIT `async func`s get `async | store` by themselves; `trappable` lets a host bug trap
    // the guest (Err) while ordinary failures reach it as the interface's error (Ok(Err)).
    imports: { default: trappable },
    with: { "spin:key-value/key-value.store": crate::key_value::OpenStore },
});

pub use spin::key_value::key_value;
pub use spin::variables::variables;
