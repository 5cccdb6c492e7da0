//! The API conformance suite: every test runs against the real HTTP server, once
//! on SQLite and once on PostgreSQL.

mod helpers;
mod hostile;

mod auth;
mod bulk;
mod credit;
mod custom;
mod customers;
mod deploy;
mod errors;
mod events;
mod idempotency;
mod identity;
mod nodes;
mod ops;
mod outbox;
mod portal;
mod process;
mod search;
mod transactions;
mod vault;
mod verification;
mod webhooks;
