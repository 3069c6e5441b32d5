//! The disk fails underneath the real binary: a full disk (a small tmpfs the test
//! mounts) and a power loss (an ext4 file system on a loop device, shut down with
//! `FS_IOC_SHUTDOWN` without flushing its log, the way a power cut leaves it: what the
//! host did not make durable is gone after `e2fsck` and a remount).
//!
//! They need root (mounts, loop devices). Under `CI=true` a missing privilege fails the
//! test; elsewhere the test says it was skipped and passes.

use super::{Host, UNLIMITED, invoke};
use anyhow::{Context as _, Result, bail, ensure};
use serde_json::json;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether the test may mount file systems; under CI it must.
fn privileged(test: &str) -> Result<bool> {
    // `/proc/self` belongs to the process's effective user.
    let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?);
    if euid == 0 {
        return Ok(true);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("{test} needs root (it mounts file systems), and CI runs as root");
    }
    eprintln!("{test}: skipped, it needs root to mount file systems");
    Ok(false)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A file system mounted for one test, unmounted when dropped.
struct Mounted {
    point: PathBuf,
    /// The loop image, for an ext4 mount.
    image: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Mounted {
    fn tmpfs(size_mib: u32) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let point = dir.path().join("mnt");
        std::fs::create_dir(&point)?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&point))?;
        Ok(Self {
            point,
            image: None,
            _dir: dir,
        })
    }

    fn ext4(size_mib: u32) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)?.set_len(u64::from(size_mib) * 1024 * 1024)?;
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))?;
        let point = dir.path().join("mnt");
        std::fs::create_dir(&point)?;
        let mounted = Self {
            point,
            image: Some(image),
            _dir: dir,
        };
        mounted.mount()?;
        Ok(mounted)
    }

    fn mount(&self) -> Result<()> {
        let image = self.image.as_ref().context("not an image")?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(&self.point))
    }

    /// Cuts the power: the file system stops at once, without writing back anything it
    /// had not written yet (its journal is not flushed either).
    fn cut_power(&self) -> Result<()> {
        const FS_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587d;
        const FS_GOING_NOLOGFLUSH: u32 = 2;
        let dir = std::fs::File::open(&self.point)?;
        let flags = FS_GOING_NOLOGFLUSH;
        // SAFETY: FS_IOC_SHUTDOWN reads one u32 from the pointer, which is valid for
        // the call; the descriptor is open.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&dir),
                FS_IOC_SHUTDOWN,
                &flags as *const u32,
            )
        };
        ensure!(
            rc == 0,
            "FS_IOC_SHUTDOWN: {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    /// Unmounts, checks and repairs the file system (as a reboot would), mounts it again.
    fn reboot(&self) -> Result<()> {
        run(Command::new("umount").arg(&self.point))?;
        let image = self.image.as_ref().context("not an image")?;
        // e2fsck exits 1 when it repaired something: that is what a reboot does.
        let status = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(image)
            .output()?
            .status;
        ensure!(
            matches!(status.code(), Some(0..=1)),
            "e2fsck could not repair the file system: {status}"
        );
        self.mount()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.point).status();
    }
}

async fn counter_value(host: &Host, name: &str) -> Result<u64> {
    let (status, body) = invoke(
        &host.client(),
        host,
        "nanhu",
        "counter",
        "get",
        json!({ "name": name }),
    )
    .await?;
    ensure!(status == 200, "get {name}: {status} {body}");
    body["value"].as_u64().context("value")
}

async fn ready(host: &Host) -> Result<u16> {
    Ok(reqwest::get(host.url("/readyz")).await?.status().as_u16())
}

