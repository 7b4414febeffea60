//! Downloads a model from the Hugging Face hub into the cache [`super`] reads, laid out as
//! `huggingface_hub`'s `snapshot_download` lays it out, resumable, and checked file by file.
//!
//! The protocol (`huggingface_hub`: `hf_api.py` `model_info(files_metadata=True)`,
//! `file_download.py` `hf_hub_download`):
//! - `GET {endpoint}/api/models/{owner}/{name}/revision/{revision}?blobs=true` answers the commit
//!   the revision names (`sha`) and the files (`siblings`: `rfilename`, `size`, `blobId`, the git
//!   blob id, and for files kept in Git LFS `lfs.sha256` and `lfs.size`).
//! - `GET {endpoint}/{owner}/{name}/resolve/{commit}/{file}` answers a file's bytes (LFS files
//!   redirect to a CDN, which gets no token); `Range: bytes=N-` resumes one.
//! - In the cache a file's bytes live once, in `blobs/{etag}` (the sha256 of an LFS file, the git
//!   blob id of any other), `snapshots/{commit}/{file}` links to its blob and `refs/{revision}`
//!   holds the commit. A download in progress is `blobs/{etag}.incomplete`: a failed run keeps it
//!   and the next one asks for the rest.
//!
//! No file enters the cache unchecked: its length must be the listed size, and its sha256 (LFS)
//! or git blob id (`sha1("blob {len}\0" ‖ bytes)`) the listed one; a file that fails is deleted.
//! Only what Unmask reads is fetched: the top-level `*.json`, `*.safetensors` and `*.jinja`
//! files (configs, weights and index, tokenizer, chat template), not the `.bin`, `.gguf` or
//! `onnx/` copies a repository may also hold.
//!
//! The environment, as `huggingface_hub` reads it: `HF_ENDPOINT` (default
//! `https://huggingface.co`), `HF_TOKEN` (a bearer token, for gated and private models) and
//! `HF_HUB_OFFLINE` (never download).
//!
//! A download first checks that the disk has room for what is still to come, and each file's
//! `.incomplete` is locked while it is written, so two runs never write the same file at once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::Digest;
use thiserror::Error;

use super::{DEFAULT_REVISION, HubId};
// Every byte outside RFC 3986's unreserved set percent-encoded: a revision's `/` too, as
// `huggingface_hub` quotes it with `safe=""`.
use crate::page::state::encode_component as encode;

/// Where the hub is when `HF_ENDPOINT` does not say.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The most a repository's file list may take (a few thousand files fit in 1 MB).
pub const MAX_INFO_BYTES: u64 = 16 << 20;
/// How long a connection or the first byte of an answer may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The size of each read from the network and write to the disk.
const CHUNK: usize = 1 << 20;
/// The file names Unmask reads from a model folder, by extension.
const WANTED_EXTENSIONS: [&str; 3] = ["json", "safetensors", "jinja"];

/// Why a download did not complete.
#[derive(Debug, Error)]
pub enum DownloadError {
    /// `HF_HUB_OFFLINE` is set.
    #[error("HF_HUB_OFFLINE is set, so `{id}` is not downloaded")]
    Offline {
        /// The id asked for.
        id: String,
    },
    /// The hub answered with an error status.
    #[error("{url} answered HTTP {status}{}{hint}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// The request.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's text.
        body: String,
        /// What to do, when the status says.
        hint: &'static str,
    },
    /// The request did not get an answer (no network, a refused connection, a timeout).
    #[error("cannot reach {url}: {why}")]
    Network {
        /// The request.
        url: String,
        /// What failed.
        why: String,
    },
    /// The answer about the repository is not what the hub sends.
    #[error("{url}: {why}")]
    BadInfo {
        /// The request.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The repository holds nothing Unmask can open.
    #[error(
        "`{id}` has no config.json at {commit}, so it is not a model folder Unmask reads (its files: {files})"
    )]
    NotAModel {
        /// The id.
        id: String,
        /// The commit listed.
        commit: String,
        /// Some of the files it has.
        files: String,
    },
    /// A file's bytes stopped before its size (the connection closed).
    #[error(
        "{file}: the download stopped at {got} of {size} bytes ({why}); run the command again to download the rest"
    )]
    Interrupted {
        /// The file.
        file: String,
        /// Bytes on disk.
        got: u64,
        /// Bytes listed.
        size: u64,
        /// What ended it.
        why: String,
    },
    /// A file's bytes do not match what the hub lists for them; nothing of it is kept.
    #[error("{file}: {what} is {got}, the hub lists {expected}; the download is deleted")]
    Mismatch {
        /// The file.
        file: String,
        /// `sha256` or `git blob id`.
        what: &'static str,
        /// What the bytes give.
        got: String,
        /// What the hub lists.
        expected: String,
    },
    /// Another process is downloading the same file (its `.incomplete` is locked).
    #[error(
        "{file}: another download of it is running ({} is locked); let it finish, then run this again",
        path.display()
    )]
    Busy {
        /// The file.
        file: String,
        /// The locked part.
        path: PathBuf,
    },
    /// The disk holding the cache has less room than the files still to download.
    #[error(
        "the download needs {} more and {} has {} free; make room, or point HF_HUB_CACHE at a larger disk",
        crate::page::human_bytes(*needed),
        path.display(),
        crate::page::human_bytes(*free)
    )]
    NoRoom {
        /// Bytes still to download.
        needed: u64,
        /// Bytes free where they would go.
        free: u64,
        /// The folder.
        path: PathBuf,
    },
    /// Reading or writing the cache failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

