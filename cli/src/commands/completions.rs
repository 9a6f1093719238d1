//! `emberctl completions SHELL`: a completion script generated from the clap definition.

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs};

pub fn run(a: CompletionsArgs) {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "emberctl", &mut std::io::stdout());
}
