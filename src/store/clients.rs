use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreError, StoreResult, join_words, split_words};
use crate::model::Client;
use crate::model::{ClientId, GrantType, Scope};

// A macro, not a const, so queries stay `&'static str` (sqlx refuses runtime-built SQL).
macro_rules! columns {
    () => {
        "id, name, secret_hash, grants, scopes, audiences, require_mfa, redirect_uris, post_logout_redirect_uris, first_party, created_at"
    };
}

pub async fn insert(db: &Db, client: &Client) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO clients (id, name, secret_hash, grants, scopes, audiences, require_mfa, redirect_uris,
                              post_logout_redirect_uris, first_party, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(client.id.as_str())
    .bind(&client.name)
    .bind(client.secret_hash.as_deref())
    .bind(join_words(client.grants.iter().map(|g| g.as_str())))
    .bind(client.scopes.to_string())
    .bind(join_words(&client.audiences))
    .bind(i64::from(client.require_mfa))
    .bind(join_words(&client.redirect_uris))
    .bind(join_words(&client.post_logout_redirect_uris))
    .bind(i64::from(client.first_party))
    .bind(client.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Answered from memory for up to `CACHE_TTL` (`cache`): every token request authenticates
/// its client. Unknown ids are not kept, so made-up ids cannot fill the cache.
pub async fn find(db: &Db, id: &ClientId) -> StoreResult<Option<Client>> {
    db.caches
        .clients
        .get_or_read(id.as_str(), || async {
            let row = sqlx::query(concat!("SELECT ", columns!(), " FROM clients WHERE id = $1"))
                .bind(id.as_str())
                .fetch_optional(db.pool())
                .await?;
            row.map(|r| from_row(&r)).transpose()
        })
        .await
}

fn from_row(row: &AnyRow) -> StoreResult<Client> {
    let id: String = row.try_get("id")?;
    let grants: String = row.try_get("grants")?;
    Ok(Client {
        id: ClientId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("client id {id:?}")))?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        grants: split_words(&grants)
            .iter()
            .map(|g| GrantType::parse(g).ok_or_else(|| StoreError::Corrupt(format!("grant {g:?}"))))
            .collect::<StoreResult<_>>()?,
        scopes: Scope::from_words(split_words(&row.try_get::<String, _>("scopes")?)),
        audiences: split_words(&row.try_get::<String, _>("audiences")?),
        require_mfa: row.try_get::<i64, _>("require_mfa")? != 0,
        redirect_uris: split_words(&row.try_get::<String, _>("redirect_uris")?),
        post_logout_redirect_uris: split_words(&row.try_get::<String, _>("post_logout_redirect_uris")?),
        first_party: row.try_get::<i64, _>("first_party")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn list(db: &Db) -> StoreResult<Vec<Client>> {
    let rows =
        sqlx::query(concat!("SELECT ", columns!(), " FROM clients ORDER BY id")).fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}

/// Stores the client's changeable fields (everything but id, secret and created_at).
/// `false`: no such client.
pub async fn update(db: &Db, client: &Client, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE clients SET name = $2, grants = $3, scopes = $4, audiences = $5, require_mfa = $6, updated_at = $7,
                redirect_uris = $8, post_logout_redirect_uris = $9, first_party = $10
         WHERE id = $1",
    )
    .bind(client.id.as_str())
    .bind(&client.name)
    .bind(join_words(client.grants.iter().map(|g| g.as_str())))
    .bind(client.scopes.to_string())
    .bind(join_words(&client.audiences))
    .bind(i64::from(client.require_mfa))
    .bind(now)
    .bind(join_words(&client.redirect_uris))
    .bind(join_words(&client.post_logout_redirect_uris))
    .bind(i64::from(client.first_party))
    .execute(db.pool())
    .await?
    .rows_affected();
    db.client_changed(client.id.as_str(), changed).await;
    Ok(changed == 1)
}

/// Replaces the secret hash of a confidential client. `false`: no such confidential client.
/// Tokens the client obtained with the old secret stop being active.
pub async fn set_secret_hash(db: &Db, id: &ClientId, hash: &str, now: i64) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE clients SET secret_hash = $2, updated_at = $3, tokens_valid_after = $3
         WHERE id = $1 AND secret_hash IS NOT NULL",
    )
    .bind(id.as_str())
    .bind(hash)
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected();
    db.client_changed(id.as_str(), changed).await;
    db.tokens_changed(changed).await;
    Ok(changed == 1)
}

/// Deletes the client; its sessions (and so its tokens) go with it. `false`: no such client.
pub async fn delete(db: &Db, id: &ClientId) -> StoreResult<bool> {
    let gone = sqlx::query("DELETE FROM clients WHERE id = $1")
        .bind(id.as_str())
        .execute(db.pool())
        .await?
        .rows_affected();
    db.client_changed(id.as_str(), gone).await;
    db.tokens_changed(gone).await;
    Ok(gone == 1)
}
