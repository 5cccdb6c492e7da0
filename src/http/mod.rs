//! HTTP plumbing shared by every route: correlation ids, request logs and
//! metrics, body and header extraction, and `Idempotency-Key` handling.

pub mod correlation;
pub mod deadline;
pub mod extract;
pub mod headers;
pub mod idempotency;
pub mod observe;
pub mod rate;
pub mod server;
pub mod spool;
