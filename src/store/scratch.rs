//! Throwaway databases for the store's own tests: PostgreSQL ones (plan tests,
//! which need a database of their own to fill and analyze) and SQLite ones.

use sqlx::Connection;
use uuid::Uuid;

use super::{Db, DbOptions};

/// Drops its database however the test ends.
pub(crate) struct Dropped {
    admin: String,
    name: String,
}

impl Drop for Dropped {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}

/// A new, migrated database on `TEST_POSTGRES_URL`'s server, or `None` when no
/// server is given (refused under CI: the PostgreSQL half may not be skipped).
pub(crate) async fn postgres() -> Option<(Db, Dropped)> {
    let Some(admin) = std::env::var("TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(std::env::var("CI").is_err(), "CI must set TEST_POSTGRES_URL: the PostgreSQL half may not be skipped");
        return None;
    };
    let name = format!("clientele_plan_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    let dropped = Dropped { admin: admin.clone(), name: name.clone() };
    let (prefix, _) = admin.rsplit_once('/').expect("TEST_POSTGRES_URL names a database");
    let db = Db::connect(&format!("{prefix}/{name}"), &DbOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    Some((db, dropped))
}

/// A new, migrated SQLite database in a folder removed with the returned guard.
pub(crate) async fn sqlite() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("scratch.db").display()), &DbOptions::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (dir, db)
}
