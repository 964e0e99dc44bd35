use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreError, StoreResult};
use crate::account::User;
use crate::account::types::{Email, Role, UserStatus, Username};

// A macro, not a const, so queries stay `&'static str` (sqlx refuses runtime-built SQL).
macro_rules! columns {
    () => {
        "id, username, email, password_hash, email_verified, status, locked_until, last_login_at, created_at, updated_at"
    };
}

/// A user row with its password hash, which never leaves the account module.
pub struct UserWithHash {
    pub user: User,
    pub password_hash: String,
}

pub async fn insert(db: &Db, user: &User, password_hash: &str) -> StoreResult<()> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, email_verified, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&user.id)
    .bind(user.username.as_str())
    .bind(user.email.as_str())
    .bind(password_hash)
    .bind(i64::from(user.email_verified))
    .bind(user.status.as_str())
    .bind(user.created_at)
    .execute(&mut *tx)
    .await?;
    for role in &user.roles {
        sqlx::query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)")
            .bind(&user.id)
            .bind(role)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn find_by_username(db: &Db, username: &Username) -> StoreResult<Option<UserWithHash>> {
    let row = sqlx::query(concat!("SELECT ", columns!(), " FROM users WHERE username = $1"))
        .bind(username.as_str())
        .fetch_optional(db.pool())
        .await?;
    match row {
        Some(row) => {
            let password_hash = row.try_get("password_hash")?;
            let user = from_row(db, &row).await?;
            Ok(Some(UserWithHash { user, password_hash }))
        }
        None => Ok(None),
    }
}

pub async fn find_by_id(db: &Db, id: &str) -> StoreResult<Option<User>> {
    let row = sqlx::query(concat!("SELECT ", columns!(), " FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    match row {
        Some(row) => Ok(Some(from_row(db, &row).await?)),
        None => Ok(None),
    }
}

/// Names of roles that do not exist, out of `roles`.
pub async fn unknown_roles(db: &Db, roles: &[Role]) -> StoreResult<Vec<String>> {
    let mut unknown = Vec::new();
    for role in roles {
        let found = sqlx::query("SELECT name FROM roles WHERE name = $1")
            .bind(role.as_str())
            .fetch_optional(db.pool())
            .await?;
        if found.is_none() {
            unknown.push(role.as_str().to_owned());
        }
    }
    Ok(unknown)
}

/// A successful login: stamp it, and store a re-hashed password when parameters changed.
pub async fn record_login(db: &Db, id: &str, now: i64, new_hash: Option<&str>) -> StoreResult<()> {
    sqlx::query(
        "UPDATE users SET last_login_at = $2, failed_attempts = 0,
                password_hash = COALESCE($3, password_hash)
         WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(new_hash)
    .execute(db.pool())
    .await?;
    Ok(())
}

async fn from_row(db: &Db, row: &AnyRow) -> StoreResult<User> {
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let roles = sqlx::query("SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role")
        .bind(&id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("role"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(User {
        username: Username::trusted(row.try_get("username")?),
        email: Email::trusted(row.try_get("email")?),
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("user status {status:?}")))?,
        locked_until: row.try_get("locked_until")?,
        last_login_at: row.try_get("last_login_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        roles,
        id,
    })
}

/// The stored password hash of a user, for re-checking the current password.
pub async fn password_hash(db: &Db, id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| r.try_get("password_hash")).transpose()?)
}

/// Sets a new password hash and ends every session of the user but `keep`, atomically.
pub async fn change_password(
    db: &Db,
    id: &str,
    password_hash: &str,
    keep: &str,
    now: i64,
) -> StoreResult<()> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL")
        .bind(id)
        .bind(keep)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
