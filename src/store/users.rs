use std::sync::Arc;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::sessions::Which;
use super::{Db, StoreError, StoreResult};
use crate::model::User;
use crate::model::{Email, Role, UserStatus, Username};

// A macro, not a const, so queries stay `&'static str` (sqlx refuses runtime-built SQL).
macro_rules! columns {
    () => {
        "id, username, email, password_hash, email_verified, status, locked_until, last_login_at, created_at, updated_at, security_stamp"
    };
}

// The same columns of `users u` as `u_id`, `u_username` …, for a query that joins users to
// a table with columns of the same names; `from_joined_rows(rows, "u_")` reads them.
macro_rules! prefixed_columns {
    () => {
        "u.id AS u_id, u.username AS u_username, u.email AS u_email, u.email_verified AS u_email_verified, \
         u.status AS u_status, u.locked_until AS u_locked_until, u.last_login_at AS u_last_login_at, \
         u.created_at AS u_created_at, u.updated_at AS u_updated_at, u.security_stamp AS u_security_stamp"
    };
}
pub(super) use prefixed_columns;

/// A user row with its password hash, which never leaves the account module.
pub struct UserWithHash {
    pub user: User,
    pub password_hash: String,
    /// Whether the user has a confirmed authenticator: read with the row, so the login's
    /// second-factor policy needs no read of its own.
    pub mfa_enrolled: bool,
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

// One user with its roles in one round trip: a row per role (one with a NULL role for a
// user without any). user_roles has no column named like one of users'.
macro_rules! with_roles {
    ($filter:literal) => {
        with_roles!("", $filter)
    };
    ($extra_columns:literal, $filter:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            ", r.role",
            $extra_columns,
            " FROM users LEFT JOIN user_roles r ON r.user_id = users.id WHERE ",
            $filter,
            " ORDER BY r.role"
        )
    };
}

pub async fn find_by_username(db: &Db, username: &Username) -> StoreResult<Option<UserWithHash>> {
    let rows = sqlx::query(with_roles!(
        ", (SELECT COUNT(*) FROM totp_credentials t WHERE t.user_id = users.id AND t.confirmed <> 0) AS mfa_enrolled",
        "users.username = $1"
    ))
    .bind(username.as_str())
    .fetch_all(db.pool())
    .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    Ok(Some(UserWithHash {
        password_hash: first.try_get("password_hash")?,
        mfa_enrolled: first.try_get::<i64, _>("mfa_enrolled")? != 0,
        user: from_joined_rows(&rows, "")?,
    }))
}

pub async fn find_by_id(db: &Db, id: &str) -> StoreResult<Option<User>> {
    let rows = sqlx::query(with_roles!("users.id = $1")).bind(id).fetch_all(db.pool()).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(from_joined_rows(&rows, "")?))
}

/// A user from the rows of `with_roles!` (or of a query selecting `prefixed_columns!` and
/// the role likewise); `rows` is not empty.
pub(super) fn from_joined_rows(rows: &[AnyRow], prefix: &str) -> StoreResult<User> {
    let roles = rows.iter().filter_map(|r| r.try_get::<Option<String>, _>("role").transpose());
    user_from_row(&rows[0], prefix, roles.collect::<Result<_, _>>()?)
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

/// A right password at login, to be written: the login stamped, the lockout history
/// ended, and a re-hashed password stored when the parameters changed.
pub struct LoginRecord<'a> {
    pub user_id: &'a str,
    /// The stamp read with the password hash that was checked.
    pub security_stamp: i64,
    pub at: i64,
    pub rehash: Option<&'a str>,
}

/// Writes `login` in one statement, unless the account is locked or its security stamp
/// moved (a password change or reset since the hash was read). `false`: nothing changed,
/// and the login must fail like a wrong password.
pub async fn record_login(db: &Db, login: &LoginRecord<'_>) -> StoreResult<bool> {
    record_login_on(db.pool(), login).await
}

/// `record_login` on `conn`: also inside the transaction of the session a login opens
/// (`sessions::create`), so both commit together.
pub(super) async fn record_login_on<'e>(
    conn: impl sqlx::AnyExecutor<'e>,
    login: &LoginRecord<'_>,
) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE users SET last_login_at = $3, failed_attempts = 0, locked_until = NULL, last_lock_secs = 0,
                password_hash = COALESCE($4, password_hash)
         WHERE id = $1 AND security_stamp = $2 AND (locked_until IS NULL OR locked_until <= $3)",
    )
    .bind(login.user_id)
    .bind(login.security_stamp)
    .bind(login.at)
    .bind(login.rehash)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

