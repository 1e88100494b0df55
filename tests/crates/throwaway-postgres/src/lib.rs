//! A PostgreSQL server for tests: the one `DATABASE_URL` names, or a throwaway one started
//! from the installed server binaries (`initdb`, `pg_ctl`) in a temporary directory, on a free
//! port, and stopped when it is dropped or, if the test process dies first, by a watchdog that
//! outlives it. As root (the server refuses to run as root), the server runs as the `postgres`
//! user, or `nobody`.
//!
//! Where neither is available, [`Postgres::get`] returns `None` after printing one line that
//! says the tests were skipped and why; with [`REQUIRE`] set (CI sets it), it panics instead,
//! so that CI always runs them.
//!
//! ```no_run
//! # async fn demo() {
//! let Some(server) = throwaway_postgres::Postgres::get() else { return }; // skipped
//! let url = server.database("my_test").await; // a fresh, empty database
//! # let _ = url; }
//! ```

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sqlx::Connection as _;

/// The environment variable that turns a skip into a failure: `.ci/run` sets it to `1`.
pub const REQUIRE: &str = "SIGNALS_REQUIRE_POSTGRES";

/// Where the server binaries are looked for, after `PATH`.
const BIN_DIRS: &[&str] = &[
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
    "/usr/local/pgsql/bin",
];

/// A PostgreSQL server the tests may create databases on.
#[derive(Debug)]
pub struct Postgres {
    /// The URL of its `postgres` database, as its superuser.
    url: String,
    /// The server this process started, stopped on drop; `None` for `DATABASE_URL`'s.
    started: Option<Started>,
}

#[derive(Debug)]
struct Started {
    pg_ctl: PathBuf,
    data: PathBuf,
    user: Option<String>,
    _directory: tempfile::TempDir,
}

impl Postgres {
    /// The server to test against: `DATABASE_URL`'s, or a new one of this process's own.
    /// `None` (after printing why) when there is neither, unless [`REQUIRE`] is set.
    ///
    /// # Panics
    ///
    /// When a server cannot be started, or there is none and [`REQUIRE`] is set.
    #[must_use]
    pub fn get() -> Option<Self> {
        Self::get_from(
            std::env::var("DATABASE_URL").ok(),
            &search_path(),
            std::env::var_os(REQUIRE).is_some(),
        )
    }

    /// This test binary's server, from [`get`](Self::get) on first use and the same one
    /// after: a `static`, never dropped, stopped by its watchdog when the binary exits.
    /// `None` when the tests are skipped.
    #[must_use]
    pub fn shared() -> Option<&'static Self> {
        static SERVER: std::sync::OnceLock<Option<Postgres>> = std::sync::OnceLock::new();
        SERVER.get_or_init(Self::get).as_ref()
    }

    /// [`get`](Self::get), from its inputs: `url`, else the binaries in `dirs`; else `None`,
    /// or a panic if `require`.
    fn get_from(url: Option<String>, dirs: &[PathBuf], require: bool) -> Option<Self> {
        if let Some(url) = url {
            return Some(Self { url, started: None });
        }
        if let Some((initdb, pg_ctl)) = binaries(dirs) {
            let server = Self::start(&initdb, &pg_ctl)
                .unwrap_or_else(|error| panic!("could not start PostgreSQL: {error}"));
            return Some(server);
        }
        let why = "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in \
                   /usr/lib/postgresql/*/bin, and no DATABASE_URL";
        assert!(
            !require,
            "{REQUIRE} is set, and there is no PostgreSQL to test against: {why}"
        );
        eprintln!("skipped: the PostgreSQL tests: {why}");
        None
    }

    /// Starts a server in a new temporary directory, on a free port, answering its
    /// superuser `postgres` without a password on 127.0.0.1.
    fn start(initdb: &Path, pg_ctl: &Path) -> io::Result<Self> {
        let directory = tempfile::tempdir()?;
        let user = server_user();
        if user.is_some() {
            // The server's user must reach its directory.
            set_mode(directory.path(), 0o777)?;
        }
        let data = directory.path().join("data");
        run(command(user.as_deref(), initdb)
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .arg("-D")
            .arg(&data))?;
        let port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            directory.path().display()
        );
        run(command(user.as_deref(), pg_ctl)
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(directory.path().join("server.log"))
            .args(["-o", &options]))?;
        let started = Started {
            pg_ctl: pg_ctl.to_owned(),
            data,
            user,
            _directory: directory,
        };
        started.watch(std::process::id())?;
        Ok(Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            started: Some(started),
        })
    }

    /// Restarts the server (`pg_ctl restart`, fast: open connections are cut), and waits until
    /// it accepts connections again: what a failover or an upgrade does to its clients.
    ///
    /// # Errors
    ///
    /// When the server is `DATABASE_URL`'s (this process did not start it, and will not
    /// restart it), or `pg_ctl` fails.
    pub fn restart(&self) -> io::Result<()> {
        let Some(started) = &self.started else {
            return Err(io::Error::other(
                "the server is DATABASE_URL's, not started by this process: not restarting it",
            ));
        };
        let log = started.data.with_file_name("server.log");
        run(command(started.user.as_deref(), &started.pg_ctl)
            .args(["restart", "-w", "-t", "60", "-m", "fast", "-D"])
            .arg(&started.data)
            .arg("-l")
            .arg(log))
    }

    /// Whether this process started the server (it is not `DATABASE_URL`'s), so that it can
    /// [`restart`](Self::restart) it.
    #[must_use]
    pub fn started_here(&self) -> bool {
        self.started.is_some()
    }

    /// The URL of the server's `postgres` database, as its superuser.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new, empty database named `name` (dropped first if it exists); returns its URL.
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub async fn database(&self, name: &str) -> String {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "a database name of letters, digits and _: {name:?}"
        );
        let mut admin = sqlx::PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {}: {error}", self.url));
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&statement)
                .execute(&mut admin)
                .await
                .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
        }
        admin.close().await.ok();
        match self.url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => format!("{}/{name}", self.url),
        }
    }
}

