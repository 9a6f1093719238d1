//! Runs the built `emberctl` binary where no control plane is needed or reachable:
//! a closed port must give exit code 3 and one line naming the URL, and bad slot
//! arguments must fail as usage errors before any connection is attempted.

use std::net::TcpListener;
use std::process::{Command, Output};

/// A URL on which nothing listens: bind an ephemeral port, then free it.
fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn emberctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emberctl"))
        .args(args)
        .env_remove("EMBER_CONTROL_PLANE")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unreachable_control_plane_exits_3_with_one_line_naming_the_url() {
    let url = closed_url();
    for cmd in [
        &["status"][..],
        &["nodes", "--json"],
        &["join", "n4"],
        &["watch"],
    ] {
        let mut args = vec!["--control-plane", url.as_str(), "--timeout", "3s"];
        args.extend_from_slice(cmd);
        let out = emberctl(&args);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(3), "{cmd:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{cmd:?}: not one line: {err}");
        assert!(
            err.starts_with(&format!("error: cannot reach the control plane at {url}: ")),
            "{cmd:?}: {err}"
        );
        assert!(
            err.trim_end()
                .ends_with("(set --control-plane or EMBER_CONTROL_PLANE)"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{cmd:?}: stdout should be empty");
    }
}

#[test]
fn env_var_names_the_control_plane() {
    let url = closed_url();
    let out = Command::new(env!("CARGO_BIN_EXE_emberctl"))
        .arg("status")
        .env("EMBER_CONTROL_PLANE", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr_of(&out).contains(&url), "{}", stderr_of(&out));
}

#[test]
fn bad_slots_fail_before_any_connection() {
    // The closed port proves no connection is attempted: that would exit 3.
    let url = closed_url();
    let out = emberctl(&["--control-plane", &url, "assign", "x", "16384"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(
        stderr_of(&out),
        "error: slot 16384 is out of range: slots are 0-16383\n"
    );

    let out = emberctl(&["--control-plane", &url, "assign", "x", "0-5460", "10-5"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_of(&out),
        "error: slot range 10-5 is reversed: write it as 5-10\n"
    );

    // Without any flag at all (default URL) it still never needs a control plane.
    let out = emberctl(&["assign", "x", "16384"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2_and_completions_need_no_control_plane() {
    let out = emberctl(&["assign", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = emberctl(&["config", "set", "require-full-coverage", "maybe"]);
    assert_eq!(out.status.code(), Some(2));

    let out = emberctl(&["--control-plane", &closed_url(), "completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("emberctl"));

    let out = emberctl(&["assign", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));
}