async fn from_row(db: &Db, row: &AnyRow) -> StoreResult<User> {
    let id: String = row.try_get("id")?;
    let roles = sqlx::query("SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role")
        .bind(&id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("role"))
        .collect::<Result<Vec<_>, _>>()?;
    user_from_row(row, "", roles)
}

fn user_from_row(row: &AnyRow, prefix: &str, roles: Vec<String>) -> StoreResult<User> {
    let column = |name: &str| format!("{prefix}{name}");
    let status: String = row.try_get(column("status").as_str())?;
    Ok(User {
        id: row.try_get(column("id").as_str())?,
        username: Username::trusted(row.try_get(column("username").as_str())?),
        email: Email::trusted(row.try_get(column("email").as_str())?),
        email_verified: row.try_get::<i64, _>(column("email_verified").as_str())? != 0,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("user status {status:?}")))?,
        locked_until: row.try_get(column("locked_until").as_str())?,
        last_login_at: row.try_get(column("last_login_at").as_str())?,
        created_at: row.try_get(column("created_at").as_str())?,
        updated_at: row.try_get(column("updated_at").as_str())?,
        security_stamp: row.try_get(column("security_stamp").as_str())?,
        roles,
    })
}

/// How a counted password attempt left the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Failures since the counter last started (a lock ending restarts it).
    pub failures: i64,
    /// Set when this attempt started a lock: it lasts until then.
    pub locked_until: Option<i64>,
}

/// The lockout rule as parameters: the `threshold`-th failure in a row locks the account
/// for twice as long as the lock before it, between `first_secs` and `max_secs`.
#[derive(Debug, Clone, Copy)]
pub struct LockPolicy {
    pub threshold: i64,
    pub first_secs: i64,
    pub max_secs: i64,
}

/// Counts a wrong password against the user's lock in ONE statement, so any number of
/// parallel attempts (from any number of IPs) are decided by the database one at a time,
/// in the order their hashes finish: `None` when the account is locked, and then the
/// attempt neither counts nor moves the lock. The first failure after a lock has ended
/// starts the counter again. Every SET expression reads the old row, on PostgreSQL and
/// SQLite alike.
pub async fn count_password_attempt(
    db: &Db,
    id: &str,
    now: i64,
    policy: LockPolicy,
) -> StoreResult<Option<Counted>> {
    let row = sqlx::query(
        "UPDATE users SET
           failed_attempts = CASE WHEN locked_until IS NULL THEN failed_attempts + 1 ELSE 1 END,
           locked_until = CASE WHEN (CASE WHEN locked_until IS NULL THEN failed_attempts + 1 ELSE 1 END) >= $3
                               THEN $2 + (CASE WHEN 2 * last_lock_secs < $4 THEN $4
                                               WHEN 2 * last_lock_secs > $5 THEN $5
                                               ELSE 2 * last_lock_secs END)
                               ELSE NULL END,
           last_lock_secs = CASE WHEN (CASE WHEN locked_until IS NULL THEN failed_attempts + 1 ELSE 1 END) >= $3
                                 THEN (CASE WHEN 2 * last_lock_secs < $4 THEN $4
                                            WHEN 2 * last_lock_secs > $5 THEN $5
                                            ELSE 2 * last_lock_secs END)
                                 ELSE last_lock_secs END
         WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)
         RETURNING failed_attempts, locked_until",
    )
    .bind(id)
    .bind(now)
    .bind(policy.threshold)
    .bind(policy.first_secs)
    .bind(policy.max_secs)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(Counted { failures: r.try_get("failed_attempts")?, locked_until: r.try_get("locked_until")? })
    })
    .transpose()
}

/// A right password outside a login (the account endpoints, or an account that may not
/// log in yet): ends the lockout history unless the account is locked. `false`: locked,
/// and the check must fail like a wrong password.
pub async fn clear_failures(db: &Db, id: &str, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE users SET failed_attempts = 0, locked_until = NULL, last_lock_secs = 0
         WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)",
    )
    .bind(id)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Filters and keyset position for the admin user list, ordered by username.
pub struct UserQuery<'a> {
    /// Lower-case substring of the username or email.
    pub search: Option<&'a str>,
    pub status: Option<UserStatus>,
    /// Usernames after this one.
    pub after: Option<&'a str>,
    pub limit: i64,
}

