//! `cairn completions SHELL` (clap_complete) and `cairn man` (clap_mangen): generated from
//! the clap definition, so they always match the binary.

use clap::CommandFactory;
use serde_json::json;

use crate::cli::Cli;
use crate::commands::Output;

/// The completion script for `shell` (bash, zsh, fish, elvish, powershell).
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<Output> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cairn", &mut buf);
    let script = String::from_utf8(buf)?;
    Ok(Output {
        json: json!({ "shell": shell.to_string(), "script": script }),
        text: script.trim_end().to_string(),
    })
}

/// The man page of `cairn` (section 1, roff).
pub fn man() -> anyhow::Result<Output> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
    let page = String::from_utf8(buf)?;
    Ok(Output {
        json: json!({ "section": 1, "roff": page }),
        text: page.trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_completion_and_man_page() {
        let bash = completions(clap_complete::Shell::Bash).unwrap().text;
        assert!(bash.contains("complete -F"));
        for word in [
            "transfer",
            "keygen",
            "change-password",
            "--password-file",
            "man",
        ] {
            assert!(bash.contains(word), "bash completion lacks {word}");
        }
        let man = man().unwrap().text;
        assert!(man.contains(".TH cairn 1"), "{man}");
        assert!(man.contains("transfer"));
    }
}
