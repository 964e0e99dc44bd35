//! OIDC UserInfo (Core §5.3): claims about the user behind a Bearer token.

use serde::Serialize;

use super::tokens::{self, BearerError};
use crate::services::Services;
use crate::store;

#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

pub async fn userinfo(svc: &Services, bearer: &str) -> Result<UserInfo, BearerError> {
    let claims = tokens::authenticate_bearer(svc, bearer, "openid").await?;
    let user = store::users::find_by_id(svc.db(), &claims.sub).await?.ok_or(BearerError::INACTIVE)?;
    let email = claims.scope.contains("email");
    Ok(UserInfo {
        sub: user.id,
        preferred_username: claims.scope.contains("profile").then(|| user.username.to_string()),
        email: email.then(|| user.email.to_string()),
        email_verified: email.then_some(user.email_verified),
    })
}
