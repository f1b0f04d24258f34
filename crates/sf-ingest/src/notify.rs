//! systemd's service notifications (`Type=notify`): `READY=1` once the configuration is valid
//! and collection starts, `WATCHDOG=1` at half the `WatchdogSec` interval, `STOPPING=1` on a
//! stop request. Datagrams to `$NOTIFY_SOCKET`, the whole protocol; outside systemd (no
//! variable) nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go, once `$NOTIFY_SOCKET` names a socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: Target,
}

#[derive(Debug)]
enum Target {
    Path(std::path::PathBuf),
    /// `@name`: a Linux abstract socket.
    #[cfg(target_os = "linux")]
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, read through `env`; `None` when unset or unusable (logged).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Notifier> {
        let name = env("NOTIFY_SOCKET").filter(|n| !n.is_empty())?;
        let target = match name.strip_prefix('@') {
            #[cfg(target_os = "linux")]
            Some(abstract_name) => Target::Abstract(abstract_name.as_bytes().to_vec()),
            #[cfg(not(target_os = "linux"))]
            Some(_) => {
                tracing::warn!(
                    "NOTIFY_SOCKET names an abstract socket, which only Linux has; not notifying"
                );
                return None;
            }
            None => Target::Path(name.into()),
        };
        match UnixDatagram::unbound() {
            Ok(socket) => Some(Notifier { socket, target }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a socket to notify systemd");
                None
            }
        }
    }

    /// Sends `state` (`READY=1`...). A failure is logged, never fatal: systemd's own timeouts
    /// report a service that does not notify.
    pub fn notify(&self, state: &str) {
        let sent = match &self.target {
            Target::Path(path) => self.socket.send_to(state.as_bytes(), path),
            #[cfg(target_os = "linux")]
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| self.socket.send_to_addr(state.as_bytes(), &addr))
            }
        };
        if let Err(e) = sent {
            tracing::warn!(state, error = %e, "cannot notify systemd");
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` (systemd's advice), when the
/// watchdog is on and meant for this process (`$WATCHDOG_PID`, when set, is our pid).
pub fn watchdog_every(env: &dyn Fn(&str) -> Option<String>) -> Option<Duration> {
    if let Some(pid) = env("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = env("WATCHDOG_USEC")?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sends `READY=1`, then `WATCHDOG=1` every `every` for as long as the runtime runs. The pings
/// come from a task of the same runtime as the collection, so a wedged runtime stops them and
/// systemd restarts the service; a slow download does not (it yields at every read).
pub fn ready(
    notifier: Option<Notifier>,
    every: Option<Duration>,
) -> Option<std::sync::Arc<Notifier>> {
    let notifier = std::sync::Arc::new(notifier?);
    notifier.notify("READY=1\nSTATUS=collecting");
    if let Some(every) = every {
        let pinger = std::sync::Arc::clone(&notifier);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                pinger.notify("WATCHDOG=1");
            }
        });
    }
    Some(notifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_interval_is_half_of_watchdog_usec_and_only_for_this_process() {
        let env = |usec: &'static str, pid: Option<String>| {
            move |name: &str| match name {
                "WATCHDOG_USEC" => Some(usec.to_string()),
                "WATCHDOG_PID" => pid.clone(),
                _ => None,
            }
        };
        assert_eq!(
            watchdog_every(&env("4000000", None)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_every(&env("4000000", Some(std::process::id().to_string()))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_every(&env("4000000", Some("1".into()))), None);
        assert_eq!(watchdog_every(&env("0", None)), None);
        assert_eq!(watchdog_every(&|_| None), None);
    }
}
