//! Downloads with byte progress, kept in the browser's Cache Storage.
//!
//! Cross-origin model files (a Hugging Face repo, another site) are stored in the Cache Storage
//! bucket [`CACHE_NAME`] after their first download, so a reload reads them from disk. Files of the
//! page's own origin (the bundled model) go through the ordinary HTTP cache instead, which
//! revalidates them when the site is updated.

use js_sys::{Reflect, Uint8Array};
use thiserror::Error;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, ReadableStreamDefaultReader, Response};

use super::js_error;

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
    /// The file is larger than the download allowed without the reader ([`fetch_bytes`]'s
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
    /// The body broke off.
    #[error("the download of {url} broke off: {detail}; try again")]
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

fn global_fetch(url: &str) -> js_sys::Promise {
    let global = js_sys::global();
    if let Some(scope) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        scope.fetch_with_str(url)
    } else {
        web_sys::window()
            .expect("a window or a worker")
            .fetch_with_str(url)
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

/// Fetches `url` whole, calling `progress(loaded, total, from_cache)` as bytes arrive. With a
/// `limit`, a download larger than that many bytes stops before its body (or as soon as it
/// passes the limit, when the server sends no size) with [`FetchError::OverLimit`]; a file
/// already in Cache Storage is read whatever its size. A file of another origin is kept in
/// Cache Storage when the storage quota has room for it (checked before the download when the
/// server gives its size); when not, it is still read, and `note` says why it is not kept.
pub async fn fetch_bytes(
    url: &str,
    limit: Option<u64>,
    mut progress: impl FnMut(u64, Option<u64>, bool),
    mut note: impl FnMut(String),
) -> Result<Vec<u8>, FetchError> {
    let remote = is_remote(url);
    let cache = if remote { open_cache().await } else { None };
    if let Some(cache) = &cache
        && let Ok(hit) = JsFuture::from(cache.match_with_str(url)).await
        && let Ok(response) = hit.dyn_into::<Response>()
        && let Ok(bytes) = read_body(url, &response, None, |l, t| progress(l, t, true)).await
    {
        return Ok(bytes);
    }
    let network = |detail: String| FetchError::Network {
        url: url.to_owned(),
        detail,
    };
    let response: Response = JsFuture::from(global_fetch(url))
        .await
        .map_err(|e| network(js_error(&e)))?
        .dyn_into()
        .map_err(|e| network(js_error(&e)))?;
    match response.status() {
        200..=299 => {}
        404 => return Err(FetchError::NotFound { url: url.into() }),
        status => {
            let hint = match status {
                401 | 403 => {
                    ": the model is private or gated; use a public one, or download it and drop the files on the page"
                }
                429 => ": too many requests; wait a minute and try again",
                500..=599 => ": the server failed; try again later",
                _ => "",
            };
            return Err(FetchError::Http {
                url: url.into(),
                status,
                hint,
            });
        }
    }
    // The quota first: a file that cannot be kept is still worth this visit.
    let size = content_length(&response);
    let room = if cache.is_some() {
        storage_room().await
    } else {
        None
    };
    let fits = |bytes: u64| room.is_none_or(|room| bytes <= room);
    let mut cache = cache;
    if let Some(size) = size
        && !fits(size)
    {
        cache = None;
        note(not_kept(url, size, room.unwrap_or(0)));
    }
    let bytes = read_body(url, &response, limit, |l, t| progress(l, t, false)).await?;
    if size.is_none() && cache.is_some() && !fits(bytes.len() as u64) {
        cache = None;
        note(not_kept(url, bytes.len() as u64, room.unwrap_or(0)));
    }
    if let Some(cache) = cache {
        // A full cache or a private window only costs the next download.
        let body = Uint8Array::from(bytes.as_slice());
        if let Ok(stored) = Response::new_with_opt_buffer_source(Some(&body)) {
            let _ = JsFuture::from(cache.put_with_str(url, &stored)).await;
        }
    }
    Ok(bytes)
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

async fn read_body(
    url: &str,
    response: &Response,
    limit: Option<u64>,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<Vec<u8>, FetchError> {
    let body_err = |e: JsValue| FetchError::Body {
        url: url.to_owned(),
        detail: js_error(&e),
    };
    let total = content_length(response);
    let over = |bytes: u64, limit: u64| FetchError::OverLimit {
        url: url.to_owned(),
        bytes,
        limit,
    };
    let Some(stream) = response.body() else {
        progress(0, Some(0));
        return Ok(Vec::new());
    };
    if let (Some(total), Some(limit)) = (total, limit)
        && total > limit
    {
        // Tell the server to stop sending.
        let _ = JsFuture::from(stream.cancel()).await;
        return Err(over(total, limit));
    }
    let reader: ReadableStreamDefaultReader = stream
        .get_reader()
        .dyn_into()
        .map_err(|o| body_err(o.into()))?;
    let mut bytes = Vec::new();
    // The server's size is a hint; wasm32 has 4 GB of memory at most.
    if let Some(total) = total
        && usize::try_from(total).map_or(true, |t| bytes.try_reserve_exact(t).is_err())
    {
        return Err(FetchError::Body {
            url: url.to_owned(),
            detail: format!(
                "{:.1} GB does not fit in the browser's WebAssembly memory",
                total as f64 / 1e9
            ),
        });
    }
    let mut reported = 0u64;
    progress(0, total);
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
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        let loaded = bytes.len() as u64;
        if let Some(limit) = limit
            && loaded > limit
        {
            let _ = JsFuture::from(reader.cancel()).await;
            return Err(over(loaded, limit));
        }
        if loaded - reported >= PROGRESS_EVERY {
            reported = loaded;
            progress(loaded, total);
        }
    }
    progress(bytes.len() as u64, total.or(Some(bytes.len() as u64)));
    Ok(bytes)
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
