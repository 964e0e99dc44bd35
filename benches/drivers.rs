//! What sqlx's `Any` driver costs against the native ones, on the query shape the token
//! path runs most: a primary-key lookup of one row of twelve columns, decoded. Both pools
//! are sqlx defaults without the ping before each use (as the server runs), on the same
//! database with latchkey's schema.
//!
//! `cargo bench --bench drivers` (SQLite in a temp dir); with
//! `LATCHKEY_BENCH_DATABASE_URL=postgres://…` (a throwaway database: its schema is migrated
//! and a session row added) PostgreSQL too.

use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolOptions;
use sqlx::{Database, Pool, Row};

const LOOKUP: &str = "SELECT id, user_id, client_id, scope, amr, auth_time, ip, user_agent, created_at, \
                      last_used_at, expires_at, revoked_at FROM sessions WHERE id = $1";

/// Fetches the session row and decodes every column, as `store::sessions` does.
async fn lookup<DB: Database>(pool: &Pool<DB>) -> i64
where
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'r> &'r str: sqlx::ColumnIndex<DB::Row>,
    for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<String>: sqlx::Decode<'r, DB>,
    for<'r> i64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<i64>: sqlx::Decode<'r, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let row = sqlx::query::<DB>(LOOKUP).bind("bench-session").fetch_one(pool).await.unwrap();
    let mut sum = 0;
    for text in ["id", "user_id", "client_id", "scope", "amr"] {
        sum += row.get::<String, _>(text).len() as i64;
    }
    for text in ["ip", "user_agent"] {
        sum += row.get::<Option<String>, _>(text).map_or(0, |s| s.len() as i64);
    }
    for number in ["auth_time", "created_at", "last_used_at", "expires_at"] {
        sum += row.get::<i64, _>(number);
    }
    sum + row.get::<Option<i64>, _>("revoked_at").unwrap_or(0)
}

fn drivers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![("sqlite", format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display()))];
    if let Ok(url) = std::env::var("LATCHKEY_BENCH_DATABASE_URL") {
        urls.push(("postgres", url));
    }
    sqlx::any::install_default_drivers();
    for (name, url) in urls {
        let any = rt.block_on(async {
            let db = latchkey::store::Db::connect(&url).await.unwrap();
            db.migrate().await.unwrap();
            db.close().await;
            let any = AnyPoolOptions::new().test_before_acquire(false).connect(&url).await.unwrap();
            seed(&any).await;
            any
        });
        let mut group = c.benchmark_group(format!("drivers/{name}"));
        group.bench_function("any", |b| b.to_async(&rt).iter(|| lookup(&any)));
        if name == "sqlite" {
            let native = rt.block_on(native::<sqlx::Sqlite>(&url));
            group.bench_function("native", |b| b.to_async(&rt).iter(|| lookup(&native)));
        } else {
            let native = rt.block_on(native::<sqlx::Postgres>(&url));
            group.bench_function("native", |b| b.to_async(&rt).iter(|| lookup(&native)));
        }
        group.finish();
    }
}

async fn native<DB: Database>(url: &str) -> Pool<DB> {
    PoolOptions::<DB>::new().test_before_acquire(false).connect(url).await.unwrap()
}

/// One client, user and session for the lookup, replacing those of an earlier run.
async fn seed(pool: &sqlx::AnyPool) {
    for sql in [
        "DELETE FROM sessions WHERE id = 'bench-session'",
        "DELETE FROM users WHERE id = 'bench-user'",
        "DELETE FROM clients WHERE id = 'bench-client'",
        "INSERT INTO clients (id, name, grants, scopes, audiences, created_at, updated_at)
         VALUES ('bench-client', 'bench', 'refresh_token', 'api', '', 0, 0)",
        "INSERT INTO users (id, username, email, password_hash, email_verified, status, created_at, updated_at)
         VALUES ('bench-user', 'bench', 'bench@example.com', 'x', 1, 'active', 0, 0)",
        "INSERT INTO sessions (id, user_id, client_id, scope, amr, auth_time, ip, user_agent, created_at,
                               last_used_at, expires_at)
         VALUES ('bench-session', 'bench-user', 'bench-client', 'api', 'pwd', 1, '127.0.0.1', 'bench', 1, 1, 2)",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

criterion_group!(benches, drivers);
criterion_main!(benches);
