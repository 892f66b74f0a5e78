//! An agent's process group, tracked through a pidfd so that no signal can reach a process that
//! merely reused one of its ids.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitStatus;
use std::sync::Mutex;

use tokio::io::unix::AsyncFd;
use tokio::process::{Child, Command};

pub struct ProcessGroup {
    pid: u32,
    pidfd: AsyncFd<OwnedFd>,
    /// `None` once the leader is reaped: from then on its id may belong to anyone.
    leader: Mutex<Option<Child>>,
}

impl ProcessGroup {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        let child = command.process_group(0).spawn()?;
        let pid = child.id().ok_or_else(|| std::io::Error::other("the agent exited at once"))?;
        // SAFETY: pidfd_open(2) with a pid we own (unreaped) and no flags; it returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just handed us this descriptor; nothing else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: an OwnedFd keeps the same open descriptor for as long as it lives.
        let pidfd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Self { pid, pidfd, leader: Mutex::new(Some(child)) })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Signals every process in the group. Does nothing (and says so) once the leader is reaped.
    pub fn signal(&self, signal: i32) -> bool {
        let leader = self.leader.lock().expect("leader lock");
        if leader.is_none() {
            return false;
        }
        // SAFETY: kill(2) on our own group; the unreaped leader keeps the id from being reused.
        unsafe { libc::kill(-(self.pid as i32), signal) };
        true
    }

    /// Waits for the leader to exit, ends whatever it left in its group (while the exited leader
    /// still holds the group's id), then reaps it.
    pub async fn wait(&self) -> std::io::Result<ExitStatus> {
        // A pidfd becomes readable when its process exits.
        let _readable = self.pidfd.readable().await?;
        let mut leader = self.leader.lock().expect("leader lock");
        let Some(child) = leader.as_mut() else {
            return Err(std::io::Error::other("the agent was already reaped"));
        };
        // SAFETY: as in `signal`: the leader is exited but not yet reaped.
        unsafe { libc::kill(-(self.pid as i32), libc::SIGKILL) };
        let status = child.try_wait()?.ok_or_else(|| std::io::Error::other("the pidfd said exited, wait did not"))?;
        *leader = None;
        Ok(status)
    }
}
