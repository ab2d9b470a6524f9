//! The contract's bindings, generated once from the repository's `wit/`:
//! a transform never calls `wit_bindgen` itself. Public for the `export!`
//! macro; transforms use the types this crate re-exports.

wit_bindgen::generate!({
    path: "../../wit",
    world: "transform",
    pub_export_macro: true,
    export_macro_name: "export_guest",
    default_bindings_module: "ferry_transform::bindings",
});
