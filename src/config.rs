//! Typed settings. The CLI hands over raw strings; everything is parsed here once, and a
//! bad value becomes one line that names the setting (never a clap usage dump or a panic).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

// The contract's defaults: one source for the flags and for `RawSettings::default`.
const DEFAULT_DATABASE_URL: &str = "sqlite://latchkey.db?mode=rwc";
const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_KEYS_DIR: &str = "keys";
const DEFAULT_ACCESS_TOKEN_TTL: &str = "15m";
const DEFAULT_REFRESH_TOKEN_TTL: &str = "7d";
const DEFAULT_MAIL: &str = "log";
const DEFAULT_REFRESH_REUSE_GRACE: &str = "0s";
const DEFAULT_RATE_LIMIT_LOGIN: &str = "5/15m";
const DEFAULT_RATE_LIMIT_REFRESH: &str = "10/1h";
const DEFAULT_RATE_LIMIT_REGISTER: &str = "3/1h";
const DEFAULT_LOG_FORMAT: &str = "text";
const DEFAULT_REGISTRATION: &str = "open";
const DEFAULT_SIGNING_ALG: &str = "RS256";
const DEFAULT_PRODUCT_NAME: &str = "latchkey";
const DEFAULT_HASH_QUEUE: &str = "64";

/// Raw values as they came from flags or environment variables. In `--help` they stand
/// under their own heading, apart from a command's own options.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Settings (every one also a LATCHKEY_* variable)")]
pub struct RawSettings {
    /// `HOST:PORT` to listen on; a wildcard address (0.0.0.0, [::]) needs --issuer.
    #[arg(long, env = "LATCHKEY_BIND", default_value = DEFAULT_BIND, global = true)]
    pub bind: String,
    /// `sqlite://…` or `postgres://…`.
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    /// Public issuer URL (default: http:// + bind address).
    #[arg(long, env = "LATCHKEY_ISSUER", global = true)]
    pub issuer: Option<String>,
    /// Directory of the signing keys (PKCS#8 PEM, 0600).
    #[arg(long, env = "LATCHKEY_KEYS_DIR", default_value = DEFAULT_KEYS_DIR, global = true)]
    pub keys_dir: PathBuf,
    /// 32-byte key (base64 or hex) that encrypts TOTP secrets at rest.
    #[arg(long, env = "LATCHKEY_SECRET_KEY", global = true, hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Lifetime of access and ID tokens: `Ns`, `Nm`, `Nh` or `Nd`.
    #[arg(long, env = "LATCHKEY_ACCESS_TOKEN_TTL", default_value = DEFAULT_ACCESS_TOKEN_TTL, global = true)]
    pub access_token_ttl: String,
    /// Idle lifetime of a refresh token (a session lasts at most four): `Ns` … `Nd`.
    #[arg(long, env = "LATCHKEY_REFRESH_TOKEN_TTL", default_value = DEFAULT_REFRESH_TOKEN_TTL, global = true)]
    pub refresh_token_ttl: String,
    /// How long after a rotation the same client may present the old refresh token again
    /// and get a new pair (a lost response); `0s` is strict RFC 9700: reuse ends the family.
    #[arg(long, env = "LATCHKEY_REFRESH_REUSE_GRACE", default_value = DEFAULT_REFRESH_REUSE_GRACE, global = true)]
    pub refresh_reuse_grace: String,
    /// `log`, `dir:PATH`, `smtp://[user:pass@]host[:587]` (STARTTLS required; add
    /// `?tls=opportunistic` or `?tls=none` to relax, `&from=ADDRESS` for the sender) or
    /// `smtps://…` (TLS from the start, port 465).
    #[arg(long, env = "LATCHKEY_MAIL", default_value = DEFAULT_MAIL, global = true, hide_env_values = true)]
    pub mail: String,
    /// Failed logins per client IP (an IPv6 client by its /64), `COUNT/DURATION` (e.g.
    /// 5/15m), or `off`; `off` also lifts the fixed per-IP and per-user password caps.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_LOGIN", default_value = DEFAULT_RATE_LIMIT_LOGIN, global = true)]
    pub rate_limit_login: String,
    /// Refreshes per user, `COUNT/DURATION`, or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_REFRESH", default_value = DEFAULT_RATE_LIMIT_REFRESH, global = true)]
    pub rate_limit_refresh: String,
    /// Registrations per client IP, `COUNT/DURATION`, or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_REGISTER", default_value = DEFAULT_RATE_LIMIT_REGISTER, global = true)]
    pub rate_limit_register: String,
    /// Comma-separated addresses or CIDR ranges whose X-Forwarded-For is believed.
    #[arg(long, env = "LATCHKEY_TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: String,
    /// Comma-separated origins (https://app.example) whose browser code may call the API;
    /// empty: CORS stays off.
    #[arg(long, env = "LATCHKEY_CORS_ORIGINS", default_value = "", global = true)]
    pub cors_origins: String,
    /// `text` or `json`; the filter is read from LATCHKEY_LOG.
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", default_value = DEFAULT_LOG_FORMAT, global = true)]
    pub log_format: String,
    /// `open`: anyone may `POST /account/register`; `closed`: only operators create users.
    #[arg(long, env = "LATCHKEY_REGISTRATION", default_value = DEFAULT_REGISTRATION, global = true)]
    pub registration: String,
    /// `RS256`, `ES256` or `EdDSA`: the algorithm of the key made on first start and by
    /// `keys rotate` without `--alg`.
    #[arg(long, env = "LATCHKEY_SIGNING_ALG", default_value = DEFAULT_SIGNING_ALG, global = true)]
    pub signing_alg: String,
    /// The name the sign-in pages show.
    #[arg(long, env = "LATCHKEY_PRODUCT_NAME", default_value = DEFAULT_PRODUCT_NAME, global = true)]
    pub product_name: String,
    /// An https (or http) URL of a stylesheet the sign-in pages load after their own.
    #[arg(long, env = "LATCHKEY_STYLESHEET_URL", global = true)]
    pub stylesheet_url: Option<String>,
    /// Password checks that may wait for a CPU core (one hash per core runs); past that,
    /// logins answer 503 with Retry-After at once instead of queueing without bound.
    #[arg(long, env = "LATCHKEY_HASH_QUEUE", default_value = DEFAULT_HASH_QUEUE, global = true)]
    pub hash_queue: String,
}