/// Waits until `/readyz` answers 200 (the host recovered by itself), at most 60 s
/// after `since` happened.
async fn recovered(host: &Host, since: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(ready(host).await, Ok(200)) {
        ensure!(Instant::now() < deadline, "not ready 60 s after {since}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The pass criterion: a write on a full disk answers 503 with `Retry-After`,
/// never a 2xx and never a 500; `/readyz` says the store failed; once the disk has room
/// again the host recovers by itself (it restarts in place), with every acknowledged
/// write there, and serves writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_503_then_heals_by_itself_and_loses_nothing_acknowledged() -> Result<()> {
    if !privileged("a_full_disk_is_503_then_heals_by_itself")? {
        return Ok(());
    }
    let disk = Mounted::tmpfs(48)?;
    let data = disk.point.join("data");
    let host = Host::start(&data, UNLIMITED)?;
    let c = host.client();
    let url = host.url("/v1/communities/nanhu/plugins/counter/invoke/increment");
    let mut acknowledged = 0u64;
    for _ in 0..20 {
        let r = c
            .post(&url)
            .json(&json!({ "name": "meals" }))
            .send()
            .await?;
        ensure!(r.status() == 200, "before the disk fills: {}", r.status());
        acknowledged += 1;
    }
    ensure!(ready(&host).await? == 200, "ready before the disk fills");

    // Fill the disk to the last byte.
    let filler_path = disk.point.join("filler");
    let mut filler = std::fs::File::create(&filler_path)?;
    let chunk = vec![0xa5u8; 1024 * 1024];
    loop {
        if filler
            .write_all(&chunk)
            .and_then(|()| filler.sync_all())
            .is_err()
        {
            break;
        }
    }
    let small = vec![0x5au8; 4096];
    while filler
        .write_all(&small)
        .and_then(|()| filler.sync_all())
        .is_ok()
    {}

    // Keep writing: some writes may still fit in space the store had already
    // allocated (and are then acknowledged and durable); the first one that does not
    // fit fails the store, and from then on every write is 503, never 2xx, never 500.
    let mut refused = 0;
    for attempt in 0..5000 {
        let r = c
            .post(&url)
            .json(&json!({ "name": "meals", "by": 1 }))
            .send()
            .await?;
        match r.status().as_u16() {
            200 => {
                ensure!(refused == 0, "a write was acknowledged after a refusal");
                acknowledged += 1;
            }
            503 => {
                ensure!(
                    r.headers().contains_key("retry-after"),
                    "a 503 without Retry-After"
                );
                let body: serde_json::Value = r.json().await?;
                ensure!(
                    body["error"]["code"] == "store_unavailable",
                    "503 with {body}"
                );
                refused += 1;
                if refused == 20 {
                    break;
                }
            }
            other => bail!(
                "attempt {attempt} on a full disk: {other} {}",
                r.text().await?
            ),
        }
    }
    ensure!(refused == 20, "the full disk never refused a write");
    ensure!(
        ready(&host).await? == 503,
        "/readyz while the store has failed"
    );
    // Reads are refused too (the store is fenced), with the same 503.
    let (status, _) = invoke(
        &c,
        &host,
        "nanhu",
        "counter",
        "get",
        json!({ "name": "meals" }),
    )
    .await?;
    ensure!(status == 503, "a read while the store has failed: {status}");

    // Room again: the host recovers by itself.
    drop(filler);
    std::fs::remove_file(&filler_path)?;
    recovered(&host, "the disk had room").await?;
    ensure!(
        counter_value(&host, "meals").await? == acknowledged,
        "every acknowledged write, and nothing that was refused"
    );
    let r = c
        .post(&url)
        .json(&json!({ "name": "meals" }))
        .send()
        .await?;
    ensure!(r.status() == 200, "a write after recovery: {}", r.status());
    ensure!(counter_value(&host, "meals").await? == acknowledged + 1);
    Ok(())
}

/// The pass criterion: with the power cut right after the host acknowledged
/// writes (no time for any background flush), nothing acknowledged is lost: the calls
/// of four concurrent clients, and a tenancy change. Without an `fsync` of the store's
/// files before each acknowledgement, this test loses every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_power_cut() -> Result<()> {
    if !privileged("acknowledged_writes_survive_a_power_cut")? {
        return Ok(());
    }
    let disk = Mounted::ext4(256)?;
    let data = disk.point.join("data");
    let host = Host::start(&data, UNLIMITED)?;
    // Let the first start's own writes settle, and sled's background flusher go
    // quiet, so that what follows is only durable if the host made it so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = host.client();
    let url = host.url("/v1/communities/nanhu/plugins/counter/invoke/increment");
    let mut tasks = Vec::new();
    for task in 0..4 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0u64;
            for _ in 0..10 {
                let r = c
                    .post(&url)
                    .json(&json!({ "name": format!("power-{task}") }))
                    .send()
                    .await?;
                ensure!(r.status() == 200, "{}", r.status());
                acked += 1;
            }
            anyhow::Ok(acked)
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await??);
    }
    // A tenancy change: a new community.
    let r = c
        .post(host.url("/v1/communities"))
        .json(&json!({ "id": "power-cut", "name": "Power Cut" }))
        .send()
        .await?;
    ensure!(
        r.status().is_success(),
        "create a community: {}",
        r.status()
    );

    disk.cut_power()?;
    host.kill9()?;
    disk.reboot()?;

    let host = Host::start(&data, &[])?;
    for (task, acked) in acked.iter().enumerate() {
        let value = counter_value(&host, &format!("power-{task}")).await?;
        ensure!(
            value == *acked,
            "counter power-{task}: {value} after the power cut, {acked} acknowledged"
        );
    }
    let r = host
        .client()
        .get(host.url("/v1/communities/power-cut"))
        .send()
        .await?;
    ensure!(
        r.status() == 200,
        "the acknowledged community: {}",
        r.status()
    );
    Ok(())
}

