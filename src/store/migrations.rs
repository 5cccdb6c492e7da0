//! The schema's migrations, embedded in the binary: `build.rs` lists the files of
//! `migrations/sqlite` and `migrations/postgres`, and sqlx's `Migrator` applies
//! them. Each is named and checksummed as sqlx's own directory reader does, so a
//! database migrated by any earlier build is recognised.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use super::Backend;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

static SQLITE_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(SQLITE, i64::MAX));
static POSTGRES_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(POSTGRES, i64::MAX));

/// The migrations of `backend`.
pub(crate) fn of(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    }
}

/// SQLite's migrations before `version` (what an older build applied).
#[cfg(test)]
pub(crate) fn sqlite_before(version: i64) -> Migrator {
    migrator(SQLITE, version)
}

fn migrator(files: &'static [(i64, &'static str, &'static str)], before: i64) -> Migrator {
    let embedded = Embedded(files.iter().filter(|(version, ..)| *version < before).map(migration).collect());
    // Resolving an embedded list does no I/O: the future is ready when first polled.
    futures_executor::block_on(Migrator::new(embedded)).expect("embedded migrations resolve")
}

fn migration(&(version, description, sql): &(i64, &'static str, &'static str)) -> Migration {
    let no_tx = sql.starts_with("-- no-transaction");
    Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, Cow::Borrowed(sql), no_tx)
}

#[derive(Debug)]
struct Embedded(Vec<Migration>);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        Box::pin(std::future::ready(Ok(self.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Databases migrated by builds that read the folders with sqlx's own reader
    /// (its `migrate!` macro) hold these versions and checksums: a difference
    /// would make every such database refuse to start.
    #[tokio::test]
    async fn the_embedded_migrations_are_what_sqlx_reads_from_the_folders() {
        for (backend, dir) in [(Backend::Sqlite, "migrations/sqlite"), (Backend::Postgres, "migrations/postgres")] {
            let read = Migrator::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).await.unwrap();
            let key = |m: &Migration| (m.version, m.description.to_string(), m.checksum.to_vec(), m.no_tx);
            let embedded: Vec<_> = of(backend).iter().map(key).collect();
            assert_eq!(embedded, read.iter().map(key).collect::<Vec<_>>(), "{dir}");
            assert!(embedded.len() >= 19, "{dir}: {} migrations", embedded.len());
        }
    }
}