impl DownloadError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// How a file's bytes are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A Git LFS file: the sha256 of its bytes, lowercase hex.
    Sha256(String),
    /// A file kept in git itself: its blob id, `sha1("blob {len}\0" ‖ bytes)`, lowercase hex.
    GitBlob(String),
}

impl Check {
    /// The name of its blob in the cache (`huggingface_hub`'s etag).
    pub fn etag(&self) -> &str {
        match self {
            Self::Sha256(h) | Self::GitBlob(h) => h,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Self::Sha256(_) => "sha256",
            Self::GitBlob(_) => "git blob id",
        }
    }
}

/// One file of a repository at a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// Its name in the repository.
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// What its bytes must hash to.
    pub check: Check,
}

/// The files of a repository at the commit a revision names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSnapshot {
    /// The commit, 40 hex digits.
    pub commit: String,
    /// The files Unmask reads, in the hub's order.
    pub files: Vec<RemoteFile>,
}

impl RemoteSnapshot {
    /// The bytes of all its files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What a download is doing, for a progress display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The files were listed: `bytes` in all, `cached` of them already in the cache.
    Listed {
        /// The commit.
        commit: &'a str,
        /// How many files.
        files: usize,
        /// Their bytes.
        bytes: u64,
        /// Bytes already in the cache.
        cached: u64,
    },
    /// A file's download starts (or resumes at `from`).
    Start {
        /// The file.
        file: &'a str,
        /// Its size.
        size: u64,
        /// Bytes kept from an earlier run.
        from: u64,
    },
    /// `done` bytes of the file are on disk.
    Progress {
        /// The file.
        file: &'a str,
        /// Bytes on disk.
        done: u64,
    },
    /// The file is checked and in the cache.
    Done {
        /// The file.
        file: &'a str,
    },
}

