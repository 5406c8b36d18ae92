//! API tests through real HTTP: each test starts the whole server on a random port
//! against a fresh database, and every test runs on SQLite and on PostgreSQL.

mod bad_input;
mod booking;
mod browser;
mod cache;
mod clinic;
mod dashboard;
mod directory;
mod dispatch;
mod fuzz_regressions;
mod helpers;
mod idempotency;
mod lifecycle;
mod live;
mod logs;
mod observability;
mod openapi;
mod outbox;
mod paging;
mod patients;
mod queue;
mod receiver;
#[path = "../../../cache/tests/common/mod.rs"]
mod redis_relay;
mod security;
mod seed;
mod shutdown;
mod tenancy;
mod timeouts;
mod users;
mod webhook;
