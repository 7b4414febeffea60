//! Downloads with byte progress, kept in the browser's Cache Storage.
//!
//! Cross-origin model files (a Hugging Face repo, another site) are stored in the Cache Storage
//! bucket [`CACHE_NAME`] after their first download, so a reload reads them from disk. Files of the
//! page's own origin (the bundled model) go through the ordinary HTTP cache instead, which
//! revalidates them when the site is updated. A large file is kept in parts as it arrives, and a
//! download that broke off resumes with a Range request ([`crate::page::parts`]). Such a file is
//! never assembled in wasm memory: [`Stored`] reads it back a range at a time (a text model's
//! weights a stage at a time, [`crate::bundle::TextAssembly`]), as it reads a dropped file from
//! disk.

use std::cell::RefCell;
use std::ops::Range;

use js_sys::{Reflect, Uint8Array};
use thiserror::Error;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Headers, ReadableStreamDefaultReader, RequestInit, Response};

use super::js_error;
use crate::page::parts::{Manifest, manifest_key, part_key, range_start};

/// The Cache Storage bucket for model files.
pub const CACHE_NAME: &str = "unmask-models-v1";
/// Bytes between two progress reports.
const PROGRESS_EVERY: u64 = 1 << 18;

/// Why a file could not be had.
#[derive(Debug, Error)]
pub enum FetchError {
    /// The server has no such file.
    #[error(
        "{url} was not found (HTTP 404): check the model URL or repo id, and that the folder has config.json, model.safetensors and tokenizer.json"
    )]
    NotFound {
        /// The URL.
        url: String,
    },
    /// Any other HTTP error.
    #[error("{url} answered HTTP {status}{hint}")]
    Http {
        /// The URL.
        url: String,
        /// Status code.
        status: u16,
        /// What it likely means.
        hint: &'static str,
    },
    /// The request did not complete (network down, or blocked by CORS).
    #[error(
        "could not fetch {url} ({detail}): the network is down, or the server does not allow this page to read it (CORS: it must send Access-Control-Allow-Origin)"
    )]
    Network {
        /// The URL.
        url: String,
        /// The browser's words.
        detail: String,
    },
    /// The file is larger than the download allowed without the reader ([`fetch_file`]'s
    /// `limit`); nothing more of it is read.
    #[error("{url} is {bytes} bytes, over the {limit} this load may download by itself")]
    OverLimit {
        /// The URL.
        url: String,
        /// Its size (at least: the bytes read when the server did not say).
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A kept copy could not be read back.
    #[error("{url} could not be read back ({detail}); load the model again to fetch it anew")]
    Damaged {
        /// The URL, or the dropped file's name.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The body broke off.
    #[error("the download of {url} broke off ({detail}); load the model again to continue it")]
    Body {
        /// The URL.
        url: String,
        /// The browser's words.
        detail: String,
    },
}

impl FetchError {
    /// Whether the file is simply absent (a missing tokenizer has a fallback).
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::NotFound { .. })
    }
}

/// `fetch(url, init)` in this worker or window.
fn global_fetch(url: &str, init: &RequestInit) -> js_sys::Promise {
    let global = js_sys::global();
    if let Some(scope) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        scope.fetch_with_str_and_init(url, init)
    } else {
        web_sys::window()
            .expect("a window or a worker")
            .fetch_with_str_and_init(url, init)
    }
}

fn caches() -> Option<CacheStorage> {
    let global = js_sys::global();
    // Throws in opaque origins (a sandboxed iframe without allow-same-origin): no cache then.
    let c = Reflect::get(&global, &"caches".into()).ok()?;
    c.dyn_into::<CacheStorage>().ok()
}

async fn open_cache() -> Option<Cache> {
    let p = caches()?.open(CACHE_NAME);
    JsFuture::from(p).await.ok()?.dyn_into::<Cache>().ok()
}

/// Whether `url` leaves the page's origin (and so is kept in Cache Storage).
fn is_remote(url: &str) -> bool {
    let Ok(href) = Reflect::get(&js_sys::global(), &"location".into())
        .and_then(|l| Reflect::get(&l, &"origin".into()))
    else {
        return false;
    };
    let origin = href.as_string().unwrap_or_default();
    (url.starts_with("https://") || url.starts_with("http://")) && !url.starts_with(&origin)
}

