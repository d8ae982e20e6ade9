//! The `cairn key …` commands through the real binary: encrypted by default, the passphrase
//! typed at the terminal prompt (driven through tmux), from --password-file or the
//! environment; wrong passphrases and damaged files; completions and the man page.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `cairn --keyfile KEYFILE ARGS` with HOME in `home`, a cheap KDF for new files, no
/// controlling terminal (setsid) and the given extra environment.
fn cairn(home: &Path, keyfile: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("setsid");
    cmd.arg("--wait")
        .arg(CAIRN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CAIRN_KEYSTORE_SCRYPT_LOG_N", "10")
        .arg("--rpc")
        .arg("http://127.0.0.1:9")
        .arg("--keyfile")
        .arg(keyfile)
        .args(args)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run cairn")
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", show(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(out)))
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn key_commands_with_password_file_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let kf = home.join(".cairn/key.json");
    let pw = write(&home.join("pw.txt"), "first pass\n");
    let pw_s = pw.to_str().unwrap();

    // key new: encrypted, mode 0600, the address in clear.
    let created = json_of(&cairn(
        home,
        &kf,
        &["--json", "key", "new", "--password-file", pw_s],
        &[],
    ));
    assert_eq!(created["encrypted"], true);
    let address = created["address"].as_str().unwrap().to_string();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&kf).unwrap()).unwrap();
    assert_eq!(file["kind"], "cairn-keystore");
    assert_eq!(file["version"], 1);
    assert_eq!(file["address"], address.as_str());
    assert_eq!(file["kdf"]["log_n"], 10, "the test knob");
    assert!(file.get("secret_key").is_none());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&kf).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // address needs no passphrase; list shows the file.
    let a = json_of(&cairn(home, &kf, &["--json", "address"], &[]));
    assert_eq!(a["address"], address.as_str());
    let listed = json_of(&cairn(home, &kf, &["--json", "key", "list"], &[]));
    assert_eq!(listed["keys"][0]["address"], address.as_str());
    assert_eq!(listed["keys"][0]["format"], "encrypted");

    // Export: refused without a destination flag (usage), works with the passphrase from
    // the environment, and warns.
    let out = cairn(home, &kf, &["key", "export"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let out = cairn(
        home,
        &kf,
        &["key", "export", "--print-secret"],
        &[("CAIRN_PASSWORD", "first pass")],
    );
    assert!(out.status.success(), "{}", show(&out));
    let secret = String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(secret.len(), 64);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: printing the SECRET key"),
        "{}",
        show(&out)
    );

    // Wrong passphrase: exit 1, a clear message, no secret.
    let out = cairn(
        home,
        &kf,
        &["key", "export", "--print-secret"],
        &[("CAIRN_PASSWORD", "nope")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wrong passphrase, or the file is corrupted"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // No passphrase anywhere and no terminal: says what to pass.
    let out = cairn(home, &kf, &["key", "export", "--print-secret"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--password-file") && err.contains("CAIRN_PASSWORD"),
        "{err}"
    );

    // change-password: the old one stops working, the new one works, same key.
    let new_pw = write(&home.join("new.txt"), "second pass\r\n");
    let changed = json_of(&cairn(
        home,
        &kf,
        &[
            "--json",
            "key",
            "change-password",
            "--password-file",
            pw_s,
            "--new-password-file",
            new_pw.to_str().unwrap(),
        ],
        &[],
    ));
    assert_eq!(changed["address"], address.as_str());
    let out = cairn(
        home,
        &kf,
        &["key", "export", "--print-secret", "--password-file", pw_s],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "old passphrase: {}", show(&out));
    let again = json_of(&cairn(
        home,
        &kf,
        &["--json", "key", "export", "--print-secret"],
        &[("CAIRN_PASSWORD", "second pass")],
    ));
    assert_eq!(again["secretKey"], secret.as_str());

    // Import from a hex secret file and from a plaintext key file (into encrypted files).
    let secret_file = write(&home.join("secret.hex"), &format!("{secret}\n"));
    let imported = home.join("imported.json");
    let r = json_of(&cairn(
        home,
        &kf,
        &[
            "--json",
            "key",
            "import",
            "--secret-file",
            secret_file.to_str().unwrap(),
            "--out",
            imported.to_str().unwrap(),
            "--password-file",
            pw_s,
        ],
        &[],
    ));
    assert_eq!(
        (r["address"].as_str(), r["encrypted"].as_bool()),
        (Some(&*address), Some(true))
    );
    let plain = home.join("plain.json");
    let out = cairn(
        home,
        &kf,
        &[
            "key",
            "new",
            "--insecure-plaintext",
            "--out",
            plain.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UNENCRYPTED"),
        "{}",
        show(&out)
    );
    let plain_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&plain).unwrap()).unwrap();
    assert_eq!(plain_json["secret_key"].as_str().unwrap().len(), 64);
    let from_plain = home.join("from-plain.json");
    let r = json_of(&cairn(
        home,
        &kf,
        &[
            "--json",
            "key",
            "import",
            "--from",
            plain.to_str().unwrap(),
            "--out",
            from_plain.to_str().unwrap(),
        ],
        &[("CAIRN_PASSWORD", "third")],
    ));
    assert_eq!(r["address"], plain_json["address"]);
    // Existing file: refused before any passphrase is asked, file untouched.
    let before = std::fs::read(&from_plain).unwrap();
    let out = cairn(
        home,
        &kf,
        &[
            "key",
            "import",
            "--from",
            plain.to_str().unwrap(),
            "--out",
            from_plain.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&from_plain).unwrap(), before);

    // A damaged file (one hex digit of the ciphertext changed) and a truncated one.
    let text = std::fs::read_to_string(&imported).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let ct = v["ciphertext"].as_str().unwrap();
    let flipped_digit = if ct.as_bytes()[10] == b'0' { "1" } else { "0" };
    let damaged_ct = format!("{}{}{}", &ct[..10], flipped_digit, &ct[11..]);
    let damaged = write(&home.join("damaged.json"), &text.replace(ct, &damaged_ct));
    let out = cairn(
        home,
        &damaged,
        &[
            "--json",
            "key",
            "export",
            "--print-secret",
            "--password-file",
            pw_s,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wrong passphrase, or the file is corrupted"),
        "{e}"
    );
    let truncated = write(&home.join("truncated.json"), &text[..text.len() / 2]);
    let out = cairn(home, &truncated, &["address"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("truncated or damaged"),
        "{}",
        show(&out)
    );
    let v9 = write(
        &home.join("v9.json"),
        &text.replace("\"version\": 1", "\"version\": 9"),
    );
    let out = cairn(home, &v9, &["address"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keystore version 9"),
        "{}",
        show(&out)
    );

    // key list over the directory: every key file, damaged ones skipped with a reason.
    let listed = json_of(&cairn(
        home,
        &kf,
        &["--json", "key", "list", home.to_str().unwrap()],
        &[],
    ));
    let keys: Vec<(String, String)> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                k["format"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("damaged.json", "encrypted"),
            ("from-plain.json", "encrypted"),
            ("imported.json", "encrypted"),
            ("plain.json", "plaintext"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(listed["skipped"].as_array().unwrap().len(), 2, "{listed}");
}

/// A tmux server on a private socket, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        Tmux {
            socket: format!("cairn-test-{tag}-{}", std::process::id()),
        }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (apt-get install tmux)")
    }

    /// Starts `shell_command` in a new detached session `name`.
    fn start(&self, name: &str, shell_command: &str) {
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "200",
            "-y",
            "50",
            shell_command,
        ]);
        assert!(out.status.success(), "tmux new-session: {}", show(&out));
    }

    fn screen(&self, name: &str) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", name, "-S", "-200"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (at most 30 s) until the pane shows `needle`; returns the screen.
    fn wait_for(&self, name: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen(name);
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "pane {name} never showed {needle:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `text` literally, then Enter.
    fn type_line(&self, name: &str, text: &str) {
        assert!(
            self.cmd(&["send-keys", "-t", name, "-l", text])
                .status
                .success()
        );
        assert!(
            self.cmd(&["send-keys", "-t", name, "Enter"])
                .status
                .success()
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The shell command running cairn in a pane: clean environment, exit status printed.
fn pane_command(home: &Path, keyfile: &Path, args: &str) -> String {
    format!(
        "env -u CAIRN_PASSWORD -u CAIRN_NEW_PASSWORD -u CAIRN_KEYFILE -u CAIRN_RPC HOME='{}' CAIRN_KEYSTORE_SCRYPT_LOG_N=10 '{CAIRN}' --keyfile '{}' {args}; echo CAIRN_EXIT=$?; sleep 60",
        home.display(),
        keyfile.display()
    )
}

#[test]
fn key_new_prompts_twice_at_the_terminal_then_list_and_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let kf = home.join(".cairn/key.json");
    let tmux = Tmux::new("keynew");

    // Two different entries: refused, nothing written.
    tmux.start("mismatch", &pane_command(home, &kf, "key new"));
    tmux.wait_for("mismatch", "New passphrase for");
    tmux.type_line("mismatch", "one thing");
    tmux.wait_for("mismatch", "Repeat the passphrase");
    tmux.type_line("mismatch", "another thing");
    let screen = tmux.wait_for("mismatch", "CAIRN_EXIT=");
    assert!(screen.contains("CAIRN_EXIT=1"), "{screen}");
    assert!(screen.contains("the two entries differ"), "{screen}");
    assert!(!kf.exists());

    // Same entry twice: an encrypted key file; the passphrase never shows on screen.
    tmux.start("new", &pane_command(home, &kf, "key new"));
    tmux.wait_for("new", "New passphrase for");
    tmux.type_line("new", "tmux typed pass");
    tmux.wait_for("new", "Repeat the passphrase");
    tmux.type_line("new", "tmux typed pass");
    let screen = tmux.wait_for("new", "CAIRN_EXIT=");
    assert!(screen.contains("CAIRN_EXIT=0"), "{screen}");
    assert!(!screen.contains("tmux typed pass"), "echo is off: {screen}");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&kf).unwrap()).unwrap();
    assert_eq!(file["kind"], "cairn-keystore");
    let address = file["address"].as_str().unwrap().to_string();
    assert!(screen.contains(&address), "{screen}");

    // key list shows the address (no passphrase needed).
    let out = cairn(home, &kf, &["key", "list"], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&address) && listed.contains("encrypted"),
        "{listed}"
    );

    // Unlocking at the prompt: a wrong passphrase fails clearly, the right one works.
    tmux.start(
        "wrong",
        &pane_command(home, &kf, "key export --print-secret"),
    );
    tmux.wait_for("wrong", "Passphrase for");
    tmux.type_line("wrong", "not it");
    let screen = tmux.wait_for("wrong", "CAIRN_EXIT=");
    assert!(screen.contains("CAIRN_EXIT=1"), "{screen}");
    assert!(screen.contains("wrong passphrase"), "{screen}");

    tmux.start(
        "right",
        &pane_command(home, &kf, "--json key export --print-secret"),
    );
    let screen = tmux.wait_for("right", "Passphrase for");
    assert!(
        screen.contains(&address),
        "the prompt names the account: {screen}"
    );
    tmux.type_line("right", "tmux typed pass");
    let screen = tmux.wait_for("right", "CAIRN_EXIT=");
    assert!(screen.contains("CAIRN_EXIT=0"), "{screen}");
    let from_env = json_of(&cairn(
        home,
        &kf,
        &["--json", "key", "export", "--print-secret"],
        &[("CAIRN_PASSWORD", "tmux typed pass")],
    ));
    let secret = from_env["secretKey"].as_str().unwrap();
    assert!(screen.contains(secret), "{screen}");
}

#[test]
fn completions_and_man_page() {
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("none.json");
    let out = cairn(dir.path(), &kf, &["completions", "bash"], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let bash = String::from_utf8_lossy(&out.stdout);
    assert!(bash.contains("complete -F"), "{bash}");
    for word in ["transfer", "change-password", "--offline", "decode"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish"] {
        let out = cairn(dir.path(), &kf, &["completions", shell], &[]);
        assert!(out.status.success(), "{}", show(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("transfer"));
    }
    let out = cairn(dir.path(), &kf, &["completions", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(2), "unknown shell: {}", show(&out));
    let out = cairn(dir.path(), &kf, &["man"], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(
        man.starts_with(".ie") || man.contains("\n.TH cairn"),
        "{man}"
    );
    assert!(man.contains(".TH cairn 1"), "{man}");
    assert!(man.contains("transfer"), "{man}");
}
