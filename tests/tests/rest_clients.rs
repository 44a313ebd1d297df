//! The REST API driven by real RouterOS REST clients, end to end through a
//! running dataplane: python `requests` and `rosrestpy` (PyPI), installed
//! into a virtual environment of the test's own (reused across runs). The
//! script is tests/py/rest_clients.py; its assertions are the test's. When
//! PyPI cannot be reached the test says so and passes without running it.

use std::path::{Path, PathBuf};
use std::process::Command;

use ctrack_tests::{
    Running, one_port_capture, one_port_run_args, scratch_dir, show, wait_all_tracked,
};
use ctrack_traffic::synth::Mix;
use serde_json::Value;

/// A virtual environment with `requests` and `rosrestpy`, or why not.
fn venv() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rest-clients-venv");
    let py = dir.join("bin/python3");
    let ready = dir.join(".ready");
    if ready.exists() {
        return Ok(py);
    }
    let run = |c: &mut Command| -> Result<(), String> {
        let out = c.output().map_err(|e| format!("{c:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{c:?} failed: {}", show(&out)))
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    run(Command::new(&py).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--timeout",
        "30",
        "requests",
        "rosrestpy",
    ]))?;
    std::fs::write(&ready, b"").map_err(|e| e.to_string())?;
    Ok(py)
}

#[test]
fn requests_and_rosrestpy_list_query_print_remove_and_set() {
    let py = match venv() {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: cannot install requests and rosrestpy from PyPI: {why}");
            return;
        }
    };
    let dir = scratch_dir("rest-clients");
    let (run, mix) = run_mix(&dir, &[]);
    let total = (mix.tcp + mix.udp + mix.icmp) as u64;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/rest_clients.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(&run.api)
        .args([mix.tcp, mix.udp, mix.icmp].map(|n| n.to_string()))
        .output()
        .expect("run the python client script");
    let found = findings(&out);
    assert_eq!(found["listed"], total);
    assert_eq!(found["queried"], (mix.udp + mix.icmp) as u64);
    assert_eq!(found["tracking"], "45m");
    assert_eq!(found["removed"], 3);
    assert_eq!(found["rosrestpy"], total - 3, "{found}");
    assert_eq!(found["filter"], 2, "{found}");

    // What the clients changed, seen through the CLI: four fewer
    // connections (three removed with requests, one with rosrestpy).
    assert_eq!(run.table().len() as u64, total - 4);
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}

/// The last line of a script's stdout, as JSON; the script must have
/// succeeded.
fn findings(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", show(out));
    serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("the script's findings ({e}): {}", show(out)))
}

/// `ctrack run` (2 workers, `extra` arguments before the servers') over a
/// capture of a small mix whose connections stay open, once every packet
/// is tracked.
fn run_mix(dir: &Path, extra: &[String]) -> (Running, Mix) {
    let mix = Mix {
        tcp: 12,
        udp: 9,
        icmp: 4,
        exchanges: 2,
        payload: 100,
        keep_open: true,
        ..Mix::default()
    };
    let sent = one_port_capture(dir, &mix);
    // Timeouts long enough that nothing expires while the clients look
    // (a loaded machine may take a while between the capture and them).
    let mut args: Vec<&str> = vec![
        "--set",
        "icmp-timeout=1h",
        "--set",
        "udp-timeout=1h",
        "--set",
        "udp-stream-timeout=1h",
    ];
    args.extend(extra.iter().map(String::as_str));
    let run = Running::start(&one_port_run_args(dir, 2, false, &args));
    wait_all_tracked(&run, sent);
    (run, mix)
}

/// `www-ssl` as ctrack serves it: the config's TLS certificate and a Basic
/// user (its password stored as an argon2 hash), met by `requests`
/// (verifying the certificate) and by rosrestpy.
#[test]
fn tls_and_a_basic_user_for_requests_and_rosrestpy() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let py = match venv() {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: cannot install requests and rosrestpy from PyPI: {why}");
            return;
        }
    };
    let dir = scratch_dir("rest-tls");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("api.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("api.key"), cert.key_pair.serialize_pem()).unwrap();
    let salt = SaltString::encode_b64(b"rest-tls-test-salt").unwrap();
    let hash = argon2::Argon2::default()
        .hash_password(b"Pa55word", &salt)
        .unwrap()
        .to_string();
    let config = format!(
        "[api]\ntls-cert = \"{}\"\ntls-key = \"{}\"\n\n[[api.users]]\nname = \"admin\"\npassword-hash = \"{hash}\"\n",
        dir.join("api.crt").display(),
        dir.join("api.key").display()
    );
    std::fs::write(dir.join("ctrack.toml"), config).unwrap();
    // A token on the command line too: it works beside the user, and
    // `ctrack run` warns that it shows in `ps`.
    let config_arg = [
        "--config".to_string(),
        dir.join("ctrack.toml").display().to_string(),
        "--api-token".to_string(),
        "t0ken".to_string(),
    ];
    let (run, mix) = run_mix(&dir, &config_arg);
    assert!(run.api.starts_with("https://"), "{}", run.api);
    let total = (mix.tcp + mix.udp + mix.icmp) as u64;
    let out = Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("py/rest_tls.py"))
        .arg(&run.api)
        .args(["admin", "Pa55word"])
        .arg(dir.join("api.crt"))
        .arg(total.to_string())
        .output()
        .expect("run the python TLS script");
    let found = findings(&out);
    assert_eq!(found["listed"], total);
    assert_eq!(found["rosrestpy"], total);
    assert_ne!(found["plain"], 200, "{found}");
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--api-token on the command line shows in `ps`"),
        "{}",
        show(&out)
    );
}