impl Started {
    /// Starts a watchdog that stops the server once process `pid` is gone: a test process
    /// that aborts, or whose server lives in a `static` (never dropped), leaves none running.
    fn watch(&self, pid: u32) -> io::Result<()> {
        // Run as this process's user, who may signal it; the server's user may not.
        let run_as = self
            .user
            .as_ref()
            .map(|user| format!("runuser -u {user} -- "))
            .unwrap_or_default();
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {run_as}'{}' stop -m immediate -D '{}'",
            self.pg_ctl.display(),
            self.data.display()
        );
        Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(started) = &self.started {
            let _ = command(started.user.as_deref(), &started.pg_ctl)
                .args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(&started.data)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `PATH`'s directories, then the usual places of the server binaries.
fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    dirs.extend(BIN_DIRS.iter().map(PathBuf::from));
    dirs
}

/// `initdb` and `pg_ctl` from the first directory of `dirs` that has both.
fn binaries(dirs: &[PathBuf]) -> Option<(PathBuf, PathBuf)> {
    dirs.iter().find_map(|dir| {
        let (initdb, pg_ctl) = (dir.join("initdb"), dir.join("pg_ctl"));
        (initdb.is_file() && pg_ctl.is_file()).then_some((initdb, pg_ctl))
    })
}

/// The user to run the server as: none unless this process is root, which the server refuses.
fn server_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let root = status
        .lines()
        .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"));
    if !root {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let has = |user: &str| {
        passwd
            .lines()
            .any(|line| line.starts_with(&format!("{user}:")))
    };
    Some(
        if has("postgres") {
            "postgres"
        } else {
            "nobody"
        }
        .to_owned(),
    )
}

/// `program`, run as `user` when there is one.
fn command(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn run(command: &mut Command) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Postgres, binaries};

    #[test]
    fn without_a_server_the_tests_are_skipped_unless_required() {
        assert!(Postgres::get_from(None, &[], false).is_none());
        let required = std::panic::catch_unwind(|| Postgres::get_from(None, &[], true));
        let message = *required.unwrap_err().downcast::<String>().unwrap();
        assert!(
            message.contains("SIGNALS_REQUIRE_POSTGRES is set"),
            "{message}"
        );
        let given = Postgres::get_from(Some("postgres://elsewhere/db".into()), &[], true);
        assert_eq!(given.unwrap().url(), "postgres://elsewhere/db");
    }

    #[test]
    fn binaries_are_found_only_where_both_are() {
        let dir = tempfile::tempdir().unwrap();
        let only_initdb = dir.path().join("a");
        let both = dir.path().join("b");
        for (folder, files) in [
            (&only_initdb, &["initdb"][..]),
            (&both, &["initdb", "pg_ctl"]),
        ] {
            std::fs::create_dir(folder).unwrap();
            for file in files {
                std::fs::write(folder.join(file), "").unwrap();
            }
        }
        assert_eq!(binaries(std::slice::from_ref(&only_initdb)), None);
        assert_eq!(
            binaries(&[PathBuf::from("/nonexistent"), only_initdb, both.clone()]),
            Some((both.join("initdb"), both.join("pg_ctl")))
        );
    }
}
