//! Discovery (RFC 8414, OIDC Discovery 1.0) and the JWKS (RFC 7517).

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::config::SigningAlg;
use crate::keys;
use crate::model::GrantType;
use crate::services::Services;

pub struct DiscoveryApi;

/// Authorization server metadata.
#[derive(Debug, Object)]
pub struct ServerMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    end_session_endpoint: String,
    grant_types_supported: Vec<String>,
    response_types_supported: Vec<String>,
    response_modes_supported: Vec<String>,
    code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: authorization responses carry `iss`.
    authorization_response_iss_parameter_supported: bool,
    prompt_values_supported: Vec<String>,
    scopes_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    introspection_endpoint_auth_methods_supported: Vec<String>,
    revocation_endpoint_auth_methods_supported: Vec<String>,
    claims_supported: Vec<String>,
    service_documentation: String,
}

#[derive(ApiResponse)]
enum JwksResponse {
    /// The published signing keys (public parts only).
    #[oai(status = 200)]
    Ok(Json<serde_json::Value>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
enum MetadataResponse {
    /// Server metadata.
    #[oai(status = 200)]
    Ok(Json<ServerMetadata>, #[oai(header = "Cache-Control")] String),
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// `signing_algs`: what the published keys sign with, whichever of them signs now.
fn metadata(svc: &Services, signing_algs: Vec<SigningAlg>) -> MetadataResponse {
    let iss = svc.issuer();
    let auth_methods = strings(&["client_secret_basic", "client_secret_post"]);
    MetadataResponse::Ok(
        Json(ServerMetadata {
            issuer: iss.to_owned(),
            authorization_endpoint: format!("{iss}/oauth/authorize"),
            token_endpoint: format!("{iss}/oauth/token"),
            introspection_endpoint: format!("{iss}/oauth/introspect"),
            revocation_endpoint: format!("{iss}/oauth/revoke"),
            userinfo_endpoint: format!("{iss}/oauth/userinfo"),
            jwks_uri: format!("{iss}/.well-known/jwks.json"),
            end_session_endpoint: format!("{iss}/oauth/logout"),
            grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str().to_owned()).collect(),
            response_types_supported: strings(&["code"]),
            response_modes_supported: strings(&["query"]),
            code_challenge_methods_supported: strings(&["S256"]),
            authorization_response_iss_parameter_supported: true,
            prompt_values_supported: strings(&["none", "login", "consent", "select_account"]),
            scopes_supported: strings(&["openid", "profile", "email"]),
            subject_types_supported: strings(&["public"]),
            id_token_signing_alg_values_supported: signing_algs.iter().map(|a| a.to_string()).collect(),
            token_endpoint_auth_methods_supported: [auth_methods.clone(), strings(&["none"])].concat(),
            introspection_endpoint_auth_methods_supported: auth_methods.clone(),
            revocation_endpoint_auth_methods_supported: [auth_methods, strings(&["none"])].concat(),
            claims_supported: strings(&[
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "amr",
                "azp",
                "sid",
                "preferred_username",
                "email",
                "email_verified",
            ]),
            service_documentation: format!("{iss}/docs"),
        }),
        "public, max-age=3600".into(),
    )
}

#[OpenApi(tag = "ApiTags::Discovery")]
impl DiscoveryApi {
    /// OpenID Connect Discovery
    #[oai(path = "/.well-known/openid-configuration", method = "get")]
    async fn openid_configuration(&self, Data(svc): Data<&Services>) -> MetadataResponse {
        metadata(svc, svc.keys().published_algs().await)
    }

    /// OAuth 2.0 Authorization Server Metadata (RFC 8414)
    #[oai(path = "/.well-known/oauth-authorization-server", method = "get")]
    async fn oauth_authorization_server(&self, Data(svc): Data<&Services>) -> MetadataResponse {
        metadata(svc, svc.keys().published_algs().await)
    }

    /// JSON Web Key Set
    ///
    /// Every key not yet retired: the one that signs, a newly rotated one that will, and
    /// those that signed tokens still valid. Members `kty`, `use`, `alg`, `kid`, and `n`, `e`
    /// (RSA), `crv`, `x`, `y` (EC) or `crv`, `x` (OKP).
    #[oai(path = "/.well-known/jwks.json", method = "get")]
    async fn jwks(&self, Data(svc): Data<&Services>) -> JwksResponse {
        // A rotated key signs only once caches of this age have all expired.
        let cache = format!("public, max-age={}", keys::JWKS_MAX_AGE.as_secs());
        JwksResponse::Ok(Json(svc.keys().jwks().await), cache)
    }
}
