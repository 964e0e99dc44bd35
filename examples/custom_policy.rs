//! latchkey as a library with its own second-factor rule: administrators always show a
//! second factor, whatever the client. Settings come from the same `LATCHKEY_*` variables
//! (and defaults) as `latchkey serve`:
//!
//! ```text
//! cargo run --release --example custom_policy
//! ```

use clap::Parser;
use latchkey::config::RawSettings;
use latchkey::model::policy::{LoginContext, PolicyFuture, SecondFactorPolicy};

struct AdminsAlwaysUseMfa;

impl SecondFactorPolicy for AdminsAlwaysUseMfa {
    fn second_factor_required<'a>(&'a self, login: LoginContext<'a>) -> PolicyFuture<'a> {
        Box::pin(async move {
            login.enrolled || login.client.require_mfa || login.user.roles.iter().any(|r| r == "admin")
        })
    }
}

/// The server's settings, read like `latchkey serve` reads them.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    settings: RawSettings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Args::parse().settings.parse()?;
    let bind = settings.bind;
    let svc = latchkey::app::open(settings).await?.with_second_factor_policy(AdminsAlwaysUseMfa);
    latchkey::app::run(svc, std::net::TcpListener::bind(bind)?).await
}