pub async fn list(db: &Db, q: &UserQuery<'_>) -> StoreResult<Vec<User>> {
    // LIKE wildcards in the search text are matched literally.
    let pattern = q.search.map(|s| {
        let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        format!("%{escaped}%")
    });
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM users
         WHERE ($1 IS NULL OR username LIKE $1 ESCAPE '\\' OR email LIKE $1 ESCAPE '\\')
           AND ($2 IS NULL OR status = $2)
           AND ($3 IS NULL OR username > $3)
         ORDER BY username LIMIT $4"
    ))
    .bind(pattern)
    .bind(q.status.map(UserStatus::as_str))
    .bind(q.after)
    .bind(q.limit)
    .fetch_all(db.pool())
    .await?;
    let mut users = Vec::with_capacity(rows.len());
    for row in &rows {
        users.push(from_row(db, row).await?);
    }
    Ok(users)
}

/// Changes the email (admin-set addresses count as verified) and voids the reset tokens
/// mailed to the old address, atomically. `false`: no such user.
pub async fn set_email(db: &Db, id: &str, email: &Email, now: i64) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    let changed =
        sqlx::query("UPDATE users SET email = $2, email_verified = 1, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(email.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    void_reset_tokens(&mut tx, id, now).await?;
    tx.commit().await?;
    Ok(changed == 1)
}

/// Spends every outstanding password reset token of the user.
pub(crate) async fn void_reset_tokens(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE account_tokens SET used_at = $2 WHERE user_id = $1 AND kind = 'password_reset' AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the user's roles in one transaction. `false`: no such user.
pub async fn set_roles(db: &Db, id: &str, roles: &[Role], now: i64) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    let changed = sqlx::query("UPDATE users SET updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if changed != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
    for role in roles {
        sqlx::query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)")
            .bind(id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Sets the status; any status but `locked` also clears the lockout counters.
/// `false`: no such user.
pub async fn set_status(db: &Db, id: &str, status: UserStatus, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE users SET status = $2, updated_at = $3,
                failed_attempts = CASE WHEN $2 = 'locked' THEN failed_attempts ELSE 0 END,
                locked_until = CASE WHEN $2 = 'locked' THEN locked_until ELSE NULL END,
                last_lock_secs = CASE WHEN $2 = 'locked' THEN last_lock_secs ELSE 0 END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    db.tokens_changed(changed).await;
    Ok(changed == 1)
}

/// Ends a lockout: failed attempts reset, and a `locked` user becomes `active` (a
/// `disabled` one stays disabled). `false`: no such user.
pub async fn unlock(db: &Db, id: &str, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE users SET failed_attempts = 0, locked_until = NULL, last_lock_secs = 0, updated_at = $2,
                status = CASE WHEN status = 'locked' THEN 'active' ELSE status END
         WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    db.tokens_changed(changed).await;
    Ok(changed == 1)
}

/// Deletes the user; sessions and roles go with it (ON DELETE CASCADE). `false`: no such user.
pub async fn delete(db: &Db, id: &str) -> StoreResult<bool> {
    let gone =
        sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(db.pool()).await?.rows_affected();
    db.tokens_changed(gone).await;
    Ok(gone == 1)
}

/// Restricted scopes (role_scopes) and the roles that may have each. Every login and
/// refresh asks; only migrations and operators change the table, so it is answered from
/// memory for up to `CACHE_TTL` (`cache`).
pub async fn role_scopes(db: &Db) -> StoreResult<Arc<Vec<(String, String)>>> {
    let read = || async {
        let rows = sqlx::query("SELECT role, scope FROM role_scopes").fetch_all(db.pool()).await?;
        let table = rows
            .iter()
            .map(|r| Ok((r.try_get("role")?, r.try_get("scope")?)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(Arc::new(table)))
    };
    // The read always finds a table, if an empty one.
    let table = db.caches.role_scopes.get_or_read(&(), read).await?;
    table.ok_or(StoreError::Sqlx(sqlx::Error::RowNotFound))
}

/// The password hash alone, to confirm a signed-in user's password. `None`: no such user.
pub async fn password_hash(db: &Db, id: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| r.try_get("password_hash")).transpose()?)
}

/// Sets a new password hash, moves the security stamp on, voids outstanding reset tokens
/// and ends every session of the user but `keep`, atomically.
pub async fn change_password(
    db: &Db,
    id: &str,
    password_hash: &str,
    keep: &str,
    now: i64,
) -> StoreResult<()> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "UPDATE users SET password_hash = $2, updated_at = $3, security_stamp = security_stamp + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(password_hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    void_reset_tokens(&mut tx, id, now).await?;
    let ended = super::sessions::end_for_user(&mut *tx, id, Which::AllBut(keep), now).await?;
    tx.commit().await?;
    db.tokens_changed(ended).await;
    Ok(())
}