/// The defaults, as if no flag or variable were set (tests and benches start from here).
impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            bind: DEFAULT_BIND.into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            issuer: None,
            keys_dir: DEFAULT_KEYS_DIR.into(),
            secret_key: None,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL.into(),
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL.into(),
            refresh_reuse_grace: DEFAULT_REFRESH_REUSE_GRACE.into(),
            mail: DEFAULT_MAIL.into(),
            rate_limit_login: DEFAULT_RATE_LIMIT_LOGIN.into(),
            rate_limit_refresh: DEFAULT_RATE_LIMIT_REFRESH.into(),
            rate_limit_register: DEFAULT_RATE_LIMIT_REGISTER.into(),
            trusted_proxies: String::new(),
            cors_origins: String::new(),
            log_format: DEFAULT_LOG_FORMAT.into(),
            registration: DEFAULT_REGISTRATION.into(),
            signing_alg: DEFAULT_SIGNING_ALG.into(),
            product_name: DEFAULT_PRODUCT_NAME.into(),
            stylesheet_url: None,
            hash_queue: DEFAULT_HASH_QUEUE.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: String,
    pub issuer: Url,
    pub keys_dir: PathBuf,
    pub secret_key: Option<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Zero: a spent refresh token presented again always ends its family.
    pub refresh_reuse_grace: Duration,
    pub mail: MailTransport,
    pub rate_limit_login: RateLimit,
    pub rate_limit_refresh: RateLimit,
    pub rate_limit_register: RateLimit,
    pub trusted_proxies: Vec<IpNet>,
    /// Browser origins allowed cross-origin calls; empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    /// Self-registration at `POST /account/register` is allowed.
    pub registration_open: bool,
    pub signing_alg: SigningAlg,
    /// Shown on the sign-in pages.
    pub product_name: String,
    /// Loaded by the sign-in pages after their own stylesheet.
    pub stylesheet_url: Option<Url>,
    /// Password checks that may wait for a core before the next one is turned away.
    pub hash_queue: usize,
    /// A connection must get an answer this long after it opened or got its last one
    /// (slow-loris protection; not a flag: honest clients never come near it).
    pub slow_client_timeout: Duration,
}

