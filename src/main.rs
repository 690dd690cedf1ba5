use std::process::ExitCode;

use clap::Parser;
use netc::commands::{self, Cli, Command};

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `netc ... | head` into a panic on the next print;
    // a command-line tool should just stop, as cat or grep do.
    #[cfg(unix)]
    // SAFETY: setting a signal's action to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let run = move || match cli.command {
        Command::Check(a) => commands::check::run(a),
        Command::Summary(a) => commands::summary::run(a),
        Command::Upgrade(a) => commands::upgrade::run(a),
        Command::Visualize(a) => commands::visualize::run(a),
        Command::Data(a) => commands::data::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::Classify(a) => commands::classify::run(a),
        Command::Time(a) => commands::time::run(a),
    };
    // The command runs on a thread of the pool that its parallel loops use, so that each
    // loop starts where the command already is: called from outside the pool, every loop
    // handed its work to a pool thread and waited for it (on one thread, the median LeNet
    // step of `netc time` went from 14.8 to 13.7 ms with this).
    let result = match rayon::ThreadPoolBuilder::new().build() {
        Ok(pool) => pool.install(run),
        Err(_) => run(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(commands::exit_code_of(&report))
        }
    }
}
