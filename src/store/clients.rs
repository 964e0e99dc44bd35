use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreError, StoreResult, join_words, split_words};
use crate::oauth::client::Client;
use crate::oauth::types::{ClientId, GrantType, Scope};

// A macro, not a const, so queries stay `&'static str` (sqlx refuses runtime-built SQL).
macro_rules! columns {
    () => {
        "id, name, secret_hash, grants, scopes, audiences, require_mfa, created_at"
    };
}

pub async fn insert(db: &Db, client: &Client) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO clients (id, name, secret_hash, grants, scopes, audiences, require_mfa, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(client.id.as_str())
    .bind(&client.name)
    .bind(client.secret_hash.as_deref())
    .bind(join_words(client.grants.iter().map(|g| g.as_str())))
    .bind(client.scopes.to_string())
    .bind(join_words(&client.audiences))
    .bind(i64::from(client.require_mfa))
    .bind(client.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn find(db: &Db, id: &ClientId) -> StoreResult<Option<Client>> {
    let row = sqlx::query(concat!("SELECT ", columns!(), " FROM clients WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| from_row(&r)).transpose()
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
        created_at: row.try_get("created_at")?,
    })
}
