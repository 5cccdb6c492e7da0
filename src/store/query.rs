//! One statement, two backends, for write transactions.
//!
//! A write's SQL is written once with `$N` placeholders. On PostgreSQL it runs
//! through sqlx in the request's own transaction; on SQLite it runs on the group
//! writer's rusqlite connection, synchronously on the writer's thread
//! ([`super::group`]), where `$N` becomes SQLite's `?N` (the same numbered slot:
//! SQLite would number `$N` names by first appearance instead) and every statement
//! is prepared once and cached. That keeps sqlx's hand-off of each statement to
//! a worker thread (two thread switches per statement) off the write path.

use std::cell::RefCell;
use std::fmt;

use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::postgres::{PgArguments, PgRow, Postgres};

/// A sqlx query on PostgreSQL.
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// A value bound to a statement of either backend.
pub(crate) trait Param<'a>: Sync {
    fn bind_pg(&'a self, q: PgQuery<'a>) -> PgQuery<'a>;
    /// Encodes the value at the end of `args` (a statement held for later).
    fn add_pg(&'a self, args: &mut PgArguments) -> Result<(), sqlx::Error>;
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
}

impl<'a, T> Param<'a> for T
where
    T: sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + rusqlite::ToSql + Sync + 'a,
{
    fn bind_pg(&'a self, q: PgQuery<'a>) -> PgQuery<'a> {
        q.bind(self)
    }

    fn add_pg(&'a self, args: &mut PgArguments) -> Result<(), sqlx::Error> {
        sqlx::Arguments::add(args, self).map_err(sqlx::Error::Encode)
    }

    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }
}

/// The values of one statement, in `$N` order.
pub(crate) type Args<'a> = [&'a dyn Param<'a>];

/// `sql` with `args` bound, for PostgreSQL.
pub(crate) fn pg_query<'a>(sql: &'a str, args: &'a Args<'a>) -> PgQuery<'a> {
    args.iter().fold(sqlx::query(sql), |q, a| a.bind_pg(q))
}

/// A row type read by write transactions of both backends: sqlx's `FromRow` on
/// PostgreSQL, [`SqliteRow`] on SQLite.
pub(crate) trait Row: for<'r> sqlx::FromRow<'r, PgRow> + SqliteRow + Send + Unpin {}
impl<T> Row for T where T: for<'r> sqlx::FromRow<'r, PgRow> + SqliteRow + Send + Unpin {}

/// Reads a value from a rusqlite row: each field's column is found once per
/// statement ([`SqliteRow::sqlite_columns`]), then read from every row there.
pub(crate) trait SqliteRow: Sized {
    /// Where each field is among a statement's columns.
    type Columns;

    fn sqlite_columns(statement: &rusqlite::Statement<'_>) -> rusqlite::Result<Self::Columns>;

    fn from_sqlite_at(row: &rusqlite::Row<'_>, columns: &Self::Columns) -> rusqlite::Result<Self>;

    /// One row, its columns found for it alone.
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Self::from_sqlite_at(row, &Self::sqlite_columns(row.as_ref())?)
    }
}

/// The rows of a statement as `R`, its columns found once.
pub(crate) fn sqlite_rows<R: SqliteRow, P: rusqlite::Params>(
    statement: &mut rusqlite::Statement<'_>,
    params: P,
) -> rusqlite::Result<Vec<R>> {
    let columns = R::sqlite_columns(statement)?;
    statement.query_map(params, |row| R::from_sqlite_at(row, &columns))?.collect()
}

macro_rules! tuple_rows {
    ($($t:ident $i:tt),+) => {
        impl<$($t: rusqlite::types::FromSql),+> SqliteRow for ($($t,)+) {
            type Columns = ();

            fn sqlite_columns(_: &rusqlite::Statement<'_>) -> rusqlite::Result<()> {
                Ok(())
            }

            fn from_sqlite_at(row: &rusqlite::Row<'_>, _: &()) -> rusqlite::Result<Self> {
                Ok(($(row.get($i)?,)+))
            }
        }
    };
}
tuple_rows!(A 0);
tuple_rows!(A 0, B 1);
tuple_rows!(A 0, B 1, C 2);
tuple_rows!(A 0, B 1, C 2, D 3);
tuple_rows!(A 0, B 1, C 2, D 3, E 4);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5);