/// A connection to a hub.
pub struct Hub {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// Whether an environment variable says yes, as `huggingface_hub`'s `_is_true` reads it.
fn env_true(name: &str) -> bool {
    std::env::var(name)
        .is_ok_and(|v| matches!(v.to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE"))
}

/// Whether `HF_HUB_OFFLINE` forbids downloads.
pub fn offline() -> bool {
    env_true("HF_HUB_OFFLINE")
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether Unmask reads a file of this name: a top-level config, weights, tokenizer or
/// template, with a name that is safe as a path.
fn wanted(name: &str) -> bool {
    let safe = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255;
    safe && name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| WANTED_EXTENSIONS.contains(&ext))
}

#[derive(Deserialize)]
struct RepoInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

/// The running digest of a [`Check`].
enum Hasher {
    Sha256(sha2::Sha256),
    GitBlob(sha1::Sha1),
}

impl Hasher {
    fn new(check: &Check, size: u64) -> Self {
        match check {
            Check::Sha256(_) => Self::Sha256(sha2::Sha256::new()),
            Check::GitBlob(_) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Self::GitBlob(h)
            }
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::GitBlob(h) => h.update(bytes),
        }
    }

    fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::GitBlob(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a status means for the reader.
fn hint(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            " (a gated or private model: accept its licence on its hub page and set HF_TOKEN to a token that may read it)"
        }
        404 => " (no such model or revision on this hub; check the id, or give a local folder)",
        _ => "",
    }
}

impl Hub {
    /// A hub at `endpoint` (`https://huggingface.co`, or a mirror), sending `token` if given.
    pub fn new(endpoint: &str, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(TIMEOUT))
            .timeout_recv_response(Some(TIMEOUT))
            .user_agent(concat!("unmask/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            agent,
        }
    }

    /// The hub the environment names (`HF_ENDPOINT`, `HF_TOKEN`); `None` when `HF_HUB_OFFLINE`
    /// is set.
    pub fn from_env() -> Option<Self> {
        if offline() {
            return None;
        }
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        Some(Self::new(&endpoint, std::env::var("HF_TOKEN").ok()))
    }

    /// The hub's address.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn get(
        &self,
        url: &str,
        range_from: u64,
    ) -> Result<ureq::http::Response<ureq::Body>, DownloadError> {
        let mut request = self.agent.get(url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        if range_from > 0 {
            request = request.header("Range", &format!("bytes={range_from}-"));
        }
        let mut response = request.call().map_err(|e| DownloadError::Network {
            url: url.to_owned(),
            why: e.to_string(),
        })?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            // The start of the hub's explanation ("Repository not found", "Access restricted").
            let body = response
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            let body: String = body.trim().chars().take(200).collect();
            return Err(DownloadError::Status {
                url: url.to_owned(),
                status,
                body,
                hint: hint(status),
            });
        }
        Ok(response)
    }

    /// The files Unmask reads from `id`, at the commit its revision names now.
    pub fn list(&self, id: &HubId) -> Result<RemoteSnapshot, DownloadError> {
        let revision = id.revision.as_deref().unwrap_or(DEFAULT_REVISION);
        let url = format!(
            "{}/api/models/{}/{}/revision/{}?blobs=true",
            self.endpoint,
            id.owner,
            id.name,
            encode(revision)
        );
        let bad = |why: String| DownloadError::BadInfo {
            url: url.clone(),
            why,
        };
        let mut response = self.get(&url, 0)?;
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_INFO_BYTES)
            .read_to_vec()
            .map_err(|e| bad(format!("reading the answer: {e}")))?;
        let info: RepoInfo = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("not the hub's model info: {e}")))?;
        let commit = info.sha.to_ascii_lowercase();
        if !is_hex(&commit, 40) {
            return Err(bad(format!("`{}` is not a commit hash", info.sha)));
        }
        let mut files = Vec::new();
        for s in &info.siblings {
            if !wanted(&s.rfilename) {
                continue;
            }
            let (size, check) = match (&s.lfs, &s.blob_id, s.size) {
                (Some(lfs), _, _) => (lfs.size, Check::Sha256(lfs.sha256.to_ascii_lowercase())),
                (None, Some(blob), Some(size)) => (size, Check::GitBlob(blob.to_ascii_lowercase())),
                _ => {
                    return Err(bad(format!(
                        "{} is listed without its size and hash (was `?blobs=true` ignored?)",
                        s.rfilename
                    )));
                }
            };
            let hex_len = match check {
                Check::Sha256(_) => 64,
                Check::GitBlob(_) => 40,
            };
            if !is_hex(check.etag(), hex_len) {
                return Err(bad(format!(
                    "{}: `{}` is not a {}",
                    s.rfilename,
                    check.etag(),
                    check.what()
                )));
            }
            files.push(RemoteFile {
                name: s.rfilename.clone(),
                size,
                check,
            });
        }
        if !files.iter().any(|f| f.name == crate::bundle::CONFIG_FILE) {
            let mut names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
            names.truncate(8);
            return Err(DownloadError::NotAModel {
                id: id.to_string(),
                commit,
                files: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
        Ok(RemoteSnapshot { commit, files })
    }

    /// Downloads what `id` lacks into `cache` and returns its snapshot folder: every file
    /// Unmask reads, checked, with `refs/{revision}` pointing at the commit.
    pub fn download(
        &self,
        id: &HubId,
        cache: &Path,
        progress: &mut dyn FnMut(Event),
    ) -> Result<PathBuf, DownloadError> {
        let remote = self.list(id)?;
        let repo = id.repo_folder(cache);
        let blobs = repo.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(DownloadError::io(&blobs))?;
        // What is in the cache, and what is still to come (a kept `.incomplete` counts as come),
        // which must fit on the disk.
        let (mut cached, mut needed) = (0u64, 0u64);
        for f in &remote.files {
            if blob_ready(&blobs.join(f.check.etag()), f.size) {
                cached += f.size;
            } else {
                let kept = std::fs::metadata(incomplete(&blobs, f)).map_or(0, |m| m.len());
                needed += f.size.saturating_sub(kept);
            }
        }
        if let Some(free) = free_space(&blobs)
            && needed > free
        {
            return Err(DownloadError::NoRoom {
                needed,
                free,
                path: blobs,
            });
        }
        progress(Event::Listed {
            commit: &remote.commit,
            files: remote.files.len(),
            bytes: remote.bytes(),
            cached,
        });
        let mut fetched = Vec::with_capacity(remote.files.len());
        for file in &remote.files {
            let url = format!(
                "{}/{}/{}/resolve/{}/{}",
                self.endpoint,
                id.owner,
                id.name,
                remote.commit,
                encode(&file.name)
            );
            fetched.push(self.fetch(&url, file, &blobs, progress)?);
            progress(Event::Done { file: &file.name });
        }
        // The snapshot appears only once every blob is in: an interrupted run leaves none to
        // be mistaken for the model.
        let snapshot = repo.join("snapshots").join(&remote.commit);
        std::fs::create_dir_all(&snapshot).map_err(DownloadError::io(&snapshot))?;
        for (file, blob) in remote.files.iter().zip(&fetched) {
            link(blob, &snapshot.join(&file.name))?;
        }
        let revision = id.revision.as_deref().unwrap_or(DEFAULT_REVISION);
        if revision != remote.commit {
            let path = repo.join("refs").join(revision);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(DownloadError::io(parent))?;
            }
            std::fs::write(&path, &remote.commit).map_err(DownloadError::io(&path))?;
        }
        Ok(snapshot)
    }

    /// The blob of `file` in `blobs`, downloaded (or resumed) and checked unless it is there.
    fn fetch(
        &self,
        url: &str,
        file: &RemoteFile,
        blobs: &Path,
        progress: &mut dyn FnMut(Event),
    ) -> Result<PathBuf, DownloadError> {
        let blob = blobs.join(file.check.etag());
        if blob_ready(&blob, file.size) {
            return Ok(blob);
        }
        let part = incomplete(blobs, file);
        let mut out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(DownloadError::io(&part))?;
        // One writer per file: a second `unmask` (or a second download of the same blob under
        // another name) waits its turn instead of interleaving bytes. The lock goes with the
        // process, so a crash leaves none behind. A file system without locks is written anyway.
        if let Err(std::fs::TryLockError::WouldBlock) = out.try_lock() {
            return Err(DownloadError::Busy {
                file: file.name.clone(),
                path: part,
            });
        }
        let mut have = out.metadata().map_err(DownloadError::io(&part))?.len();
        if have > file.size {
            have = 0;
        }
        let mut hasher = Hasher::new(&file.check, file.size);
        // The kept part is hashed as it is read back, so the whole file is hashed once.
        hash_prefix(&mut out, have, &mut hasher).map_err(DownloadError::io(&part))?;
        progress(Event::Start {
            file: &file.name,
            size: file.size,
            from: have,
        });
        if have < file.size {
            let mut response = self.get(url, have)?;
            if response.status().as_u16() != 206 && have > 0 {
                // The server sent the whole file: start over.
                have = 0;
                hasher = Hasher::new(&file.check, file.size);
            } else if have > 0 {
                let range = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if crate::page::parts::range_start(range) != Some(have) {
                    return Err(DownloadError::BadInfo {
                        url: url.to_owned(),
                        why: format!("asked for bytes {have}-, got Content-Range `{range}`"),
                    });
                }
            }
            out.set_len(have).map_err(DownloadError::io(&part))?;
            out.seek(SeekFrom::Start(have))
                .map_err(DownloadError::io(&part))?;
            let mut body = response.body_mut().as_reader();
            let mut buf = vec![0u8; CHUNK];
            while have < file.size {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        out.sync_data().map_err(DownloadError::io(&part))?;
                        return Err(DownloadError::Interrupted {
                            file: file.name.clone(),
                            got: have,
                            size: file.size,
                            why: e.to_string(),
                        });
                    }
                };
                // Never more than the listed size on disk: the rest would be the check's to refuse.
                let n = n.min((file.size - have) as usize);
                out.write_all(&buf[..n]).map_err(DownloadError::io(&part))?;
                hasher.update(&buf[..n]);
                have += n as u64;
                progress(Event::Progress {
                    file: &file.name,
                    done: have,
                });
            }
            out.sync_data().map_err(DownloadError::io(&part))?;
            if have < file.size {
                return Err(DownloadError::Interrupted {
                    file: file.name.clone(),
                    got: have,
                    size: file.size,
                    why: "the connection closed".into(),
                });
            }
        }
        drop(out);
        let got = hasher.hex();
        if got != file.check.etag() {
            // Whatever was kept or fetched is wrong: the next run starts from zero.
            let _ = std::fs::remove_file(&part);
            return Err(DownloadError::Mismatch {
                file: file.name.clone(),
                what: file.check.what(),
                got,
                expected: file.check.etag().to_owned(),
            });
        }
        std::fs::rename(&part, &blob).map_err(DownloadError::io(&blob))?;
        Ok(blob)
    }
}

