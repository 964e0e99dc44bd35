//! OAuth clients as an administrator sees them. Registration and secrets come from
//! `oauth::client`, so the API, the CLI and the token endpoint share one set of rules.

use super::{Actor, AdminError, record};
use crate::model::Client;
use crate::model::{ClientId, GrantType, Scope};
use crate::oauth::client::{self, NewClient, RegisteredClient};
use crate::services::Services;
use crate::store;
use crate::store::audit::AuditKind;

pub async fn list(svc: &Services) -> Result<Vec<Client>, AdminError> {
    Ok(store::clients::list(svc.db()).await?)
}

pub async fn get(svc: &Services, id: &str) -> Result<Client, AdminError> {
    let id = ClientId::parse(id).ok_or(AdminError::NotFound("client"))?;
    store::clients::find(svc.db(), &id).await?.ok_or(AdminError::NotFound("client"))
}

pub struct CreateClient {
    pub name: String,
    pub id: Option<String>,
    pub public: bool,
    /// Default: `password` and `refresh_token`, as for the CLI.
    pub grants: Option<Vec<String>>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub require_mfa: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub first_party: bool,
}

/// Registers a client; a confidential client's secret is in the answer, this once only.
pub async fn create(
    svc: &Services,
    actor: &Actor,
    input: CreateClient,
) -> Result<RegisteredClient, AdminError> {
    let mut reasons = Vec::new();
    let id = match input.id.as_deref().map(|i| ClientId::parse(i).ok_or(i)).transpose() {
        Ok(id) => id,
        Err(bad) => {
            reasons.push(format!("{bad:?} is not a client id (letters, digits, - _ . ~)"));
            None
        }
    };
    let grants = match &input.grants {
        None => Some(vec![GrantType::Password, GrantType::RefreshToken]),
        Some(names) => parse_grants(names).map_err(|mut e| reasons.append(&mut e)).ok(),
    };
    let scopes = parse_scopes(&input.scopes).map_err(|mut e| reasons.append(&mut e)).ok();
    check_audiences(&input.audiences).map_err(|mut e| reasons.append(&mut e)).ok();
    let (Some(grants), Some(scopes), true) = (grants, scopes, reasons.is_empty()) else {
        return Err(AdminError::Invalid(reasons));
    };
    let new = NewClient {
        name: input.name,
        id,
        public: input.public,
        grants,
        scopes,
        audiences: input.audiences,
        require_mfa: input.require_mfa,
        redirect_uris: input.redirect_uris,
        post_logout_redirect_uris: input.post_logout_redirect_uris,
        first_party: input.first_party,
    };
    let registered = client::register(svc, new).await?;
    record(svc, actor, AuditKind::AdminClientCreate, None, Some(registered.client_id.clone()), None).await?;
    Ok(registered)
}

#[derive(Debug, Default)]
pub struct ClientPatch {
    pub name: Option<String>,
    pub grants: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub require_mfa: Option<bool>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub first_party: Option<bool>,
}

