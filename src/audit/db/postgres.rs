//! PostgreSQL through tokio-postgres: a few connections, each used by one operation at a time
//! and reconnected on its next use after it broke; migrations under an advisory lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{DbError, MIGRATIONS, Row, Stmt, Value, now_ms};

/// A few connections, each used by one operation at a time (a transaction needs its own), each
/// reconnected on the next use after it broke. Connection 0 is used for writes.
pub struct Postgres {
    url: SecretString,
    /// The URL without its password, for messages.
    redacted: String,
    conns: Vec<tokio::sync::Mutex<Option<tokio_postgres::Client>>>,
    next: AtomicUsize,
    migrated: tokio::sync::OnceCell<()>,
}

const PG_CONNECTIONS: usize = 4;
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Any constant works; it only has to be the same for every grader sharing the database.
const MIGRATION_LOCK: i64 = 0x6772_6164_6572;

impl tokio_postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use tokio_postgres::types::Type;
        match self {
            Value::Null => Ok(tokio_postgres::types::IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::FLOAT8 => (*n as f64).to_sql(ty, out),
                _ => n.to_sql(ty, out),
            },
            Value::Real(x) => match *ty {
                Type::FLOAT4 => (*x as f32).to_sql(ty, out),
                _ => x.to_sql(ty, out),
            },
            Value::Text(s) => s.to_sql(ty, out),
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.to_sql(ty, out)
    }
}

fn pg_err(e: tokio_postgres::Error) -> DbError {
    // The driver's Display is terse ("db error"); the server's message is in the source.
    let mut msg = e.to_string();
    if let Some(db) = e.as_db_error() {
        msg = format!("{msg}: {}", db.message());
    } else if let Some(src) = std::error::Error::source(&e) {
        msg = format!("{msg}: {src}");
    }
    DbError::Postgres(msg)
}

fn pg_row(r: &tokio_postgres::Row) -> Result<Row, DbError> {
    use tokio_postgres::types::Type;
    let mut vals = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let ty = col.type_();
        let v = match *ty {
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => r
                .try_get::<_, Option<String>>(i)
                .map(|v| v.map(Value::Text)),
            Type::INT8 => r.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::Int)),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)
                .map(|v| v.map(|n| Value::Int(n.into()))),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)
                .map(|v| v.map(|n| Value::Int(n.into()))),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map(|v| v.map(Value::Real)),
            Type::FLOAT4 => r
                .try_get::<_, Option<f32>>(i)
                .map(|v| v.map(|x| Value::Real(x.into()))),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)
                .map(|v| v.map(|b| Value::Int(b.into()))),
            _ => {
                return Err(DbError::Decode(format!(
                    "column {} has type {ty}, which the audit store does not use",
                    col.name()
                )));
            }
        }
        .map_err(pg_err)?;
        vals.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(vals))
}

fn params_of(params: &[Value]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Postgres {
    pub fn describe(&self) -> String {
        format!("postgres:{}", self.redacted)
    }

    /// Connect (and migrate) now rather than on first use.
    pub(super) async fn ready(&self) -> Result<(), DbError> {
        self.conn(0).await.map(|_| ())
    }

    pub(super) fn new(url: SecretString) -> Postgres {
        Postgres {
            redacted: redact_url(url.expose_secret()),
            url,
            conns: (0..PG_CONNECTIONS)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(1),
            migrated: tokio::sync::OnceCell::new(),
        }
    }

    /// Connection `i`, (re)connected if needed, with the schema migrated.
    async fn conn(
        &self,
        i: usize,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<tokio_postgres::Client>>, DbError> {
        let mut guard = self.conns[i].lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = None;
            let connect = tokio_postgres::connect(self.url.expose_secret(), tokio_postgres::NoTls);
            let (client, connection) = tokio::time::timeout(PG_CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| {
                    DbError::Postgres(format!(
                        "connecting to {} timed out after {} s",
                        self.redacted,
                        PG_CONNECT_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(|e| match pg_err(e) {
                    DbError::Postgres(m) => {
                        DbError::Postgres(format!("connecting to {}: {m}", self.redacted))
                    }
                    other => other,
                })?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "PostgreSQL connection closed");
                }
            });
            *guard = Some(client);
        }
        if !self.migrated.initialized() {
            let client = guard.as_mut().expect("connected above");
            self.migrated
                .get_or_try_init(|| Self::migrate(client))
                .await?;
        }
        Ok(guard)
    }

    async fn migrate(c: &mut tokio_postgres::Client) -> Result<(), DbError> {
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        let result = Self::migrate_locked(c).await;
        let unlock = c
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err);
        result.and(unlock.map(|_| ()))
    }

    async fn migrate_locked(c: &mut tokio_postgres::Client) -> Result<(), DbError> {
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(pg_err)?;
        let newest: Option<i64> = c
            .query_one("SELECT MAX(version) FROM schema_migrations", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some(found) = newest.filter(|v| *v > known) {
            return Err(DbError::NewerSchema { found, known });
        }
        for (version, name, sql) in MIGRATIONS {
            if newest.is_some_and(|n| n >= *version) {
                continue;
            }
            let tx = c.transaction().await.map_err(pg_err)?;
            tx.batch_execute(sql).await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[version, name, &now_ms()],
            )
            .await
            .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
        }
        Ok(())
    }

    /// A broken connection is dropped so the next use reconnects.
    fn forget_if_closed(guard: &mut Option<tokio_postgres::Client>) {
        if guard.as_ref().is_some_and(|c| c.is_closed()) {
            *guard = None;
        }
    }

    pub(super) async fn transaction(&self, stmts: Vec<Stmt>) -> Result<Vec<u64>, DbError> {
        let mut guard = self.conn(0).await?;
        let client = guard.as_mut().expect("connected");
        let result = async {
            let tx = client.transaction().await.map_err(pg_err)?;
            let mut changed = Vec::with_capacity(stmts.len());
            for s in &stmts {
                changed.push(
                    tx.execute(s.sql.as_ref(), &params_of(&s.params))
                        .await
                        .map_err(pg_err)?,
                );
            }
            tx.commit().await.map_err(pg_err)?;
            Ok(changed)
        }
        .await;
        Self::forget_if_closed(&mut guard);
        result
    }

    pub(super) async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        // Readers take connections 1.. in turn (0 is the writer's).
        let i = 1 + self.next.fetch_add(1, Ordering::Relaxed) % (PG_CONNECTIONS - 1);
        let mut guard = self.conn(i).await?;
        let client = guard.as_ref().expect("connected");
        let result = client.query(sql, &params_of(&params)).await.map_err(pg_err);
        Self::forget_if_closed(&mut guard);
        result?.iter().map(pg_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://grader:s3cret@db:5432/grades"),
            "postgres://grader:***@db:5432/grades"
        );
        assert_eq!(redact_url("postgres://db/grades"), "postgres://db/grades");
    }
}
