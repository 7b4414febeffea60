//! Hugging Face model ids on the command line: `--model owner/name[@revision]` opens the folder
//! the Hugging Face tools downloaded into their cache (`huggingface-cli download owner/name`,
//! `snapshot_download`, transformers' `from_pretrained`).
//!
//! The cache layout is `huggingface_hub`'s (`file_download.py`, `constants.py`):
//! `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`, else
//! `~/.cache/huggingface/hub`; a model's files live in
//! `models--{owner}--{name}/snapshots/{commit}/`, and `refs/{branch or tag}` holds the commit a
//! name points at (`main` when no revision is given). A revision of 40 hex digits is a commit.
//!
//! A path that exists locally always wins over an id of the same spelling, and a path written
//! with `./`, `../`, `/` or `~` is never taken for an id. A model that is not in the cache is
//! downloaded into it ([`download`]) unless `HF_HUB_OFFLINE` is set; one that is cached is opened
//! without asking the hub.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::page::source::{is_repo_part, is_revision};

#[cfg(feature = "hub")]
pub mod download;

#[cfg(feature = "hub")]
pub use download::{DownloadError, Event, Hub};

/// The branch `huggingface_hub` resolves when no revision is given.
pub const DEFAULT_REVISION: &str = "main";

/// A model id: `owner/name`, at a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubId {
    /// The user or organisation.
    pub owner: String,
    /// The repository.
    pub name: String,
    /// A branch, tag or commit; `None` is [`DEFAULT_REVISION`].
    pub revision: Option<String>,
}

/// Why an id does not open a folder.
#[derive(Debug, Error)]
pub enum HubError {
    /// The model is not in the cache (and is not downloaded: `HF_HUB_OFFLINE`).
    #[error(
        "`{id}` is neither a folder here nor in the Hugging Face cache ({}), and HF_HUB_OFFLINE is set: unset it to download the model (`unmask download {id}`), or give the folder's path",
        cache.display()
    )]
    NotCached {
        /// The id as given.
        id: String,
        /// The cache searched.
        cache: PathBuf,
    },
    /// The model is cached, but not at that revision.
    #[error(
        "`{id}` is in the Hugging Face cache, but not at revision `{revision}` (no {}); cached: {}",
        missing.display(),
        if cached.is_empty() { "nothing".to_owned() } else { cached.join(", ") }
    )]
    NoRevision {
        /// The id as given.
        id: String,
        /// The revision asked for.
        revision: String,
        /// What is missing: the ref or the snapshot folder.
        missing: PathBuf,
        /// The refs and snapshots that are there.
        cached: Vec<String>,
    },
    /// A ref file that cannot be read or holds no commit.
    #[error("{}: {why}", path.display())]
    BadRef {
        /// The ref file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The model is not cached and its download failed.
    #[cfg(feature = "hub")]
    #[error(
        "`{id}` is not a folder here and not in the Hugging Face cache; downloading it failed: {source}"
    )]
    Download {
        /// The id as given.
        id: String,
        /// Why.
        source: DownloadError,
    },
    /// Neither an existing path nor an id.
    #[error(
        "`{0}` is not a folder here, and not a Hugging Face model id (owner/name, optionally @revision)"
    )]
    NotFound(String),
}

