use clap::Parser;
use gateway::config::{AgentExecArgs, Cli, Command};
use gateway::{admin, db, startup, telemetry};

fn main() -> std::process::ExitCode {
    gateway::malloc::tune();
    let cli = Cli::parse();
    // The agent helper confines itself and execs Node: no logging set-up, no async runtime.
    if let Command::AgentExec(args) = cli.command {
        return agent_exec(args);
    }
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("roost: could not start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
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
            println!("Roost is running. Open {}", server.state().site.public_origin);
            server.run(startup::shutdown_signal()).await?;
        }
        Command::Migrate(args) => {
            let db = db::Db::open(&args.database_location(), args.database_token.as_deref()).await?;
            let applied = db::migrate::run(&db).await?;
            println!("applied {} migration(s)", applied.len());
        }
        Command::Reconcile(args) => startup::reconcile_once(&args).await?,
        Command::Admin(args) => admin::run(args).await?,
        Command::AgentExec(_) => unreachable!("handled before the runtime starts"),
    }
    Ok(())
}

/// Exit status 125 (as `env` and container runtimes use): the helper failed, the agent never ran.
fn agent_exec(args: AgentExecArgs) -> std::process::ExitCode {
    let policy = match serde_json::from_str(&args.policy) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("roost agent-exec: the policy is not valid: {e}");
            return std::process::ExitCode::from(125);
        }
    };
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let error = provisioner::local::sandbox::exec(&policy, std::path::Path::new(program), rest);
    eprintln!("roost agent-exec: {error}");
    std::process::ExitCode::from(125)
}