impl Settings {
    /// The issuer as it appears in `iss` claims and discovery: no trailing slash.
    pub fn issuer_str(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// The decoded `--secret-key`, when one is set.
    pub fn secret_key_bytes(&self) -> Result<Option<[u8; 32]>, SettingError> {
        self.secret_key
            .as_deref()
            .map(|text| parse_secret_key(text).map_err(|r| bad("secret-key", "LATCHKEY_SECRET_KEY", r)))
            .transpose()
    }
}

/// A JWS signing algorithm a signing key may be made for (RFC 7518 §3, RFC 8037 §3.1).
/// One algorithm per key: the key's JWK and every token it signs name it, and a token
/// naming another algorithm for that key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA-2048.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    /// Exact JOSE spelling only: `es256` or `Ed25519` are not algorithm names.
    pub fn parse(text: &str) -> Result<SigningAlg, String> {
        SigningAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not one of RS256, ES256, EdDSA"))
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    Log,
    Dir(PathBuf),
    Smtp(Url),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    Off,
    PerPeriod { count: u32, period: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A setting that failed to parse; its Display is the single line printed at start-up.
#[derive(Debug)]
pub struct SettingError {
    flag: &'static str,
    env: &'static str,
    reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting --{} ({}): {}", self.flag, self.env, self.reason)
    }
}

impl std::error::Error for SettingError {}

fn bad(flag: &'static str, env: &'static str, reason: impl Into<String>) -> SettingError {
    SettingError { flag, env, reason: reason.into() }
}

impl RawSettings {
    pub fn parse(&self) -> Result<Settings, SettingError> {
        let bind =
            parse_bind(&self.bind, self.issuer.is_some()).map_err(|r| bad("bind", "LATCHKEY_BIND", r))?;
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(bad(
                "database-url",
                "LATCHKEY_DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let issuer_text = self.issuer.clone().unwrap_or_else(|| format!("http://{}", self.bind));
        let issuer = parse_issuer(&issuer_text).map_err(|r| bad("issuer", "LATCHKEY_ISSUER", r))?;
        let ttl = |flag, env, text: &str| {
            parse_duration(text)
                .map_err(|r| bad(flag, env, r))
                .and_then(|d| if d.is_zero() { Err(bad(flag, env, "must be longer than 0s")) } else { Ok(d) })
        };
        let rate = |flag, env, text: &str| parse_rate_limit(text).map_err(|r| bad(flag, env, r));
        let settings = Settings {
            bind,
            database_url: self.database_url.clone(),
            issuer,
            keys_dir: self.keys_dir.clone(),
            secret_key: self.secret_key.clone(),
            access_token_ttl: ttl("access-token-ttl", "LATCHKEY_ACCESS_TOKEN_TTL", &self.access_token_ttl)?,
            refresh_token_ttl: ttl(
                "refresh-token-ttl",
                "LATCHKEY_REFRESH_TOKEN_TTL",
                &self.refresh_token_ttl,
            )?,
            refresh_reuse_grace: parse_duration(&self.refresh_reuse_grace)
                .map_err(|r| bad("refresh-reuse-grace", "LATCHKEY_REFRESH_REUSE_GRACE", r))?,
            mail: parse_mail(&self.mail).map_err(|r| bad("mail", "LATCHKEY_MAIL", r))?,
            rate_limit_login: rate("rate-limit-login", "LATCHKEY_RATE_LIMIT_LOGIN", &self.rate_limit_login)?,
            rate_limit_refresh: rate(
                "rate-limit-refresh",
                "LATCHKEY_RATE_LIMIT_REFRESH",
                &self.rate_limit_refresh,
            )?,
            rate_limit_register: rate(
                "rate-limit-register",
                "LATCHKEY_RATE_LIMIT_REGISTER",
                &self.rate_limit_register,
            )?,
            slow_client_timeout: Duration::from_secs(30),
            product_name: match self.product_name.trim() {
                name if !name.is_empty() && name.len() <= 100 => name.to_owned(),
                _ => return Err(bad("product-name", "LATCHKEY_PRODUCT_NAME", "must be 1 to 100 characters")),
            },
            stylesheet_url: self
                .stylesheet_url
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|text| {
                    Url::parse(text)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                        .ok_or_else(|| {
                            bad(
                                "stylesheet-url",
                                "LATCHKEY_STYLESHEET_URL",
                                format!("{text:?} is not an http(s) URL"),
                            )
                        })
                })
                .transpose()?,
            hash_queue: self.hash_queue.parse().map_err(|_| {
                bad(
                    "hash-queue",
                    "LATCHKEY_HASH_QUEUE",
                    format!("{:?} is not a count like 64", self.hash_queue),
                )
            })?,
            cors_origins: parse_origins(&self.cors_origins)
                .map_err(|r| bad("cors-origins", "LATCHKEY_CORS_ORIGINS", r))?,
            trusted_proxies: parse_proxies(&self.trusted_proxies)
                .map_err(|r| bad("trusted-proxies", "LATCHKEY_TRUSTED_PROXIES", r))?,
            log_format: match self.log_format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(bad(
                        "log-format",
                        "LATCHKEY_LOG_FORMAT",
                        format!("{other:?} is neither text nor json"),
                    ));
                }
            },
            registration_open: match self.registration.as_str() {
                "open" => true,
                "closed" => false,
                other => {
                    return Err(bad(
                        "registration",
                        "LATCHKEY_REGISTRATION",
                        format!("{other:?} is neither open nor closed"),
                    ));
                }
            },
            signing_alg: SigningAlg::parse(&self.signing_alg)
                .map_err(|r| bad("signing-alg", "LATCHKEY_SIGNING_ALG", r))?,
        };
        settings.secret_key_bytes()?;
        Ok(settings)
    }
}

/// `HOST:PORT`, the host a name or an address. A wildcard address listens on every
/// interface, where `http://0.0.0.0:…` cannot be the issuer clients see: it needs `--issuer`.
fn parse_bind(text: &str, issuer_given: bool) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let unusable = || format!("{text:?} is not HOST:PORT like 127.0.0.1:8080 or localhost:8080");
    let addr = text.to_socket_addrs().map_err(|_| unusable())?.next().ok_or_else(unusable)?;
    if addr.ip().is_unspecified() && !issuer_given {
        return Err(format!(
            "{text} listens on every interface; set --issuer (LATCHKEY_ISSUER) to the URL clients use"
        ));
    }
    Ok(addr)
}

