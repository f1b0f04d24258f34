//! libpq's password file (`PGPASSFILE`, else `~/.pgpass`): lines of
//! `hostname:port:database:username:password`, `*` matching anything, `\:` and `\\` escaping,
//! the first matching line winning; ignored when group or others may read it.

use std::path::{Path, PathBuf};

/// The connection a password is looked up for.
pub(crate) struct Lookup<'a> {
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub user: &'a str,
}

/// The password file libpq would read: `PGPASSFILE`, else `$HOME/.pgpass`.
pub(crate) fn location(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(file) = env("PGPASSFILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(file));
    }
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(&home).join(".pgpass"))
}

/// The password for `lookup` from the file at `path`, if the file exists, is private to its
/// owner and has a matching line. Problems are logged (never a line's content) and make the
/// file count as absent, as in libpq.
pub(crate) fn password(path: &Path, lookup: &Lookup<'_>) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        tracing::warn!(file = %path.display(), "the password file is not a plain file; ignoring it");
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "the password file can be read by group or others; ignoring it: chmod 0600 it"
            );
            return None;
        }
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the password file; ignoring it");
            return None;
        }
    };
    let port = lookup.port.to_string();
    let wanted = [lookup.host, port.as_str(), lookup.database, lookup.user];
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split(line)?;
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want);
            matches.then(|| fields[4].clone())
        })
}

/// The five fields of a line, unescaped; `None` for a line with fewer. As in libpq, the
/// password ends at the next unescaped colon.
fn split(line: &str) -> Option<[String; 5]> {
    let mut fields: Vec<String> = Vec::with_capacity(5);
    let mut current = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if fields.len() < 4 => match chars.next() {
                Some(next) => current.push(next),
                None => return None,
            },
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut current)),
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ':' => break,
            c => current.push(c),
        }
    }
    if fields.len() < 4 {
        return None;
    }
    fields.push(current);
    fields.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_unescape_and_the_password_ends_at_an_unescaped_colon() {
        let f = split(r"db\:host:5432:*:me:pa\:s\\s:ignored").unwrap();
        assert_eq!(f, ["db:host", "5432", "*", "me", r"pa:s\s"]);
        assert!(split("host:5432:db").is_none());
    }
}