/// A record read by column name on every path: the struct, its `COLUMNS` (the
/// column list a SELECT names, in field order), sqlx's `FromRow` (PostgreSQL and
/// the SQLite pool) and [`SqliteRow`] (SQLite's writer and inline readers), all
/// from the one field list. A field read from a column of another name says so
/// after its type: `kind: String as "type"`.
macro_rules! record {
    (
        $(#[$meta:meta])*
        $vis:vis struct $ty:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $fty:ty $(as $column:literal)? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $ty { $( $(#[$fmeta])* $fvis $field: $fty ),* }

        impl $ty {
            /// The columns that make this record, in field order.
            #[allow(dead_code)]
            pub(crate) const COLUMNS: &'static str = $crate::store::query::column_list(concat!(
                $( $crate::store::query::record!(@column $field $($column)?), ", " ),*
            ));

            /// The column of each field, in field order.
            const COLUMN_NAMES: &'static [&'static str] =
                &[$( $crate::store::query::record!(@column $field $($column)?) ),*];
        }

        impl<'r, R: ::sqlx::Row> ::sqlx::FromRow<'r, R> for $ty
        where
            &'r str: ::sqlx::ColumnIndex<R>,
            $( $fty: ::sqlx::Decode<'r, R::Database> + ::sqlx::Type<R::Database>, )*
        {
            fn from_row(row: &'r R) -> Result<Self, ::sqlx::Error> {
                Ok($ty { $( $field: row.try_get($crate::store::query::record!(@column $field $($column)?))? ),* })
            }
        }

        impl $crate::store::query::SqliteRow for $ty {
            type Columns = [usize; $ty::COLUMN_NAMES.len()];

            fn sqlite_columns(statement: &rusqlite::Statement<'_>) -> rusqlite::Result<Self::Columns> {
                $crate::store::query::column_positions(statement, $ty::COLUMN_NAMES)
            }

            fn from_sqlite_at(row: &rusqlite::Row<'_>, at: &Self::Columns) -> rusqlite::Result<$ty> {
                let mut field = 0;
                let mut next = || {
                    field += 1;
                    at[field - 1]
                };
                Ok($ty { $( $field: row.get(next())? ),* })
            }
        }
    };
    (@column $field:ident $column:literal) => { $column };
    (@column $field:ident) => { stringify!($field) };
}
pub(crate) use record;

/// `"a, b, c, "` without its last separator (what [`record!`] builds its column
/// list from).
pub(crate) const fn column_list(joined: &'static str) -> &'static str {
    let Some((list, _)) = joined.as_bytes().split_last_chunk::<2>() else { return joined };
    match std::str::from_utf8(list) {
        Ok(list) => list,
        Err(_) => panic!("column names are UTF-8"),
    }
}

/// Where each of `names` is among a statement's columns. A SELECT usually lists
/// them in this order, so each name is first compared with the column after the
/// last one found; only when it differs are the columns searched.
pub(crate) fn column_positions<const N: usize>(
    statement: &rusqlite::Statement<'_>,
    names: &[&str],
) -> rusqlite::Result<[usize; N]> {
    let mut at = [0; N];
    let mut next = 0;
    for (slot, name) in at.iter_mut().zip(names) {
        *slot = match statement.column_name(next) {
            Ok(n) if n == *name => next,
            _ => statement.column_index(name)?,
        };
        next = *slot + 1;
    }
    Ok(at)
}

thread_local! {
    /// The last statement text translated on this thread, reused to avoid an
    /// allocation per statement.
    static SQLITE_SQL: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` with `sql`'s `$N` placeholders written as SQLite's `?N` (outside
/// quoted text).
pub(crate) fn with_sqlite_sql<T>(sql: &str, f: impl FnOnce(&str) -> T) -> T {
    if !sql.contains('$') {
        return f(sql);
    }
    SQLITE_SQL.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        let mut quoted = false;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' => quoted = !quoted,
                '$' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => {
                    buf.push('?');
                    continue;
                }
                _ => {}
            }
            buf.push(c);
        }
        f(&buf)
    })
}

/// Runs `sql` on a rusqlite connection; the changed row count.
pub(crate) fn sqlite_exec(c: &rusqlite::Connection, sql: &str, args: &Args<'_>) -> Result<u64, sqlx::Error> {
    with_sqlite_sql(sql, |sql| {
        let mut st = c.prepare_cached(sql)?;
        bind(&mut st, args)?;
        st.raw_execute().map(|n| n as u64)
    })
    .map_err(sqlite_error)
}

/// The rows of `sql` on a rusqlite connection.
pub(crate) fn sqlite_fetch<R: SqliteRow>(
    c: &rusqlite::Connection,
    sql: &str,
    args: &Args<'_>,
    limit: usize,
) -> Result<Vec<R>, sqlx::Error> {
    with_sqlite_sql(sql, |sql| {
        let mut st = c.prepare_cached(sql)?;
        bind(&mut st, args)?;
        let columns = R::sqlite_columns(&st)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(row) = rows.next()?
        {
            out.push(R::from_sqlite_at(row, &columns)?);
        }
        Ok(out)
    })
    .map_err(sqlite_error)
}

fn bind(st: &mut rusqlite::Statement<'_>, args: &Args<'_>) -> rusqlite::Result<()> {
    for (i, a) in args.iter().enumerate() {
        st.raw_bind_parameter(i + 1, a.sqlite())?;
    }
    Ok(())
}

/// A rusqlite failure as the sqlx error every store call returns; constraint
/// failures keep their kind, so a unique violation is still told apart.
pub(crate) fn sqlite_error(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => sqlx::Error::Database(Box::new(SqliteFailure {
            code: f.extended_code,
            message: message.unwrap_or_else(|| f.to_string()),
        })),
        rusqlite::Error::QueryReturnedNoRows => sqlx::Error::RowNotFound,
        other => super::inline::driver_error(other),
    }
}

/// An error SQLite reported, with its extended result code.
#[derive(Debug)]
pub(crate) struct SqliteFailure {
    code: i32,
    message: String,
}

impl fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLite code {})", self.message, self.code)
    }
}

impl std::error::Error for SqliteFailure {}

impl DatabaseError for SqliteFailure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::UniqueViolation,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_keep_their_numbers_on_sqlite() {
        let t = |sql: &str| with_sqlite_sql(sql, str::to_owned);
        assert_eq!(t("UPDATE t SET a = $2 WHERE b = $1 AND c = $10"), "UPDATE t SET a = ?2 WHERE b = ?1 AND c = ?10");
        assert_eq!(t("SELECT '$1', $1"), "SELECT '$1', ?1", "quoted text is left alone");
        assert_eq!(t("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn a_statement_binds_by_number_whatever_the_order_of_first_use() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a TEXT, b INTEGER)").unwrap();
        // `$2` comes first: bound by name order, `b` would get the text.
        sqlite_exec(&c, "INSERT INTO t (b, a) VALUES ($2, $1)", &[&"x", &7_i64]).unwrap();
        let rows: Vec<(String, i64)> =
            sqlite_fetch(&c, "SELECT a, b FROM t WHERE b = $1", &[&7_i64], usize::MAX).unwrap();
        assert_eq!(rows, vec![("x".to_owned(), 7)]);
    }

    #[test]
    fn a_unique_violation_is_told_apart() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a TEXT UNIQUE)").unwrap();
        sqlite_exec(&c, "INSERT INTO t (a) VALUES ($1)", &[&"x"]).unwrap();
        let e = sqlite_exec(&c, "INSERT INTO t (a) VALUES ($1)", &[&"x"]).unwrap_err();
        assert!(super::super::is_unique_violation(&e), "{e}");
        let missing: Result<Vec<(i64,)>, _> = sqlite_fetch(&c, "SELECT nope FROM t", &[], 1);
        assert!(!super::super::is_unique_violation(&missing.unwrap_err()));
    }
}
