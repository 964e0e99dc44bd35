//! Client credentials grant (RFC 6749 §4.4): confidential clients only, no refresh token.

use crate::model::Client;
use crate::model::RequestMeta;
use crate::model::Scope;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{self, IssuedTokens};
use crate::services::Services;

pub async fn grant(
    svc: &Services,
    client: &Client,
    requested: Option<&Scope>,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::UnauthorizedClient("public clients cannot use client_credentials".into()));
    }
    let scope = crate::oauth::client::granted_scope(client, requested)?;
    issue::for_client(svc, client, &scope, meta).await
}