/// Bytes this origin may still store: `navigator.storage.estimate()`'s quota less its usage, when
/// the browser says.
async fn storage_room() -> Option<u64> {
    let global = js_sys::global();
    let storage = Reflect::get(
        &Reflect::get(&global, &"navigator".into()).ok()?,
        &"storage".into(),
    )
    .ok()?;
    let estimate: js_sys::Function = Reflect::get(&storage, &"estimate".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = estimate.call0(&storage).ok()?.dyn_into().ok()?;
    let answer = JsFuture::from(promise).await.ok()?;
    let quota = Reflect::get(&answer, &"quota".into()).ok()?.as_f64()?;
    let usage = Reflect::get(&answer, &"usage".into())
        .ok()
        .and_then(|u| u.as_f64())
        .unwrap_or(0.0);
    Some((quota - usage).max(0.0) as u64)
}

/// Why a downloaded file was not kept for the next visit, in words for the reader.
fn not_kept(url: &str, bytes: u64, room: u64) -> String {
    let file = url.rsplit('/').next().unwrap_or(url);
    format!(
        "{file} ({}) is not kept for your next visit: this site may store only {} more in this browser (its storage quota), so it downloads again next time",
        crate::page::human_bytes(bytes),
        crate::page::human_bytes(room)
    )
}

/// A downloaded file, read a range at a time: in memory, kept in parts in Cache Storage (a large
/// file of another origin, never assembled in wasm memory), or a file dropped on the page.
pub enum Stored {
    /// The whole file in memory.
    Memory(Vec<u8>),
    /// Every part of the file, in Cache Storage.
    Parts(KeptParts),
    /// A file the reader dropped, read from disk.
    Dropped(web_sys::File),
}

impl Stored {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Stored::Memory(bytes) => bytes.len() as u64,
            Stored::Parts(parts) => parts.manifest.size,
            Stored::Dropped(file) => file.size() as u64,
        }
    }

    /// Bytes `range` of the file (within its size). Memory the page cannot have is an error,
    /// not an abort.
    pub async fn read(&self, range: Range<u64>) -> Result<Vec<u8>, FetchError> {
        let damaged = |detail: String| FetchError::Damaged {
            url: match self {
                Stored::Dropped(file) => file.name(),
                Stored::Parts(parts) => parts.url.clone(),
                Stored::Memory(_) => "the file".into(),
            },
            detail,
        };
        let end = range.end.min(self.size());
        let len = end.saturating_sub(range.start);
        let mut out = Vec::new();
        if usize::try_from(len).map_or(true, |n| out.try_reserve_exact(n).is_err()) {
            return Err(damaged(format!(
                "{} does not fit in the browser's WebAssembly memory",
                crate::page::human_bytes(len)
            )));
        }
        if len == 0 {
            return Ok(out);
        }
        match self {
            Stored::Memory(bytes) => {
                out.extend_from_slice(&bytes[range.start as usize..end as usize])
            }
            Stored::Parts(parts) => parts.read_into(range.start..end, &mut out).await?,
            Stored::Dropped(file) => {
                let slice = file
                    .slice_with_f64_and_f64(range.start as f64, end as f64)
                    .map_err(|e| damaged(js_error(&e)))?;
                let buffer = JsFuture::from(slice.array_buffer())
                    .await
                    .map_err(|e| damaged(js_error(&e)))?;
                let bytes = Uint8Array::new(&buffer);
                out.resize(bytes.length() as usize, 0);
                bytes.copy_to(&mut out);
            }
        }
        Ok(out)
    }

    /// The whole file in memory.
    pub async fn into_bytes(self) -> Result<Vec<u8>, FetchError> {
        match self {
            Stored::Memory(bytes) => Ok(bytes),
            other => other.read(0..other.size()).await,
        }
    }
}

