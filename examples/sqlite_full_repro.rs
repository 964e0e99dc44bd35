//! Minimal case for docs/upstream/sqlx-sqlite-failed-commit.md: after SQLite rolls a
//! transaction back on its own (SQLITE_FULL), sqlx-sqlite's transaction depth stays at 1, and
//! later acknowledged commits on that connection are lost.
//! Run: cargo run --example sqlite_full_repro
use sqlx::any::AnyPoolOptions;
use sqlx::{Connection, Executor};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("repro.db").display());
    let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await?;
    pool.execute("CREATE TABLE t (v TEXT)").await?;
    pool.execute("PRAGMA max_page_count = 2").await?; // the file is 2 pages now: "disk full"

    let mut tx = pool.begin().await?;
    let full = sqlx::query("INSERT INTO t VALUES (zeroblob(8000))").execute(&mut *tx).await;
    println!("1. insert on a full disk: {:?}", full.err().map(|e| e.to_string()));
    drop(tx); // SQLite already rolled back, so sqlx's ROLLBACK fails and depth stays 1
    println!("2. in transaction after the drop: {}", pool.acquire().await?.is_in_transaction());

    pool.execute("PRAGMA max_page_count = 1000").await?; // space returns
    let mut tx = pool.begin().await?; // SAVEPOINT, which opens a real transaction
    sqlx::query("INSERT INTO t VALUES ('rolled back')").execute(&mut *tx).await?;
    tx.rollback().await?; // ROLLBACK TO SAVEPOINT: the transaction stays open
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO t VALUES ('committed')").execute(&mut *tx).await?;
    println!("3. commit: {:?}", tx.commit().await.map_err(|e| e.to_string()));
    let auto = sqlx::query("INSERT INTO t VALUES ('autocommit')").execute(&pool).await;
    println!("4. autocommit insert: {:?}", auto.map(|_| ()).map_err(|e| e.to_string()));

    let other = AnyPoolOptions::new().max_connections(1).connect(&url).await?;
    let blocked = sqlx::query("INSERT INTO t VALUES ('other')").execute(&other).await;
    println!("5. another connection writes: {:?}", blocked.map(|_| ()).map_err(|e| e.to_string()));
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&other).await?;
    println!("6. rows another connection sees: {seen} (2 acknowledged)");
    pool.close().await;
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&other).await?;
    println!("7. rows after the first pool closes: {after}");
    Ok(())
}
