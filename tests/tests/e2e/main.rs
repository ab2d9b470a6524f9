//! Ferry's end-to-end tests, one module per area, in one test binary: one
//! link of Ferry and its dependencies instead of one per area, and the test
//! threads shared across areas rather than run area after area.
//!
//! Each test starts the servers it needs (see `ferry_tests::servers`) on
//! free ports with fresh data, so tests of different areas run side by side.

mod cache;
mod cli;
mod connections;
mod iggy_to_mongo;
mod kubernetes;
mod languages;
mod mongo_to_iggy;
mod new_project;
mod operating;
mod parallel;
mod reload;
mod sdks;
mod standby;
mod transforms;
mod wrong_server;