/// The parts of a file complete in Cache Storage ([`crate::page::parts`]), read back a range at a
/// time. The part last read stays in JavaScript's memory (not wasm's), since neighbouring
/// tensors share parts.
pub struct KeptParts {
    cache: Cache,
    url: String,
    manifest: Manifest,
    last: RefCell<Option<(u64, Uint8Array)>>,
}

impl KeptParts {
    /// The parts of the file at `url` that `manifest` describes, in `cache`.
    fn new(cache: &Cache, url: &str, manifest: Manifest) -> Self {
        Self {
            cache: cache.clone(),
            url: url.to_owned(),
            manifest,
            last: RefCell::new(None),
        }
    }

    /// Part `k`, checked against its size.
    async fn part(&self, k: u64) -> Result<Uint8Array, FetchError> {
        if let Some((held, bytes)) = &*self.last.borrow()
            && *held == k
        {
            return Ok(bytes.clone());
        }
        let r = self.manifest.range(k);
        match cached_array(&self.cache, &part_key(&self.url, k)).await {
            Some(bytes) if bytes.length() as u64 == r.end - r.start => {
                *self.last.borrow_mut() = Some((k, bytes.clone()));
                Ok(bytes)
            }
            // Evicted or damaged since the download: the next load fetches it again.
            _ => {
                forget_parts(&self.cache, &self.url, &self.manifest).await;
                Err(FetchError::Damaged {
                    url: self.url.clone(),
                    detail: format!("part {k} of its copy in this browser's cache is gone"),
                })
            }
        }
    }

    /// Appends bytes `range` of the file (within its size) to `out`, copied from the parts that
    /// hold them.
    async fn read_into(&self, range: Range<u64>, out: &mut Vec<u8>) -> Result<(), FetchError> {
        let end = range.end;
        let mut at = range.start;
        while at < end {
            let k = at / self.manifest.part;
            let part = self.part(k).await?;
            let r = self.manifest.range(k);
            let (from, to) = (at - r.start, end.min(r.end) - r.start);
            let start = out.len();
            out.resize(start + (to - from) as usize, 0);
            part.subarray(from as u32, to as u32)
                .copy_to(&mut out[start..]);
            at = r.start + to;
        }
        Ok(())
    }
}

/// [`fetch_file`]'s answer, read into memory.
pub async fn fetch_bytes(
    url: &str,
    limit: Option<u64>,
    mut progress: impl FnMut(u64, Option<u64>, bool),
    mut note: impl FnMut(String),
) -> Result<Vec<u8>, FetchError> {
    fetch_file(url, limit, &mut progress, &mut note)
        .await?
        .into_bytes()
        .await
}