/// Changes what a client may do. Tokens already issued keep their claims until they
/// expire; new grants follow the new rules at once.
pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: &str,
    patch: ClientPatch,
) -> Result<Client, AdminError> {
    let mut client = get(svc, id).await?;
    let mut reasons = Vec::new();
    let mut changed = Vec::new();
    if let Some(name) = patch.name {
        client.name = name.trim().to_owned();
        changed.push("name");
    }
    if let Some(names) = &patch.grants {
        match parse_grants(names) {
            Ok(grants) => client.grants = grants,
            Err(mut e) => reasons.append(&mut e),
        }
        changed.push("grants");
    }
    if let Some(names) = &patch.scopes {
        match parse_scopes(names) {
            Ok(scopes) => client.scopes = scopes,
            Err(mut e) => reasons.append(&mut e),
        }
        changed.push("scopes");
    }
    if let Some(audiences) = patch.audiences {
        match check_audiences(&audiences) {
            Ok(()) => client.audiences = audiences,
            Err(mut e) => reasons.append(&mut e),
        }
        changed.push("audiences");
    }
    if let Some(require_mfa) = patch.require_mfa {
        client.require_mfa = require_mfa;
        changed.push("require_mfa");
    }
    if let Some(uris) = patch.redirect_uris {
        client.redirect_uris = uris;
        changed.push("redirect_uris");
    }
    if let Some(uris) = patch.post_logout_redirect_uris {
        client.post_logout_redirect_uris = uris;
        changed.push("post_logout_redirect_uris");
    }
    if let Some(first_party) = patch.first_party {
        client.first_party = first_party;
        changed.push("first_party");
    }
    if changed.is_empty() {
        reasons.push(
            "nothing to change: send name, grants, scopes, audiences, require_mfa, redirect_uris, \
             post_logout_redirect_uris or first_party"
                .into(),
        );
    }
    if let Err(e) = client::check_rules(&client.name, client.is_public(), &client.grants) {
        reasons.push(e.to_string());
    }
    if let Err(e) =
        client::check_redirect_uris(&client.grants, &client.redirect_uris, &client.post_logout_redirect_uris)
    {
        reasons.push(e.to_string());
    }
    if !reasons.is_empty() {
        return Err(AdminError::Invalid(reasons));
    }
    if !store::clients::update(svc.db(), &client, svc.now()).await? {
        return Err(AdminError::NotFound("client"));
    }
    let detail = format!("changed={}", changed.join(","));
    record(svc, actor, AuditKind::AdminClientUpdate, None, Some(client.id.to_string()), Some(detail)).await?;
    Ok(client)
}

/// Replaces a confidential client's secret; the old one stops working at once. The new
/// secret is in the answer, this once only.
pub async fn rotate_secret(svc: &Services, actor: &Actor, id: &str) -> Result<RegisteredClient, AdminError> {
    let client = get(svc, id).await?;
    if client.is_public() {
        return Err(AdminError::invalid("a public client has no secret to rotate"));
    }
    let (secret, hash) = client::new_secret();
    if !store::clients::set_secret_hash(svc.db(), &client.id, &hash, svc.now()).await? {
        return Err(AdminError::NotFound("client"));
    }
    record(svc, actor, AuditKind::AdminClientRotateSecret, None, Some(client.id.to_string()), None).await?;
    Ok(RegisteredClient::new(&client, Some(secret)))
}

/// Deletes the client with its sessions, so its user tokens stop working too.
pub async fn delete(svc: &Services, actor: &Actor, id: &str) -> Result<(), AdminError> {
    let id = ClientId::parse(id).ok_or(AdminError::NotFound("client"))?;
    if !store::clients::delete(svc.db(), &id).await? {
        return Err(AdminError::NotFound("client"));
    }
    record(svc, actor, AuditKind::AdminClientDelete, None, Some(id.to_string()), None).await?;
    Ok(())
}

fn parse_grants(names: &[String]) -> Result<Vec<GrantType>, Vec<String>> {
    let mut grants = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match GrantType::parse(name) {
            Some(g) if !grants.contains(&g) => grants.push(g),
            Some(_) => {}
            None => errors.push(format!("unknown grant {name:?}")),
        }
    }
    if errors.is_empty() { Ok(grants) } else { Err(errors) }
}

fn parse_scopes(names: &[String]) -> Result<Scope, Vec<String>> {
    let errors: Vec<String> = names
        .iter()
        .filter(|s| Scope::parse(s).is_none_or(|parsed| parsed.iter().count() != 1))
        .map(|s| format!("{s:?} is not a scope (one token of printable ASCII, no quote or backslash)"))
        .collect();
    if errors.is_empty() { Ok(Scope::from_words(names.iter().cloned())) } else { Err(errors) }
}

/// Audiences are stored space-separated, so one must not contain whitespace.
fn check_audiences(audiences: &[String]) -> Result<(), Vec<String>> {
    let errors: Vec<String> = audiences
        .iter()
        .filter(|a| a.is_empty() || a.len() > 256 || a.chars().any(|c| c.is_whitespace() || c.is_control()))
        .map(|a| format!("{a:?} is not an audience (1 to 256 characters, no spaces)"))
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}
