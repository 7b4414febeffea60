//! Hugging Face ids on the command line: opened from the hub's cache, and downloaded into it from
//! a hub served here over loopback (the model-info API and `resolve`, with Range requests, a
//! gated model, dropped connections and corrupt bytes on request).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use common::{fixture_dir, unmask};
use sha2::Digest;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("unmask-hub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What git names a file's blob: `sha1("blob {len}\0" ‖ bytes)`.
fn git_blob_id(bytes: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex(&h.finalize())
}

fn sha256(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

/// One request the hub answered.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    range: Option<String>,
    auth: Option<String>,
}

/// A repository and the faults to serve it with.
#[derive(Default)]
struct Repo {
    /// `owner/name`.
    id: String,
    commit: String,
    /// Branches and tags: name → commit.
    refs: BTreeMap<String, String>,
    /// Name, bytes, kept in LFS.
    files: Vec<(String, Vec<u8>, bool)>,
    /// A token the hub wants (a gated model).
    token: Option<String>,
    /// The next download of this file stops after this many bytes.
    cut: Option<(String, usize)>,
    /// This file is served with its last byte changed.
    corrupt: Option<String>,
    /// An LFS file of this many bytes is listed too (never served).
    huge: Option<u64>,
    seen: Vec<Seen>,
}

/// A hub on a loopback port, serving one repository.
struct FakeHub {
    url: String,
    repo: Arc<Mutex<Repo>>,
}

impl FakeHub {
    /// The fixture model as `unmask-test/tiny`: config.json in git, the weights and the
    /// tokenizer in LFS, and files Unmask must not fetch.
    fn start() -> Self {
        let read = |name: &str| std::fs::read(fixture_dir().join(name)).unwrap();
        let commit = "0123456789abcdef".repeat(3)[..40].to_owned();
        let repo = Repo {
            id: "unmask-test/tiny".into(),
            refs: [
                ("main".to_owned(), commit.clone()),
                ("v1".to_owned(), commit.clone()),
            ]
            .into_iter()
            .collect(),
            commit,
            files: vec![
                (
                    ".gitattributes".into(),
                    b"*.safetensors filter=lfs\n".to_vec(),
                    false,
                ),
                ("README.md".into(), b"# tiny\n".to_vec(), false),
                ("config.json".into(), read("config.json"), false),
                ("model.safetensors".into(), read("model.safetensors"), true),
                ("pytorch_model.bin".into(), vec![0; 64], true),
                ("tokenizer.json".into(), read("tokenizer.json"), true),
            ],
            ..Repo::default()
        };
        let repo = Arc::new(Mutex::new(repo));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = repo.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let repo = shared.clone();
                std::thread::spawn(move || serve(stream, &repo));
            }
        });
        Self { url, repo }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Repo) -> T) -> T {
        f(&mut self.repo.lock().unwrap())
    }

    fn seen(&self) -> Vec<Seen> {
        self.with(|r| r.seen.clone())
    }

    /// `unmask` against this hub and `cache`, with no token and downloads allowed.
    fn unmask(&self, args: &[&str], cache: &Path) -> Output {
        unmask_env(args, cache, &[("HF_ENDPOINT", &self.url)])
    }
}

/// `unmask` with `cache` as its Hugging Face cache and `env` set; the other `HF_*` variables that
/// change what it does are removed.
fn unmask_env(args: &[&str], cache: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_unmask"));
    command.args(args).env("HF_HUB_CACHE", cache);
    for var in ["HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE"] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.current_dir(std::env::temp_dir()).output().unwrap()
}

