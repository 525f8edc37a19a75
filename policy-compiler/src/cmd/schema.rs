//! `serin schema`: the policy's JSON Schema, for editors.

use super::EXIT_OK;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    println!(
        "{}",
        serde_json::to_string_pretty(&serin_compiler::schema::schema()).unwrap_or_default()
    );
    EXIT_OK
}
