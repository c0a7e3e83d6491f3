//! The two SQL backends behind one small interface: statements in a transaction, and queries.
//! `sqlite.rs` and `postgres.rs` are the backends; this file holds what they share.
//!
//! SQL is written once, with PostgreSQL's `$1…` placeholders; for SQLite they become `?1…`, which
//! mean the same there (numbered, reusable). Values are four kinds (null, integer, real, text)
//! because the schema uses only BIGINT, DOUBLE PRECISION and TEXT. SQLite runs through rusqlite
//! on blocking threads (one writer connection, two readers, WAL); PostgreSQL through
//! tokio-postgres with a few connections that reconnect by themselves when the server comes
//! back. Migrations (`migrations/*.sql`, embedded) run once each, in order, recorded in
//! `schema_migrations`; on PostgreSQL under an advisory lock so replicas can start together.

mod postgres;
mod sqlite;

use std::borrow::Cow;
use std::path::PathBuf;

use secrecy::SecretString;

use postgres::Postgres;
use sqlite::Sqlite;

/// The migrations, in order. `tests/suite/audit.rs` checks this list against `migrations/`.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "0001_init.sql",
    include_str!("../../../migrations/0001_init.sql"),
)];

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Real(x)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Null, Into::into)
    }
}

/// One result row, read by column position.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, DbError> {
        self.0
            .get(i)
            .ok_or_else(|| DbError::Decode(format!("no column {i}")))
    }

    pub fn text(&self, i: usize) -> Result<String, DbError> {
        self.opt_text(i)?
            .ok_or_else(|| DbError::Decode(format!("column {i} is NULL")))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(DbError::Decode(format!(
                "column {i}: expected text, got {other:?}"
            ))),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        self.opt_int(i)?
            .ok_or_else(|| DbError::Decode(format!("column {i} is NULL")))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(*n)),
            other => Err(DbError::Decode(format!(
                "column {i}: expected an integer, got {other:?}"
            ))),
        }
    }

    pub fn real(&self, i: usize) -> Result<f64, DbError> {
        self.opt_real(i)?
            .ok_or_else(|| DbError::Decode(format!("column {i} is NULL")))
    }

    pub fn opt_real(&self, i: usize) -> Result<Option<f64>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Real(x) => Ok(Some(*x)),
            Value::Int(n) => Ok(Some(*n as f64)),
            other => Err(DbError::Decode(format!(
                "column {i}: expected a number, got {other:?}"
            ))),
        }
    }
}

/// A statement with its parameters.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: Cow<'static, str>,
    pub params: Vec<Value>,
}

impl Stmt {
    pub fn new(sql: impl Into<Cow<'static, str>>, params: Vec<Value>) -> Self {
        Stmt {
            sql: sql.into(),
            params,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite database {path}: {message}")]
    Sqlite { path: String, message: String },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("unexpected data in the audit store: {0}")]
    Decode(String),
    #[error(
        "the audit store has schema version {found}, newer than this grader knows ({known}): upgrade grader, or point store.database_url at another database"
    )]
    NewerSchema { found: i64, known: i64 },
}

/// Where the audit store lives.
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(SecretString),
}

/// An open database of either kind.
pub enum Db {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

impl Db {
    /// Open (SQLite: create the file, migrate) or prepare to connect (PostgreSQL connects and
    /// migrates on first use, so a server that is down at start-up does not stop grading).
    pub async fn open(location: &Location) -> Result<Db, DbError> {
        match location {
            Location::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || Sqlite::open(&path))
                    .await
                    .map_err(|e| DbError::Sqlite {
                        path: "?".into(),
                        message: e.to_string(),
                    })?
                    .map(Db::Sqlite)
            }
            Location::Postgres(url) => Ok(Db::Postgres(Postgres::new(url.clone()))),
        }
    }

    /// For logs and `/readyz`: the kind and where, never a password.
    pub fn describe(&self) -> String {
        match self {
            Db::Sqlite(s) => s.describe(),
            Db::Postgres(p) => p.describe(),
        }
    }

    /// Run the statements in one transaction; the rows each changed.
    pub async fn transaction(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        match self {
            Db::Sqlite(s) => s.transaction(stmts).await,
            Db::Postgres(p) => p.transaction(stmts).await,
        }
    }

    pub async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        match self {
            Db::Sqlite(s) => s.query(sql, params).await,
            Db::Postgres(p) => p.query(sql, params).await,
        }
    }

    /// Make sure the schema is there (PostgreSQL connects if it has not yet).
    pub async fn ready(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(_) => Ok(()),
            Db::Postgres(p) => p.ready().await,
        }
    }
}

/// `$12` → `?12`: PostgreSQL's numbered placeholders in SQLite's spelling (same meaning).
/// Placeholders inside string literals are left alone.
pub fn sqlite_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_string = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_string = !in_string;
        }
        if c == '$' && !in_string && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn now_ms() -> i64 {
    super::time::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_sqlites() {
        assert_eq!(
            sqlite_sql("SELECT a FROM t WHERE b = $1 AND c > $12"),
            "SELECT a FROM t WHERE b = ?1 AND c > ?12"
        );
        assert_eq!(sqlite_sql("SELECT '$1', $2"), "SELECT '$1', ?2");
        assert_eq!(sqlite_sql("SELECT $ FROM t"), "SELECT $ FROM t");
    }
}