fn answer(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn serve(mut stream: TcpStream, repo: &Mutex<Repo>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let (mut range, mut auth) = (None, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_owned()),
                "authorization" => auth = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    let mut repo = repo.lock().unwrap();
    repo.seen.push(Seen {
        path: path.clone(),
        range: range.clone(),
        auth: auth.clone(),
    });
    if let Some(token) = &repo.token
        && auth.as_deref() != Some(&format!("Bearer {token}"))
    {
        return answer(
            &mut stream,
            "401 Unauthorized",
            &[],
            b"Access to model is restricted.",
        );
    }
    let info_prefix = format!("/api/models/{}/revision/", repo.id);
    let resolve_prefix = format!("/{}/resolve/{}/", repo.id, repo.commit);
    if let Some(rest) = path.strip_prefix(&info_prefix) {
        let revision = rest.split('?').next().unwrap().replace("%2F", "/");
        let known = revision == repo.commit || repo.refs.contains_key(&revision);
        if !known || !rest.ends_with("?blobs=true") {
            return answer(&mut stream, "404 Not Found", &[], b"Revision not found");
        }
        let huge = repo.huge.map(|size| {
            serde_json::json!({
                "rfilename": "model-huge.safetensors", "size": size, "blobId": git_blob_id(b"huge"),
                "lfs": { "sha256": "ab".repeat(32), "size": size, "pointerSize": 134 },
            })
        });
        let siblings: Vec<serde_json::Value> = repo
            .files
            .iter()
            .map(|(name, bytes, lfs)| {
                let mut s = serde_json::json!({
                    "rfilename": name,
                    "size": bytes.len(),
                    "blobId": git_blob_id(bytes),
                });
                if *lfs {
                    // An LFS file's git blob is its pointer; the hub lists the pointer's id.
                    s["blobId"] = git_blob_id(b"pointer").into();
                    s["lfs"] = serde_json::json!({
                        "sha256": sha256(bytes), "size": bytes.len(), "pointerSize": 132
                    });
                }
                s
            })
            .chain(huge)
            .collect();
        let body = serde_json::json!({ "id": repo.id, "sha": repo.commit, "siblings": siblings });
        return answer(&mut stream, "200 OK", &[], body.to_string().as_bytes());
    }
    let Some(name) = path.strip_prefix(&resolve_prefix) else {
        return answer(&mut stream, "404 Not Found", &[], b"Repository not found");
    };
    let Some(mut bytes) = repo.files.iter().find(|f| f.0 == name).map(|f| f.1.clone()) else {
        return answer(&mut stream, "404 Not Found", &[], b"Entry not found");
    };
    if repo.corrupt.as_deref() == Some(name) {
        *bytes.last_mut().unwrap() ^= 1;
    }
    let from = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .map(|n| n.parse::<usize>().unwrap());
    let cut = match &repo.cut {
        Some((file, n)) if file == name => Some(*n),
        _ => None,
    };
    if cut.is_some() {
        repo.cut = None;
    }
    drop(repo);
    let (status, headers, body) = match from {
        Some(from) => (
            "206 Partial Content",
            vec![(
                "Content-Range",
                format!("bytes {from}-{}/{}", bytes.len() - 1, bytes.len()),
            )],
            &bytes[from..],
        ),
        None => ("200 OK", vec![], &bytes[..]),
    };
    match cut {
        // The headers promise the whole body; the connection closes after `n` bytes.
        Some(n) => {
            let head = format!(
                "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[..n]);
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        None => answer(&mut stream, status, &headers, body),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `out` exited with `code`, saying each of `words` on stderr, without a panic.
fn assert_refused(out: &Output, code: i32, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in words {
        assert!(err.contains(w), "no `{w}` in: {err}");
    }
}

fn inspect_direct() -> String {
    let out = unmask(&["inspect", "--model", fixture_dir().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_hub_id_is_downloaded_checked_and_then_opened_from_the_cache() {
    let hub = FakeHub::start();
    let cache = tmp("download-cache");
    let out = hub.unmask(&["inspect", "--model", "unmask-test/tiny"], &cache);
    assert!(out.status.success(), "{}", stderr(&out));
    let commit = hub.with(|r| r.commit.clone());
    let repo = cache.join("models--unmask-test--tiny");
    let snapshot = repo.join("snapshots").join(&commit);
    // The same model as the fixture folder (the path printed is the only difference).
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.replace(snapshot.to_str().unwrap(), fixture_dir().to_str().unwrap()),
        inspect_direct()
    );
    // huggingface_hub's layout: refs/main → commit, snapshot links → blobs named by their hash.
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        commit
    );
    for (name, blob) in [
        (
            "config.json",
            git_blob_id(&common::fixture_file("config.json")),
        ),
        (
            "model.safetensors",
            sha256(&common::fixture_file("model.safetensors")),
        ),
        (
            "tokenizer.json",
            sha256(&common::fixture_file("tokenizer.json")),
        ),
    ] {
        let link = snapshot.join(name);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../../blobs").join(&blob),
            "{name}"
        );
        assert_eq!(std::fs::read(&link).unwrap(), common::fixture_file(name));
    }
    // Only what Unmask reads was fetched.
    let fetched: Vec<String> = hub
        .seen()
        .iter()
        .filter_map(|s| s.path.rsplit_once('/').map(|(_, f)| f.to_owned()))
        .collect();
    for skipped in ["pytorch_model.bin", "README.md", ".gitattributes"] {
        assert!(
            !fetched.iter().any(|f| f == skipped),
            "{skipped}: {fetched:?}"
        );
    }
    let requests = hub.seen().len();
    // Cached: opened without asking the hub, also offline.
    let out = hub.unmask(&["inspect", "--model", "unmask-test/tiny"], &cache);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        hub.seen().len(),
        requests,
        "a cached model asks the hub nothing"
    );
    // `unmask download` asks for the revision again, fetches nothing it has, and records the tag.
    let out = hub.unmask(&["download", "unmask-test/tiny@v1"], &cache);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        snapshot.to_str().unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/v1")).unwrap(),
        commit
    );
    let new: Vec<Seen> = hub.seen()[requests..].to_vec();
    assert_eq!(new.len(), 1, "only the file list: {new:?}");
    assert!(new[0].path.ends_with("/revision/v1?blobs=true"), "{new:?}");
}

#[test]
fn an_interrupted_download_resumes_where_it_stopped() {
    let hub = FakeHub::start();
    let cache = tmp("resume-cache");
    let weights = common::fixture_file("model.safetensors");
    let cut = weights.len() / 3;
    hub.with(|r| r.cut = Some(("model.safetensors".into(), cut)));
    let out = hub.unmask(&["inspect", "--model", "unmask-test/tiny"], &cache);
    let stopped = format!("stopped at {cut} of {} bytes", weights.len());
    assert_refused(&out, 2, &[&stopped, "run the command again"]);
    let repo = cache.join("models--unmask-test--tiny");
    let part = repo
        .join("blobs")
        .join(format!("{}.incomplete", sha256(&weights)));
    assert_eq!(std::fs::read(&part).unwrap(), weights[..cut]);
    assert!(
        !repo.join("snapshots").exists(),
        "no snapshot before every file is in"
    );

    let out = hub.unmask(&["inspect", "--model", "unmask-test/tiny"], &cache);
    assert!(out.status.success(), "{}", stderr(&out));
    let resumed: Vec<Seen> = hub
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with("/model.safetensors"))
        .collect();
    assert_eq!(resumed.len(), 2, "{resumed:?}");
    assert_eq!(
        resumed[1].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(
        std::fs::read(repo.join("blobs").join(sha256(&weights))).unwrap(),
        weights
    );
    assert!(!part.exists());
}

#[test]
fn a_file_that_fails_its_check_is_deleted_and_named() {
    let hub = FakeHub::start();
    let cache = tmp("corrupt-cache");
    hub.with(|r| r.corrupt = Some("tokenizer.json".into()));
    let out = hub.unmask(&["download", "unmask-test/tiny"], &cache);
    let expected = sha256(&common::fixture_file("tokenizer.json"));
    let listed = format!("the hub lists {expected}");
    assert_refused(&out, 1, &["tokenizer.json: sha256 is", &listed]);
    let blobs = cache.join("models--unmask-test--tiny/blobs");
    let left: Vec<String> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!left.iter().any(|f| f.starts_with(&expected)), "{left:?}");
    // The same for a file kept in git: a changed config is refused by its blob id.
    hub.with(|r| r.corrupt = Some("config.json".into()));
    let out = hub.unmask(&["download", "unmask-test/tiny"], &tmp("corrupt-cache-2"));
    assert!(
        stderr(&out).contains("config.json: git blob id is"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_file_another_download_is_writing_is_left_to_it() {
    let hub = FakeHub::start();
    let cache = tmp("busy-cache");
    let weights = common::fixture_file("model.safetensors");
    let blobs = cache.join("models--unmask-test--tiny/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let part = blobs.join(format!("{}.incomplete", sha256(&weights)));
    std::fs::write(&part, &weights[..100]).unwrap();
    // Another process's download, as the lock on its `.incomplete` says.
    let held = std::fs::File::open(&part).unwrap();
    held.lock().unwrap();
    let out = hub.unmask(&["download", "unmask-test/tiny"], &cache);
    assert_refused(
        &out,
        1,
        &["model.safetensors: another download of it is running"],
    );
    assert_eq!(
        std::fs::read(&part).unwrap(),
        weights[..100],
        "its bytes are untouched"
    );
    drop(held);
    let out = hub.unmask(&["download", "unmask-test/tiny"], &cache);
    assert!(out.status.success(), "{}", stderr(&out));
    let ranges: Vec<Option<String>> = hub
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with("/model.safetensors"))
        .map(|s| s.range)
        .collect();
    assert_eq!(
        ranges,
        [Some("bytes=100-".to_owned())],
        "it resumed what the other left"
    );
}

#[test]
fn a_download_the_disk_cannot_hold_is_refused_before_it_starts() {
    let hub = FakeHub::start();
    hub.with(|r| r.huge = Some(1 << 44));
    let out = hub.unmask(&["download", "unmask-test/tiny"], &tmp("full-cache"));
    assert_refused(
        &out,
        1,
        &[
            "the download needs 17592.2 GB more",
            "GB free",
            "HF_HUB_CACHE",
        ],
    );
    let seen = hub.seen();
    assert!(
        seen.len() == 1 && seen[0].path.contains("/api/models/"),
        "only the listing: {seen:?}"
    );
}

#[test]
fn gated_missing_and_offline_models_say_what_to_do() {
    let hub = FakeHub::start();
    let cache = tmp("gated-cache");
    hub.with(|r| r.token = Some("s3cret".into()));
    let out = hub.unmask(&["inspect", "--model", "unmask-test/tiny"], &cache);
    assert_refused(&out, 2, &["HTTP 401", "set HF_TOKEN"]);
    // With the token: downloaded, and the token went with every request.
    let out = unmask_env(
        &["download", "unmask-test/tiny"],
        &cache,
        &[("HF_ENDPOINT", &hub.url), ("HF_TOKEN", "s3cret")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = hub.seen();
    assert!(
        seen.last().unwrap().auth.as_deref() == Some("Bearer s3cret"),
        "{seen:?}"
    );
    hub.with(|r| r.token = None);

    let out = hub.unmask(&["inspect", "--model", "someone/absent"], &cache);
    assert_refused(&out, 2, &["HTTP 404", "check the id"]);
    let out = hub.unmask(&["download", "unmask-test/tiny@no-such-branch"], &cache);
    assert!(stderr(&out).contains("HTTP 404"), "{}", stderr(&out));

    let offline = |args: &[&str]| {
        let env = [("HF_ENDPOINT", hub.url.as_str()), ("HF_HUB_OFFLINE", "1")];
        unmask_env(args, &tmp("empty-cache"), &env)
    };
    let before = hub.seen().len();
    let out = offline(&["inspect", "--model", "unmask-test/tiny"]);
    assert_refused(&out, 2, &["HF_HUB_OFFLINE is set"]);
    let out = offline(&["download", "unmask-test/tiny"]);
    assert_refused(&out, 2, &["HF_HUB_OFFLINE is set"]);
    assert_eq!(hub.seen().len(), before, "offline asks the hub nothing");
    // A hub that cannot be reached is named.
    let out = unmask_env(
        &["inspect", "--model", "unmask-test/tiny"],
        &tmp("unreachable-cache"),
        &[("HF_ENDPOINT", "http://127.0.0.1:9")],
    );
    assert!(
        stderr(&out).contains("cannot reach http://127.0.0.1:9/"),
        "{}",
        stderr(&out)
    );
}

/// A Hugging Face cache as `huggingface_hub` lays it out, holding the fixture model as
/// `unmask-test/tiny` at commit `c0ffee…`, which `refs/main` and the tag `refs/v1` name.
fn hub_cache() -> (PathBuf, String) {
    let cache = tmp("hub-cache");
    let commit = "c0ffee".repeat(7)[..40].to_owned();
    let repo = cache.join("models--unmask-test--tiny");
    let snapshot = repo.join("snapshots").join(&commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture_dir().join(file), snapshot.join(file)).unwrap();
    }
    std::fs::write(repo.join("refs/main"), &commit).unwrap();
    std::fs::write(repo.join("refs/v1"), format!("{commit}\n")).unwrap();
    (cache, commit)
}

/// `unmask` with `HF_HUB_CACHE` set to `cache`, run in `cwd`, offline.
fn unmask_with_cache(args: &[&str], cache: &Path, cwd: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_unmask"))
        .args(args)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_ENDPOINT")
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
fn a_hub_id_opens_its_folder_in_the_hugging_face_cache() {
    let (cache, commit) = hub_cache();
    let cwd = tmp("hub-cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let fixture = fixture_dir();
    let expected = inspect_direct();
    for id in [
        "unmask-test/tiny".to_owned(),
        "unmask-test/tiny@main".into(),
        "unmask-test/tiny@v1".into(),
        format!("unmask-test/tiny@{commit}"),
    ] {
        let out = unmask_with_cache(&["inspect", "--model", &id], &cache, &cwd);
        assert!(out.status.success(), "{id}: {}", stderr(&out));
        // The same model, read from the snapshot (its path is the only difference).
        let text = String::from_utf8(out.stdout).unwrap();
        let snapshot = cache
            .join("models--unmask-test--tiny/snapshots")
            .join(&commit);
        assert_eq!(
            text.replace(snapshot.to_str().unwrap(), fixture.to_str().unwrap()),
            expected,
            "{id}"
        );
    }
    // A folder of the same spelling here wins over the cache: an empty one fails to load.
    std::fs::create_dir_all(cwd.join("unmask-test/tiny")).unwrap();
    let out = unmask_with_cache(&["inspect", "--model", "unmask-test/tiny"], &cache, &cwd);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("config.json"));
    std::fs::remove_dir_all(cwd.join("unmask-test")).unwrap();
}

#[test]
fn a_hub_id_not_in_the_cache_offline_is_refused_with_what_to_do() {
    let (cache, _) = hub_cache();
    let cwd = tmp("hub-cwd-2");
    std::fs::create_dir_all(&cwd).unwrap();
    let run = |args: &[&str]| {
        let out = unmask_with_cache(args, &cache, &cwd);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let err = run(&["generate", "--model", "someone/absent", "--prompt", "x"]);
    assert!(
        err.contains("unmask download someone/absent") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    assert!(err.contains(cache.to_str().unwrap()), "{err}");
    let err = run(&["inspect", "--model", "unmask-test/tiny@v2"]);
    assert!(err.contains("not at revision `v2`"), "{err}");
    assert!(err.contains("main, v1"), "the refs that are there: {err}");
    let err = run(&["chat", "--model", "no-such-folder"]);
    assert!(err.contains("not a Hugging Face model id"), "{err}");
    // A broken ref names its file.
    let bad = tmp("hub-cache-bad");
    let repo = bad.join("models--o--n");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "not a hash!\n").unwrap();
    let out = unmask_with_cache(&["inspect", "--model", "o/n"], &bad, &cwd);
    let err = stderr(&out);
    assert!(
        err.contains("refs/main") && err.contains("holds no commit hash"),
        "{err}"
    );
}