/// A directory tree made immutable (`chattr -R +i`) for a while: its files refuse
/// writes, even through descriptors opened before, and its directories refuse new
/// entries, even for root: a read-only data directory under a running host.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &std::path::Path) -> Result<Self> {
        run(Command::new("chattr").args(["-R", "+i"]).arg(dir))?;
        Ok(Self(dir.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .args(["-R", "-i"])
            .arg(&self.0)
            .status();
    }
}

/// The pass criterion: while the store's directory is read-only, writes (and
/// reads) answer 503 `store_unavailable` with `Retry-After`, never 2xx or 500, and
/// `/readyz` 503; once it is writable again, the host recovers by itself with every
/// acknowledged write there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_directory_is_503_then_heals_by_itself() -> Result<()> {
    if !privileged("a_read_only_data_directory_is_503_then_heals_by_itself")? {
        return Ok(());
    }
    // An ext4 of its own: `chattr` needs a file system that has the attribute.
    let disk = Mounted::ext4(128)?;
    let data = disk.point.join("data");
    let host = Host::start(&data, UNLIMITED)?;
    let c = host.client();
    let url = host.url("/v1/communities/nanhu/plugins/counter/invoke/increment");
    for _ in 0..10 {
        let r = c.post(&url).json(&json!({ "name": "ro" })).send().await?;
        ensure!(r.status() == 200, "before: {}", r.status());
    }
    let read_only = Immutable::set(&data.join("store"))?;
    let mut refused = 0;
    for attempt in 0..50 {
        let r = c.post(&url).json(&json!({ "name": "ro" })).send().await?;
        match r.status().as_u16() {
            503 => {
                ensure!(r.headers().contains_key("retry-after"), "no Retry-After");
                let body: serde_json::Value = r.json().await?;
                ensure!(body["error"]["code"] == "store_unavailable", "{body}");
                refused += 1;
            }
            other => bail!(
                "attempt {attempt} on a read-only store: {other} {}",
                r.text().await?
            ),
        }
    }
    ensure!(refused == 50);
    ensure!(ready(&host).await? == 503, "/readyz on a read-only store");
    drop(read_only);
    recovered(&host, "the directory was writable").await?;
    ensure!(
        counter_value(&host, "ro").await? == 10,
        "the 10 acknowledged writes"
    );
    let r = c.post(&url).json(&json!({ "name": "ro" })).send().await?;
    ensure!(r.status() == 200, "a write after recovery: {}", r.status());
    Ok(())
}
