#[tokio::main]
async fn main() {
    std::process::exit(latchkey::cli::run().await);
}