/// Fetches `url`, calling `progress(loaded, total, from_cache)` as bytes arrive. With a `limit`,
/// a download larger than that many bytes stops before its body (or as soon as it passes the
/// limit, when the server sends no size) with [`FetchError::OverLimit`]; a file already in
/// Cache Storage is read whatever its size. A file of another origin is kept in Cache Storage
/// when the storage quota has room for it (checked before the download when the server gives
/// its size); when not, it is still read, and `note` says why it is not kept. A large one is
/// kept in parts as it arrives ([`crate::page::parts`]) and never held whole in wasm memory: it
/// is answered as [`Stored::Parts`], and a download that broke off resumes from its last whole
/// part.
pub async fn fetch_file(
    url: &str,
    limit: Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>, bool),
    note: &mut dyn FnMut(String),
) -> Result<Stored, FetchError> {
    let remote = is_remote(url);
    let cache = if remote { open_cache().await } else { None };
    // What an earlier visit kept: the whole file, or its first parts.
    let mut kept: Option<(Manifest, u64)> = None;
    if let Some(cache) = &cache {
        if let Some(response) = cached(cache, url).await
            && let Ok(Sink::Memory(bytes)) = read_body(
                url,
                &response,
                None,
                (Sink::Memory(Vec::new()), content_length(&response)),
                |l, t| progress(l, t, true),
            )
            .await
        {
            return Ok(Stored::Memory(bytes));
        }
        if let Some(manifest) = read_manifest(cache, url).await {
            let held = kept_parts(cache, url, &manifest).await;
            let bytes = (held * manifest.part).min(manifest.size);
            progress(bytes, Some(manifest.size), true);
            if bytes == manifest.size {
                return Ok(Stored::Parts(KeptParts::new(cache, url, manifest)));
            }
            kept = Some((manifest, bytes));
        }
    }
    let from = kept.as_ref().map_or(0, |(_, b)| *b);
    let mut response = match request(url, from).await {
        Ok(response) => response,
        // A server (or its CORS rules) that refuses the Range request still serves the file:
        // ask for it whole, and the parts start over below.
        Err(e) if from > 0 && !e.is_not_found() => request(url, 0).await?,
        Err(e) => return Err(e),
    };
    let etag = response.headers().get("etag").ok().flatten();
    let partial = response.status() == 206;
    let resumed = from > 0
        && partial
        && kept
            .as_ref()
            .is_some_and(|(m, _)| m.same_file(etag.as_deref()))
        && response
            .headers()
            .get("content-range")
            .ok()
            .flatten()
            .is_none_or(|r| range_start(&r) == Some(from));
    let (kept, start_len) = match kept {
        Some((manifest, bytes)) if resumed => (Some(manifest), bytes),
        Some((manifest, _)) => {
            // The file changed, or the server ignores Range: start it over.
            if let Some(cache) = &cache {
                forget_parts(cache, url, &manifest).await;
            }
            if partial {
                // Part of another file: ask for this one whole.
                if let Some(body) = response.body() {
                    let _ = JsFuture::from(body.cancel()).await;
                }
                response = request(url, 0).await?;
            }
            (None, 0)
        }
        None => (None, 0),
    };
    let etag = response.headers().get("etag").ok().flatten();
    let remaining = content_length(&response);
    let size = remaining.map(|r| r + start_len);
    if let (Some(size), Some(limit)) = (size, limit)
        && size > limit
    {
        // Before anything of it is kept.
        if let Some(body) = response.body() {
            let _ = JsFuture::from(body.cancel()).await;
        }
        return Err(FetchError::OverLimit {
            url: url.to_owned(),
            bytes: size,
            limit,
        });
    }
    // The quota first: a file that cannot be kept is still worth this visit.
    let room = if cache.is_some() {
        storage_room().await
    } else {
        None
    };
    let fits = |bytes: u64| room.is_none_or(|room| bytes <= room);
    let mut cache = cache;
    // A resumed download goes on into its parts: its first bytes are there and nowhere else.
    if let Some(remaining) = remaining
        && !fits(remaining)
        && start_len == 0
    {
        cache = None;
        note(not_kept(url, size.unwrap_or(remaining), room.unwrap_or(0)));
    }
    // A large file of known size is kept part by part as it arrives.
    let manifest = kept.or_else(|| size.and_then(|s| Manifest::new(s, etag.clone())));
    let sink = match (&cache, manifest) {
        (Some(cache), Some(manifest))
            if start_len > 0
                || put(cache, &manifest_key(url), json_bytes(&manifest).as_bytes()).await =>
        {
            Sink::Parts {
                parts: KeptParts::new(cache, url, manifest),
                tail: Vec::new(),
                at: start_len,
            }
        }
        _ => Sink::Memory(Vec::new()),
    };
    let bytes = match read_body(url, &response, limit, (sink, size), |l, t| {
        progress(l, t, false)
    })
    .await?
    {
        Sink::Parts { parts, .. } => return Ok(Stored::Parts(parts)),
        Sink::Memory(bytes) => bytes,
    };
    if size.is_none() && cache.is_some() && !fits(bytes.len() as u64) {
        cache = None;
        note(not_kept(url, bytes.len() as u64, room.unwrap_or(0)));
    }
    if let Some(cache) = cache {
        put(&cache, url, &bytes).await;
    }
    Ok(Stored::Memory(bytes))
}

/// Where a body's bytes go as they arrive.
enum Sink {
    /// All of them, into memory.
    Memory(Vec<u8>),
    /// Into Cache Storage, a part as soon as it is whole; only the part being received is held.
    Parts {
        /// The file's parts.
        parts: KeptParts,
        /// The bytes of the part being received.
        tail: Vec<u8>,
        /// The file offset of `tail`'s first byte.
        at: u64,
    },
}

