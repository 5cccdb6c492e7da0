//! Backups of a SQLite database, and the files the service keeps private.
//!
//! `backup` copies a live database with `VACUUM INTO`: one read transaction,
//! so the copy is the database as of one commit while servers go on writing;
//! the copy is compacted and checked before it is reported. `restore` puts a
//! copy in place of a database no server is using: a serving process holds a
//! shared lock on the database file ([`ServingLock`]) and `restore` needs it
//! exclusively. PostgreSQL has its own tools (`pg_dump`, `pg_restore`): the
//! command says so rather than pretending.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, bail, ensure};
use serde::Serialize;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// What to say instead of backing up or restoring PostgreSQL.
pub const POSTGRES_RECIPE: &str = "this database is PostgreSQL: back it up with its own tools, for example\n  \
    pg_dump --format=custom --file=clientele.dump \"$CLIENTELE_DATABASE_URL\"\n\
    and restore into an empty database with\n  \
    pg_restore --no-owner --dbname=\"$CLIENTELE_DATABASE_URL\" clientele.dump\n\
    (README, \"Backups\"). The master key is not in the database: keep it apart; payment data cannot be read without it.";

/// The reminder every backup and restore prints.
pub const KEY_REMINDER: &str = "The master key is not in the backup: keep it (CLIENTELE_MASTER_KEY, or master.key in \
    the data folder) apart from the database and its backups; payment data cannot be read without it.";

/// The file of a `sqlite://` URL; `None` for any other database.
pub fn sqlite_file(url: &str) -> anyhow::Result<Option<PathBuf>> {
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url).context("parsing the SQLite URL")?;
    Ok(Some(options.get_filename().to_owned()))
}

/// Creates `dir` (and its parents) readable by its owner only, when missing.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Opens `path` for writing, readable by its owner only when it creates it:
/// `new` refuses a file that exists, else one that exists is opened as it is.
pub fn open_private(path: &Path, new: bool) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(false);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

/// Makes the database file (and its WAL and shared-memory files, which SQLite
/// creates with the database file's mode) readable by its owner only: created
/// so when missing, narrowed when it exists.
pub fn private_database(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    open_private(path, false).with_context(|| format!("opening {}", path.display()))?;
    #[cfg(unix)]
    for file in [path.to_owned(), with_suffix(path, "-wal"), with_suffix(path, "-shm")] {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", file.display()))?;
                tracing::info!(path = %file.display(), "made the database file readable by its owner only (0600)");
            }
            _ => {}
        }
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A serving process's hold on its SQLite database: `restore` cannot replace
/// the file under it. Released when dropped (or when the process ends, however).
pub struct ServingLock(#[allow(dead_code)] File);

impl ServingLock {
    /// A shared hold (several processes may serve one file, as they may read it).
    pub fn take(path: &Path) -> anyhow::Result<ServingLock> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock_shared() {
            Ok(()) => Ok(ServingLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!("{} is being restored; start the service once the restore has ended", path.display())
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e).context("locking the database file"),
        }
    }
}

/// What a backup wrote.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupReport {
    pub backup: PathBuf,
    pub bytes: u64,
    pub merchants: i64,
    pub customers: i64,
}

async fn open_read_only(path: &Path) -> anyhow::Result<sqlx::SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("opening {}", path.display()))
}

/// Checks that `path` is a whole Clientele database; its merchants and customers.
async fn check_copy(path: &Path) -> anyhow::Result<(i64, i64)> {
    let mut c = open_read_only(path).await?;
    let (verdict,): (String,) = sqlx::query_as("PRAGMA quick_check").fetch_one(&mut c).await?;
    ensure!(verdict == "ok", "{} is damaged: {verdict}", path.display());
    let counts: Result<(i64, i64), _> =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM merchants), (SELECT COUNT(*) FROM customers)")
            .fetch_one(&mut c)
            .await;
    c.close().await?;
    counts.with_context(|| format!("{} is not a Clientele database", path.display()))
}

/// Copies the database at `url` to `to` (a file that must not exist yet),
/// consistently while other processes write.
pub async fn backup(url: &str, to: &Path) -> anyhow::Result<BackupReport> {
    let Some(from) = sqlite_file(url)? else { bail!("{POSTGRES_RECIPE}") };
    ensure!(from.exists(), "there is no database at {}", from.display());
    // Created empty and private first: VACUUM INTO writes into an empty file,
    // and keeps its mode.
    open_private(to, true).with_context(|| format!("creating {} (it must not exist yet)", to.display()))?;
    let copied = async {
        let mut c = open_read_only(&from).await?;
        let target = to.to_str().context("the backup's path is not UTF-8")?;
        sqlx::query("VACUUM INTO ?").bind(target).execute(&mut c).await.context("copying the database")?;
        c.close().await?;
        let file = File::open(to)?;
        file.sync_all()?;
        let (merchants, customers) = check_copy(to).await?;
        Ok::<_, anyhow::Error>(BackupReport {
            bytes: file.metadata()?.len(),
            backup: to.to_owned(),
            merchants,
            customers,
        })
    }
    .await;
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied
}

/// What a restore did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub database: PathBuf,
    /// Where the database it replaced was moved (nothing is deleted).
    pub replaced: Option<PathBuf>,
    pub merchants: i64,
    pub customers: i64,
}

/// Puts the backup `from` in place of the database at `url`, which no server
/// may be using; the database it replaces is kept beside it, renamed.
pub async fn restore(url: &str, from: &Path) -> anyhow::Result<RestoreReport> {
    let Some(to) = sqlite_file(url)? else { bail!("{POSTGRES_RECIPE}") };
    let (merchants, customers) = check_copy(from).await?;
    if let Some(dir) = to.parent() {
        private_dir(dir)?;
    }
    // Held to the end: a server starting meanwhile is refused.
    let _hold = match File::open(&to) {
        Ok(f) => match f.try_lock() {
            Ok(()) => Some(f),
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!("a server is using {}: stop it before restoring over it", to.display())
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).context("locking the database file"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("opening {}", to.display())),
    };
    let incoming = with_suffix(&to, ".restoring");
    let _ = std::fs::remove_file(&incoming);
    let mut out = open_private(&incoming, true).with_context(|| format!("creating {}", incoming.display()))?;
    std::io::copy(&mut File::open(from)?, &mut out).context("copying the backup")?;
    out.sync_all()?;
    let replaced = if _hold.is_some() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let aside = with_suffix(&to, &format!(".replaced-{stamp}"));
        std::fs::rename(&to, &aside).with_context(|| format!("moving {} aside", to.display()))?;
        // The old database's WAL holds its last commits; it goes aside with it.
        for suffix in ["-wal", "-shm"] {
            let f = with_suffix(&to, suffix);
            if f.exists() {
                std::fs::rename(&f, with_suffix(&aside, suffix))?;
            }
        }
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&incoming, &to).with_context(|| format!("putting the backup in place at {}", to.display()))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(RestoreReport { database: to, replaced, merchants, customers })
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_database_and_its_wal_created_wide_are_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new/clientele.db");
        private_database(&db).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&db), mode(db.parent().unwrap())), (0o600, 0o700), "created private");
        let wal = with_suffix(&db, "-wal");
        std::fs::write(&wal, b"").unwrap();
        for f in [&db, &wal] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        private_database(&db).unwrap();
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600), "narrowed");
    }
}
