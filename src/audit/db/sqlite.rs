//! SQLite through rusqlite: one writer connection and a few readers (WAL lets them read while
//! it writes), each used on a blocking thread; migrations under `BEGIN IMMEDIATE`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{DbError, MIGRATIONS, Row, Stmt, Value, now_ms, sqlite_sql};

/// A SQLite file: one writer connection and a few readers (WAL lets them read while it writes).
pub struct Sqlite {
    path: PathBuf,
    writer: Arc<Mutex<rusqlite::Connection>>,
    readers: Vec<Arc<Mutex<rusqlite::Connection>>>,
    next: AtomicUsize,
}

const SQLITE_READERS: usize = 2;

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Real(x) => ToSqlOutput::Borrowed(ValueRef::Real(*x)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl Sqlite {
    pub fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn err(path: &Path, e: impl std::fmt::Display) -> DbError {
        DbError::Sqlite {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn connect(path: &Path) -> Result<rusqlite::Connection, DbError> {
        let c = rusqlite::Connection::open(path).map_err(|e| Self::err(path, e))?;
        // WAL: readers do not wait for the writer; NORMAL: durable at checkpoints, and a
        // crash loses at most the last transactions, never corrupts. A busy timeout instead
        // of SQLITE_BUSY errors when another process (a CLI purge) holds the write lock.
        c.busy_timeout(Duration::from_secs(5))
            .map_err(|e| Self::err(path, e))?;
        c.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| Self::err(path, e))?;
        c.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| Self::err(path, e))?;
        c.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| Self::err(path, e))?;
        Ok(c)
    }

    pub(super) fn open(path: &Path) -> Result<Sqlite, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Self::err(path, e))?;
        }
        let mut writer = Self::connect(path)?;
        Self::migrate(&mut writer).map_err(|e| match e {
            DbError::Sqlite { message, .. } => Self::err(path, message),
            other => other,
        })?;
        let readers = (0..SQLITE_READERS)
            .map(|_| Self::connect(path).map(|c| Arc::new(Mutex::new(c))))
            .collect::<Result<_, _>>()?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(writer)),
            readers,
            next: AtomicUsize::new(0),
        })
    }

    fn migrate(c: &mut rusqlite::Connection) -> Result<(), DbError> {
        let e = |e: rusqlite::Error| DbError::Sqlite {
            path: String::new(),
            message: e.to_string(),
        };
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .map_err(e)?;
        for (version, name, sql) in MIGRATIONS {
            // IMMEDIATE takes the write lock first, so two processes do not both apply it.
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(e)?;
            let newest: Option<i64> = tx
                .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                    r.get(0)
                })
                .map_err(e)?;
            let known = MIGRATIONS.last().map_or(0, |m| m.0);
            if let Some(found) = newest.filter(|v| *v > known) {
                return Err(DbError::NewerSchema { found, known });
            }
            let applied: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM schema_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .map_err(e)?;
            if applied == 0 {
                tx.execute_batch(sql).map_err(e)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                    rusqlite::params![version, name, now_ms()],
                )
                .map_err(e)?;
            }
            tx.commit().map_err(e)?;
        }
        Ok(())
    }

    pub(super) async fn transaction(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        let conn = self.writer.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            let e = |e: rusqlite::Error| Self::err(&path, e);
            let tx = c.transaction().map_err(e)?;
            let mut changed = Vec::with_capacity(stmts.len());
            for s in &stmts {
                let mut st = tx.prepare_cached(&sqlite_sql(&s.sql)).map_err(e)?;
                changed.push(
                    st.execute(rusqlite::params_from_iter(s.params.iter()))
                        .map_err(e)? as u64,
                );
            }
            tx.commit().map_err(e)?;
            Ok(changed)
        })
        .await
        .map_err(|e| Self::err(&self.path, e))?
    }

    pub(super) async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[i].clone();
        let path = self.path.clone();
        let sql = sqlite_sql(sql);
        tokio::task::spawn_blocking(move || {
            use rusqlite::types::ValueRef;
            let c = conn.lock().unwrap_or_else(|p| p.into_inner());
            let e = |e: rusqlite::Error| Self::err(&path, e);
            let mut st = c.prepare_cached(&sql).map_err(e)?;
            let n = st.column_count();
            let mut rows = st
                .query(rusqlite::params_from_iter(params.iter()))
                .map_err(e)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(e)? {
                let mut vals = Vec::with_capacity(n);
                for i in 0..n {
                    vals.push(match r.get_ref(i).map_err(e)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(v) => Value::Int(v),
                        ValueRef::Real(v) => Value::Real(v),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Value::Text(String::from_utf8_lossy(t).into_owned())
                        }
                    });
                }
                out.push(Row(vals));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Self::err(&self.path, e))?
    }
}