impl Sink {
    /// The file's bytes received so far, counting those kept before.
    fn received(&self) -> u64 {
        match self {
            Sink::Memory(bytes) => bytes.len() as u64,
            Sink::Parts { tail, at, .. } => at + tail.len() as u64,
        }
    }

    /// Takes `chunk`, keeping every part it completes. When Cache Storage refuses a part (a
    /// full disk, a private window), the file goes on into memory, the parts kept so far read
    /// back first.
    async fn take(&mut self, chunk: &Uint8Array) -> Result<(), FetchError> {
        let bytes = match self {
            Sink::Memory(bytes) => bytes,
            Sink::Parts { tail, .. } => tail,
        };
        let before = bytes.len();
        bytes.resize(before + chunk.length() as usize, 0);
        chunk.copy_to(&mut bytes[before..]);
        if let Sink::Parts { parts, tail, at } = self {
            loop {
                let k = *at / parts.manifest.part;
                let r = parts.manifest.range(k);
                let len = (r.end - r.start) as usize;
                if k >= parts.manifest.parts() || tail.len() < len {
                    break;
                }
                if !put(&parts.cache, &part_key(&parts.url, k), &tail[..len]).await {
                    let mut bytes = Vec::new();
                    parts.read_into(0..*at, &mut bytes).await?;
                    bytes.append(tail);
                    forget_parts(&parts.cache, &parts.url, &parts.manifest).await;
                    *self = Sink::Memory(bytes);
                    break;
                }
                tail.drain(..len);
                *at = r.end;
            }
        }
        Ok(())
    }
}

fn json_bytes(manifest: &Manifest) -> String {
    serde_json::to_string(manifest).unwrap_or_default()
}

