use clap::Parser;
use gateway::config::{Cli, Command};
use gateway::{admin, db, startup, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let server = startup::Server::build(&args).await?;
            println!("Roost is running. Open {}", server.state().settings.public_origin);
            server.run(startup::shutdown_signal()).await?;
        }
        Command::Migrate(args) => {
            let db = db::Db::open(&args.database_location(), args.database_token.as_deref()).await?;
            let applied = db::migrate::run(&db).await?;
            println!("applied {} migration(s)", applied.len());
        }
        Command::Admin(args) => admin::run(args).await?,
    }
    Ok(())
}