/// `Ns`, `Nm`, `Nh` or `Nd`, exactly as the contract spells them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let err = || format!("{text:?} is not a duration (use Ns, Nm, Nh or Nd, e.g. 15m)");
    let split = text.len().checked_sub(1).filter(|&i| text.is_char_boundary(i)).ok_or_else(err)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| err())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    n.checked_mul(unit_secs)
        .filter(|&s| s <= 10 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is longer than ten years"))
}

/// `COUNT/DURATION` such as `5/15m`, or `off`.
pub fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    if text == "off" {
        return Ok(RateLimit::Off);
    }
    let (count, period) =
        text.split_once('/').ok_or_else(|| format!("{text:?} is not COUNT/DURATION (e.g. 5/15m) or off"))?;
    let count: u32 =
        count.parse().ok().filter(|&c| c > 0).ok_or_else(|| format!("{count:?} is not a positive count"))?;
    let period = parse_duration(period)?;
    if period.is_zero() {
        return Err("the period must be longer than 0s".into());
    }
    Ok(RateLimit::PerPeriod { count, period })
}

/// 32 bytes as 64 hex digits or as base64 (standard or URL-safe, padded or not). The
/// reason never repeats the value: it is a secret.
pub fn parse_secret_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let hex = || -> Option<Vec<u8>> {
        if text.len() != 64 {
            return None;
        }
        (0..64).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
    };
    let bytes = hex().or_else(|| {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(text).ok())
    });
    bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| {
        "must be 32 bytes written as base64 or 64 hex digits (e.g. openssl rand -base64 32)".into()
    })
}

