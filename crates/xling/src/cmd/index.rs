//! Placeholder until this subcommand lands.

#[derive(clap::Subcommand)]
pub enum Command {
    /// Not implemented yet.
    Todo,
}

pub fn run(_command: Command) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