/// Bytes free to this user on the file system holding `dir`, where the platform says.
#[cfg(unix)]
fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `statvfs` writes a
    // whole `struct statvfs` into `stat` when it returns 0, the only case read.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    #[allow(clippy::useless_conversion)] // the fields' widths differ across platforms
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

#[cfg(not(unix))]
fn free_space(_dir: &Path) -> Option<u64> {
    None
}

/// Where `file`'s bytes are written while they download.
fn incomplete(blobs: &Path, file: &RemoteFile) -> PathBuf {
    blobs.join(format!("{}.incomplete", file.check.etag()))
}

/// Whether a blob of `size` bytes is in the cache. A blob is only ever renamed into place after
/// its check, so its length is enough (as `huggingface_hub` trusts its blobs).
fn blob_ready(blob: &Path, size: u64) -> bool {
    std::fs::metadata(blob).is_ok_and(|m| m.is_file() && m.len() == size)
}

/// Feeds the first `len` bytes of `file` to `hasher`.
fn hash_prefix(file: &mut File, len: u64, hasher: &mut Hasher) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut left = len;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let n = file.read(&mut buf[..CHUNK.min(left as usize)])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the kept part shrank while it was read",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// Makes `path` (in a snapshot) name `blob`: a relative symlink, as `huggingface_hub` makes (the
/// cache may move), or a copy where links are not available.
fn link(blob: &Path, path: &Path) -> Result<(), DownloadError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => std::fs::remove_file(path).map_err(DownloadError::io(path))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DownloadError::io(path)(e)),
    }
    #[cfg(unix)]
    {
        let name = blob.file_name().unwrap_or_default();
        std::os::unix::fs::symlink(Path::new("../../blobs").join(name), path)
            .map_err(DownloadError::io(path))
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(blob, path)
            .map(drop)
            .map_err(DownloadError::io(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_revisions_are_encoded_and_filtered() {
        assert_eq!(encode("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(
            encode("model-00001-of-00002.safetensors"),
            "model-00001-of-00002.safetensors"
        );
        assert_eq!(encode("a b+c"), "a%20b%2Bc");
        for name in [
            "config.json",
            "model.safetensors",
            "chat_template.jinja",
            "model.safetensors.index.json",
        ] {
            assert!(wanted(name), "{name}");
        }
        for name in [
            "pytorch_model.bin",
            "onnx/model.json",
            "../config.json",
            ".gitattributes",
            "x.gguf",
            "README.md",
            "a\\b.json",
        ] {
            assert!(!wanted(name), "{name}");
        }
    }

    #[test]
    fn a_git_blob_id_is_sha1_of_the_header_and_the_bytes() {
        // `printf 'hello\n' | git hash-object --stdin`
        let mut h = Hasher::new(&Check::GitBlob(String::new()), 6);
        h.update(b"hello\n");
        assert_eq!(h.hex(), "ce013625030ba8dba906f756967f9e9ca394464a");
        // `printf 'hello\n' | sha256sum`
        let mut h = Hasher::new(&Check::Sha256(String::new()), 6);
        h.update(b"hello\n");
        assert_eq!(
            h.hex(),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
    }
}