fn parse_mail(text: &str) -> Result<MailTransport, String> {
    if text == "log" {
        Ok(MailTransport::Log)
    } else if let Some(path) = text.strip_prefix("dir:") {
        if path.is_empty() {
            return Err("dir: needs a path, e.g. dir:/var/spool/latchkey".into());
        }
        Ok(MailTransport::Dir(PathBuf::from(path)))
    } else if text.starts_with("smtp://") || text.starts_with("smtps://") {
        let url = Url::parse(text).map_err(|e| format!("not a valid smtp URL: {e}"))?;
        if url.host_str().is_none() {
            return Err("the smtp URL needs a host".into());
        }
        Ok(MailTransport::Smtp(url))
    } else {
        Err("use log, dir:PATH or smtp://host:port".into())
    }
}

fn parse_issuer(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{text:?} must be an http or https URL with a host"));
    }
    // RFC 8414 §2: the issuer has no query or fragment.
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or fragment"));
    }
    Ok(url)
}

/// Origins exactly as browsers send them: scheme, host and port, nothing else.
fn parse_origins(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let url = Url::parse(item)
                .map_err(|_| format!("{item:?} is not an origin like https://app.example"))?;
            let origin = url.origin().ascii_serialization();
            if !matches!(url.scheme(), "http" | "https") || origin != item.trim_end_matches('/') {
                return Err(format!(
                    "{item:?} is not an origin like https://app.example (no path, no wildcard)"
                ));
            }
            Ok(origin)
        })
        .collect()
}

fn parse_proxies(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is neither an IP address nor a CIDR range"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_takes_host_names_and_refuses_a_wildcard_without_an_issuer() {
        let raw = |bind: &str, issuer: Option<&str>| RawSettings {
            bind: bind.into(),
            issuer: issuer.map(str::to_owned),
            ..RawSettings::default()
        };
        let local = raw("localhost:8080", None).parse().unwrap();
        assert_eq!(local.issuer_str(), "http://localhost:8080");
        assert!(local.bind.ip().is_loopback());
        assert!(raw("0.0.0.0:8090", None).parse().is_err());
        assert!(raw("[::]:8090", None).parse().is_err());
        let public = raw("0.0.0.0:8090", Some("https://auth.example")).parse().unwrap();
        assert_eq!(public.issuer_str(), "https://auth.example");
        assert!(raw("nowhere", None).parse().is_err());
    }

    #[test]
    fn durations_follow_the_contract() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        for bad in ["", "m", "15", "15min", "-5m", "1.5h", "9999999999999d", "5é"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limits_parse() {
        assert_eq!(parse_rate_limit("off"), Ok(RateLimit::Off));
        assert_eq!(
            parse_rate_limit("5/15m"),
            Ok(RateLimit::PerPeriod { count: 5, period: Duration::from_secs(900) })
        );
        for bad in ["5", "0/1m", "x/1m", "5/", "5/0s"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_keys_parse() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        assert_eq!(parse_secret_key(hex).unwrap()[1], 0x11);
        let b64 = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";
        assert_eq!(parse_secret_key(b64), parse_secret_key(hex));
        assert_eq!(parse_secret_key(b64.trim_end_matches('=')), parse_secret_key(hex));
        for bad in [
            "",
            "short",
            &hex[..62],
            "ABEiM0RVZneImaq7zN3u",
            "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ] {
            let err = parse_secret_key(bad).unwrap_err();
            assert!(bad.is_empty() || !err.contains(bad), "the reason must not echo the key");
        }
    }

    #[test]
    fn mail_and_proxies_parse() {
        assert_eq!(parse_mail("log"), Ok(MailTransport::Log));
        assert_eq!(parse_mail("dir:/tmp/m"), Ok(MailTransport::Dir("/tmp/m".into())));
        assert!(parse_mail("smtp://mail.example:587").is_ok());
        assert!(parse_mail("pigeon").is_err());
        assert_eq!(parse_proxies("10.0.0.1, 192.168.0.0/16").unwrap().len(), 2);
        assert!(parse_proxies("nope").is_err());
        assert_eq!(parse_origins("https://app.example, http://localhost:3000/").unwrap().len(), 2);
        for bad in ["*", "https://app.example/path", "app.example", "ftp://x.example"] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }
}