/// Puts `bytes` in `cache` under `key`; a full cache or a private window only costs the next
/// download.
async fn put(cache: &Cache, key: &str, bytes: &[u8]) -> bool {
    let body = Uint8Array::from(bytes);
    match Response::new_with_opt_buffer_source(Some(&body)) {
        Ok(stored) => JsFuture::from(cache.put_with_str(key, &stored))
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// The response kept under `key`, if any.
async fn cached(cache: &Cache, key: &str) -> Option<Response> {
    JsFuture::from(cache.match_with_str(key))
        .await
        .ok()?
        .dyn_into::<Response>()
        .ok()
}

/// The bytes kept under `key`, if any, left in JavaScript's memory.
async fn cached_array(cache: &Cache, key: &str) -> Option<Uint8Array> {
    let response = cached(cache, key).await?;
    let buffer = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
    Some(Uint8Array::new(&buffer))
}

/// The bytes kept under `key`, if any.
async fn cached_bytes(cache: &Cache, key: &str) -> Option<Vec<u8>> {
    Some(cached_array(cache, key).await?.to_vec())
}

/// The manifest of a file kept in parts, when it reads as one.
async fn read_manifest(cache: &Cache, url: &str) -> Option<Manifest> {
    let bytes = cached_bytes(cache, &manifest_key(url)).await?;
    let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
    manifest.is_sane().then_some(manifest)
}

/// How many of a file's parts are kept, from the first on, up to the first missing one (their
/// sizes are checked as they are read: [`KeptParts::part`]).
async fn kept_parts(cache: &Cache, url: &str, manifest: &Manifest) -> u64 {
    for k in 0..manifest.parts() {
        if cached(cache, &part_key(url, k)).await.is_none() {
            return k;
        }
    }
    manifest.parts()
}

/// Deletes a file's manifest and parts.
async fn forget_parts(cache: &Cache, url: &str, manifest: &Manifest) {
    let _ = JsFuture::from(cache.delete_with_str(&manifest_key(url))).await;
    for k in 0..manifest.parts() {
        let _ = JsFuture::from(cache.delete_with_str(&part_key(url, k))).await;
    }
}

/// GETs `url` from byte `from` on (a Range request when `from > 0`), refusing error statuses.
async fn request(url: &str, from: u64) -> Result<Response, FetchError> {
    let network = |detail: String| FetchError::Network {
        url: url.to_owned(),
        detail,
    };
    let init = RequestInit::new();
    if from > 0 {
        let headers = Headers::new().map_err(|e| network(js_error(&e)))?;
        headers
            .set("range", &format!("bytes={from}-"))
            .map_err(|e| network(js_error(&e)))?;
        init.set_headers(&headers);
    }
    let response: Response = JsFuture::from(global_fetch(url, &init))
        .await
        .map_err(|e| network(js_error(&e)))?
        .dyn_into()
        .map_err(|e| network(js_error(&e)))?;
    match response.status() {
        200..=299 => Ok(response),
        404 => Err(FetchError::NotFound { url: url.into() }),
        status => {
            let hint = match status {
                401 | 403 => {
                    ": the model is private or gated; use a public one, or download it and drop the files on the page"
                }
                429 => ": too many requests; wait a minute and try again",
                500..=599 => ": the server failed; try again later",
                _ => "",
            };
            Err(FetchError::Http {
                url: url.into(),
                status,
                hint,
            })
        }
    }
}

/// The size the server announces.
fn content_length(response: &Response) -> Option<u64> {
    response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads `response`'s body into `sink` after the bytes already held (`start.0`), `start.1`
/// being the whole file's size when the server said. A size over `limit` is the caller's to
/// refuse before the body; here the running count is checked, for servers that send none.
async fn read_body(
    url: &str,
    response: &Response,
    limit: Option<u64>,
    (mut sink, total): (Sink, Option<u64>),
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<Sink, FetchError> {
    let body_err = |e: JsValue| FetchError::Body {
        url: url.to_owned(),
        detail: js_error(&e),
    };
    let Some(stream) = response.body() else {
        let held = sink.received();
        progress(held, Some(held));
        return Ok(sink);
    };
    let reader: ReadableStreamDefaultReader = stream
        .get_reader()
        .dyn_into()
        .map_err(|o| body_err(o.into()))?;
    // The server's size is a hint; wasm32 has 4 GB of memory at most.
    if let (Some(total), Sink::Memory(bytes)) = (total, &mut sink)
        && usize::try_from(total).map_or(true, |t| {
            bytes
                .try_reserve_exact(t.saturating_sub(bytes.len()))
                .is_err()
        })
    {
        return Err(FetchError::Body {
            url: url.to_owned(),
            detail: format!(
                "{:.1} GB does not fit in the browser's WebAssembly memory",
                total as f64 / 1e9
            ),
        });
    }
    let mut reported = sink.received();
    progress(reported, total);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(body_err)?;
        let done = Reflect::get(&chunk, &"done".into())
            .map_err(body_err)?
            .as_bool()
            .unwrap_or(true);
        if done {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(body_err)?
            .dyn_into()
            .map_err(body_err)?;
        let loaded = sink.received() + value.length() as u64;
        if let Some(limit) = limit
            && loaded > limit
        {
            let _ = JsFuture::from(reader.cancel()).await;
            return Err(FetchError::OverLimit {
                url: url.to_owned(),
                bytes: loaded,
                limit,
            });
        }
        sink.take(&value).await?;
        if loaded - reported >= PROGRESS_EVERY {
            reported = loaded;
            progress(loaded, total);
        }
    }
    let received = sink.received();
    if let (Sink::Parts { .. }, Some(total)) = (&sink, total)
        && received != total
    {
        // A body shorter than its announced size: the missing parts are fetched next time.
        return Err(FetchError::Body {
            url: url.to_owned(),
            detail: format!("{received} of {total} bytes arrived"),
        });
    }
    progress(received, total.or(Some(received)));
    Ok(sink)
}

/// Deletes every cached model file.
pub async fn clear_cache() -> Result<bool, String> {
    let Some(c) = caches() else {
        return Ok(false);
    };
    JsFuture::from(c.delete(CACHE_NAME))
        .await
        .map(|v| v.as_bool().unwrap_or(false))
        .map_err(|e| js_error(&e))
}