impl HubId {
    /// Reads `owner/name` or `owner/name@revision`; `None` when `s` is not spelled as an id.
    pub fn parse(s: &str) -> Option<Self> {
        let (repo, revision) = match s.split_once('@') {
            Some((repo, rev)) => (repo, Some(rev)),
            None => (s, None),
        };
        // The page's rule for an id (it reads the same ids), and no trailing dot, which
        // `huggingface_hub`'s `validate_repo_id` refuses.
        let part = |p: &str| is_repo_part(p) && !p.ends_with('.');
        let (owner, name) = repo.split_once('/')?;
        if !part(owner) || !part(name) {
            return None;
        }
        if revision.is_some_and(|r| !is_revision(r)) {
            return None;
        }
        Some(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
            revision: revision.map(str::to_owned),
        })
    }

    /// The folder of this model in `cache`: `models--{owner}--{name}`.
    pub fn repo_folder(&self, cache: &Path) -> PathBuf {
        cache.join(format!("models--{}--{}", self.owner, self.name))
    }

    /// The snapshot folder this id names in `cache`.
    pub fn snapshot(&self, cache: &Path) -> Result<PathBuf, HubError> {
        let repo = self.repo_folder(cache);
        if !repo.is_dir() {
            return Err(HubError::NotCached {
                id: self.to_string(),
                cache: cache.to_owned(),
            });
        }
        let revision = self.revision.as_deref().unwrap_or(DEFAULT_REVISION);
        let is_commit = revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit());
        let commit = if is_commit {
            revision.to_owned()
        } else {
            let path = repo.join("refs").join(revision);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let commit = text.trim();
                    if commit.is_empty() || !commit.chars().all(|c| c.is_ascii_alphanumeric()) {
                        return Err(HubError::BadRef {
                            path,
                            why: "holds no commit hash".into(),
                        });
                    }
                    commit.to_owned()
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(self.no_revision(&repo, revision, path));
                }
                Err(e) => {
                    return Err(HubError::BadRef {
                        path,
                        why: e.to_string(),
                    });
                }
            }
        };
        let snapshot = repo.join("snapshots").join(&commit);
        if snapshot.is_dir() {
            Ok(snapshot)
        } else {
            Err(self.no_revision(&repo, revision, snapshot))
        }
    }

    fn no_revision(&self, repo: &Path, revision: &str, missing: PathBuf) -> HubError {
        let names = |dir: PathBuf| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let mut cached = names(repo.join("refs"));
        cached.extend(names(repo.join("snapshots")));
        HubError::NoRevision {
            id: self.to_string(),
            revision: revision.to_owned(),
            missing,
            cached,
        }
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)?;
        match &self.revision {
            Some(r) => write!(f, "@{r}"),
            None => Ok(()),
        }
    }
}

/// The hub cache `huggingface_hub` uses, from the environment (see the module's docs).
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("HF_HUB_CACHE") {
        return dir;
    }
    if let Some(home) = var("HF_HOME") {
        return home.join("hub");
    }
    let cache = var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("huggingface").join("hub")
}

/// The model folder `arg` names: the path itself when it exists or is written as a path (or is
/// not UTF-8, which no id is), else the cached snapshot of the hub id it spells, looked up in
/// `cache`.
pub fn resolve_in(arg: &OsStr, cache: &Path) -> Result<PathBuf, HubError> {
    let path = Path::new(arg);
    let Some(text) = arg.to_str() else {
        return Ok(path.to_owned());
    };
    let written_as_path = text.starts_with(['.', '/', '~']) || path.is_absolute();
    if path.exists() || written_as_path {
        return Ok(path.to_owned());
    }
    match HubId::parse(text) {
        Some(id) => id.snapshot(cache),
        None => Err(HubError::NotFound(text.to_owned())),
    }
}

#[cfg(feature = "hub")]
/// The model folder `arg` names ([`resolve_in`]), downloaded from `hub` into `cache` when it is
/// an id that is not cached there (or not at its revision); `progress` hears the download.
pub fn open(
    arg: &OsStr,
    cache: &Path,
    hub: Option<&Hub>,
    progress: &mut dyn FnMut(Event),
) -> Result<PathBuf, HubError> {
    match (resolve_in(arg, cache), hub) {
        (Err(HubError::NotCached { id, .. } | HubError::NoRevision { id, .. }), Some(hub)) => {
            // `resolve_in` only says "not cached" of a string that parsed as an id.
            let parsed = HubId::parse(&id).ok_or_else(|| HubError::NotFound(id.clone()))?;
            hub.download(&parsed, cache, progress)
                .map_err(|source| HubError::Download { id, source })
        }
        (found, _) => found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_with_and_without_a_revision() {
        let id = HubId::parse("dllm-hub/Qwen3-0.6B-diffusion-mdlm-v0.1").unwrap();
        assert_eq!(
            (id.owner.as_str(), id.name.as_str(), id.revision),
            ("dllm-hub", "Qwen3-0.6B-diffusion-mdlm-v0.1", None)
        );
        let id = HubId::parse("GSAI-ML/LLaDA-8B-Instruct@refs/pr/3").unwrap();
        assert_eq!(id.revision.as_deref(), Some("refs/pr/3"));
        assert_eq!(id.to_string(), "GSAI-ML/LLaDA-8B-Instruct@refs/pr/3");
        for bad in [
            "name", "a/b/c", "/abs", "o/", "/n", "o/n@", "o/n@../x", "o/n@/x", ".o/n", "o/n.",
            "o/a..b", "o/n x", "o/n@a//b",
        ] {
            assert_eq!(HubId::parse(bad), None, "{bad}");
        }
    }
}
