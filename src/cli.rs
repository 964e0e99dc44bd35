//! The `latchkey` command line. Commands print JSON alone on stdout; logs go to stderr.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::account::UserView;
use crate::admin::{self, Actor, AdminError};
use crate::config::{RawSettings, SigningAlg};
use crate::model::UserStatus;
use crate::oauth::client::RegisteredClient;
use crate::{app, http, telemetry};

#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about = "An OAuth2 / OpenID-Connect-style authorization server")]
pub struct Cli {
    #[command(flatten)]
    settings: RawSettings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (applies migrations; creates a signing key if there is none).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI document.
    Openapi {
        /// YAML instead of JSON.
        #[arg(long)]
        yaml: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user who can log in at once; prints the user as JSON.
    Create {
        /// 3 to 64 letters, digits, `.`, `_`, `-` or `@`; case-insensitive.
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// A role to grant (repeatable); default `user`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users by username, a page at a time; prints `{"items", "next_cursor"}`.
    List {
        /// Substring of the username or email.
        #[arg(long)]
        q: Option<String>,
        /// `active`, `disabled` or `locked`.
        #[arg(long)]
        status: Option<String>,
        /// Page size, 1 to 200.
        #[arg(long)]
        limit: Option<i64>,
        /// `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Enable a disabled user.
    Enable {
        /// User id or username.
        user: String,
    },
    /// Set a user's password (recovery without mail); ends all their sessions.
    SetPassword {
        /// User id or username.
        user: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user and end all their sessions.
    Disable {
        /// User id or username.
        user: String,
    },
    /// Clear a user's lockout and failed attempts.
    Unlock {
        /// User id or username.
        user: String,
    },
    /// Replace a user's roles.
    SetRoles {
        /// User id or username.
        user: String,
        /// A role (repeatable); none leaves the user without roles.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a client; prints its id and, for a confidential client, its secret (once).
    Create {
        /// A name for people (admin lists, consent pages).
        #[arg(long)]
        name: String,
        /// Choose the client id (default: random).
        #[arg(long)]
        id: Option<String>,
        /// A public client (no secret), e.g. a mobile or CLI app.
        #[arg(long)]
        public: bool,
        /// Allowed grant (repeatable); default `password` and `refresh_token`.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Allowed scope (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// `aud` of its access tokens (repeatable).
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// Refuse users who have not enrolled a second factor.
        #[arg(long)]
        require_mfa: bool,
        /// Where the authorization_code grant may return the browser (one or more;
        /// repeatable). A loopback `http://127.0.0.1/…` URI matches any port.
        #[arg(long = "redirect-uri", num_args = 1..)]
        redirect_uris: Vec<String>,
        /// Where `/oauth/logout` may send the browser afterwards (one or more; repeatable).
        #[arg(long = "post-logout-redirect-uri", num_args = 1..)]
        post_logout_redirect_uris: Vec<String>,
        /// A first-party app: its users are not asked for consent.
        #[arg(long)]
        first_party: bool,
    },
    /// List clients (never their secrets).
    List,
    /// Give a confidential client a new secret, printed this once; the old one stops working.
    RotateSecret {
        /// Client id.
        id: String,
    },
    /// Delete a client and its sessions.
    Delete {
        /// Client id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List signing keys and their state.
    List,
    /// Add a signing key: published in the JWKS at once, signing once every cache of the old
    /// JWKS has expired.
    ///
    /// The new key is `pending` until its `signs_from`: 330 s later (the JWKS max-age of
    /// 300 s plus the 30 s in which every replica re-reads the keys). The key that signed
    /// until then stays published (`verifying`) until its last token has expired
    /// (`--access-token-ttl` after that), then it is `retired` and leaves the JWKS. Prints
    /// every key with its state and times (Unix seconds).
    Rotate {
        /// Algorithm of the new key: RS256, ES256 or EdDSA [default: --signing-alg].
        #[arg(long, value_parser = SigningAlg::parse)]
        alg: Option<SigningAlg>,
    },
}

/// Parses arguments and runs the command; returns the process exit code.
pub async fn run() -> i32 {
    let cli = Cli::parse();
    let settings = match cli.settings.parse() {
        Ok(s) => s,
        Err(err) => {
            eprintln!("latchkey: {err}");
            return 2;
        }
    };
    if let Err(err) = telemetry::init(settings.log_format, std::env::var("LATCHKEY_LOG").ok().as_deref()) {
        eprintln!("latchkey: invalid setting {err}");
        return 2;
    }
    match execute(cli.command, settings).await {
        Ok(()) => 0,
        Err(err) => {
            // One line: the context chain, no backtrace.
            eprintln!("latchkey: {}", format_chain(&err));
            1
        }
    }
}

/// The context chain on one line; a cause its parent's text already repeats is left out
/// (database drivers often wrap an error and print it again).
fn format_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain().map(ToString::to_string) {
        if !parts.last().is_some_and(|last| last.contains(&cause)) {
            parts.push(cause);
        }
    }
    parts.join(": ")
}

async fn execute(command: Command, settings: crate::config::Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => app::serve(settings).await,
        Command::Migrate => {
            let db = crate::store::Db::connect(&settings.database_url).await.with_context(|| {
                format!("cannot open the database {}", crate::store::describe(&settings.database_url))
            })?;
            db.migrate().await.context("cannot apply migrations")?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Openapi { yaml } => {
            println!("{}", http::openapi_document(settings.issuer_str(), yaml));
            Ok(())
        }
        Command::User(cmd) => user_admin(cmd, settings).await,
        Command::Client(cmd) => client_admin(cmd, settings).await,
        Command::Keys(cmd) => {
            let svc = app::open(settings).await?;
            if let KeysCommand::Rotate { alg } = cmd {
                admin::rotate_key(&svc, &Actor::cli(), alg).await.map_err(admin_error)?;
            }
            print_json(&svc.keys().list().await?)
        }
    }
}

/// The operator commands of `latchkey user`, through the same domain functions (checks and
/// audit records) as the admin API, as the actor `cli`.
async fn user_admin(cmd: UserCommand, settings: crate::config::Settings) -> anyhow::Result<()> {
    // Ask for a password before anything is opened: a prompt must not wait on a database.
    let password = match &cmd {
        UserCommand::Create { password_stdin, .. } | UserCommand::SetPassword { password_stdin, .. } => {
            Some(read_password(*password_stdin)?)
        }
        _ => None,
    };
    let svc = app::open(settings).await?;
    let actor = Actor::cli();
    let user = match cmd {
        UserCommand::Create { username, email, roles, .. } => {
            let password = password.unwrap_or_default();
            let input = admin::users::CreateUser { username, email, password, roles };
            admin::users::create(&svc, &actor, input).await
        }
        UserCommand::Enable { user } => {
            let id = admin::users::find(&svc, &user).await.map_err(admin_error)?.id;
            admin::users::set_status(&svc, &actor, &id, UserStatus::Active).await
        }
        UserCommand::SetPassword { user, .. } => {
            let id = admin::users::find(&svc, &user).await.map_err(admin_error)?.id;
            admin::users::set_password(&svc, &actor, &id, password.unwrap_or_default()).await
        }
        UserCommand::List { q, status, limit, cursor } => {
            let filter = admin::users::UserFilter { q, status, limit, cursor };
            let page = admin::users::list(&svc, &filter).await.map_err(admin_error)?;
            let items: Vec<UserView> = page.items.iter().map(UserView::from).collect();
            return print_json(&serde_json::json!({ "items": items, "next_cursor": page.next_cursor }));
        }
        UserCommand::Disable { user } => {
            let id = admin::users::find(&svc, &user).await.map_err(admin_error)?.id;
            admin::users::set_status(&svc, &actor, &id, UserStatus::Disabled).await
        }
        UserCommand::Unlock { user } => {
            let id = admin::users::find(&svc, &user).await.map_err(admin_error)?.id;
            admin::users::unlock(&svc, &actor, &id).await
        }
        UserCommand::SetRoles { user, roles } => {
            let id = admin::users::find(&svc, &user).await.map_err(admin_error)?.id;
            admin::users::set_roles(&svc, &actor, &id, roles).await
        }
    };
    print_json(&UserView::from(&user.map_err(admin_error)?))
}

/// The operator commands of `latchkey client`, through the admin API's domain functions.
async fn client_admin(cmd: ClientCommand, settings: crate::config::Settings) -> anyhow::Result<()> {
    let svc = app::open(settings).await?;
    let actor = Actor::cli();
    match cmd {
        ClientCommand::Create {
            name,
            id,
            public,
            grants,
            scopes,
            audiences,
            require_mfa,
            redirect_uris,
            post_logout_redirect_uris,
            first_party,
        } => {
            // No --grant: the admin API's default grants.
            let grants = (!grants.is_empty()).then_some(grants);
            let input = admin::clients::CreateClient {
                name,
                id,
                public,
                grants,
                scopes,
                audiences,
                require_mfa,
                redirect_uris,
                post_logout_redirect_uris,
                first_party,
            };
            print_json(&admin::clients::create(&svc, &actor, input).await.map_err(admin_error)?)
        }
        ClientCommand::List => {
            let clients = admin::clients::list(&svc).await.map_err(admin_error)?;
            print_json(&clients.iter().map(|c| RegisteredClient::new(c, None)).collect::<Vec<_>>())
        }
        ClientCommand::RotateSecret { id } => {
            print_json(&admin::clients::rotate_secret(&svc, &actor, &id).await.map_err(admin_error)?)
        }
        ClientCommand::Delete { id } => {
            admin::clients::delete(&svc, &actor, &id).await.map_err(admin_error)?;
            print_json(&serde_json::json!({ "deleted": id }))
        }
    }
}

fn admin_error(err: AdminError) -> anyhow::Error {
    match err {
        AdminError::Invalid(reasons) => anyhow::anyhow!(reasons.join("; ")),
        other => anyhow::Error::new(other),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to prompt for a password: use --password-stdin");
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Repeat password: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(first)
}
