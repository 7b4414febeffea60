//! `unmask download owner/name[@revision]` and the `--model` argument of every command: a
//! model folder, or a Hugging Face id opened from the hub's cache and downloaded into it when it
//! is not there ([`unmask::hub`]), with the download's progress on stderr.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use unmask::hub::{self, Event, Hub, HubId};

use crate::CliError;

#[derive(Args)]
pub struct DownloadArgs {
    /// A Hugging Face model id, owner/name or owner/name@revision (a branch, tag or commit).
    /// The files Unmask reads (the top-level *.json, *.safetensors and *.jinja) go into the
    /// Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub) from
    /// HF_ENDPOINT (default https://huggingface.co), with HF_TOKEN for gated models; an
    /// interrupted download resumes, and every file is checked against the hub's size and
    /// sha256. Prints the model's folder.
    id: String,
}

/// The progress of downloading `id` from `endpoint` on stderr: a bar per file on a terminal, a
/// line per file in a log. A bar a failure left unfinished stays as it stopped.
struct Display<'a> {
    id: &'a str,
    endpoint: &'a str,
    bar: Option<ProgressBar>,
    terminal: bool,
}

impl Drop for Display<'_> {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

impl<'a> Display<'a> {
    fn new(id: &'a str, endpoint: &'a str) -> Self {
        Self {
            id,
            endpoint,
            bar: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Listed {
                commit,
                files,
                bytes,
                cached,
            } => eprintln!(
                "{} at {}: {files} files, {} ({} to download) from {}",
                self.id,
                &commit[..commit.len().min(12)],
                unmask::page::human_bytes(bytes),
                unmask::page::human_bytes(bytes.saturating_sub(cached)),
                self.endpoint
            ),
            Event::Start { file, size, from } if self.terminal => {
                let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
                // The template is a constant: it parses, or the bar keeps indicatif's default.
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("#>."));
                }
                bar.set_message(file.to_owned());
                bar.set_position(from);
                bar.reset_eta();
                self.bar = Some(bar);
            }
            Event::Start { file, size, from } if from > 0 => eprintln!(
                "{file}: resuming at {} of {}",
                unmask::page::human_bytes(from),
                unmask::page::human_bytes(size)
            ),
            Event::Start { .. } => {}
            Event::Progress { done, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                }
            }
            Event::Done { file } => match self.bar.take() {
                Some(bar) => bar.finish(),
                None => eprintln!("{file}: checked"),
            },
        }
    }
}

/// Opens `arg` as [`hub::open`] does, from the environment's cache and hub, showing a download's
/// progress.
pub fn open_model(arg: &OsStr) -> Result<PathBuf, hub::HubError> {
    let hub = Hub::from_env();
    let id = arg.to_string_lossy();
    let mut display = Display::new(&id, hub.as_ref().map_or("", Hub::endpoint));
    hub::open(arg, &hub::cache_dir(), hub.as_ref(), &mut |e| {
        display.event(e)
    })
}

/// `--model`'s parser: a folder (any path, UTF-8 or not), or a Hugging Face id, from the cache
/// or downloaded into it ([`open_model`]).
pub fn model_folder() -> clap::builder::ValueParser {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new()
        .try_map(|arg| open_model(&arg))
        .into()
}

/// `unmask download`: asks the hub for the revision's commit (even when a snapshot is cached,
/// so `main` follows the branch) and fetches what the cache lacks.
pub fn run(args: DownloadArgs) -> Result<(), CliError> {
    let id = HubId::parse(&args.id).ok_or_else(|| {
        CliError::Input(format!(
            "`{}` is not a Hugging Face model id (owner/name, optionally @revision)",
            args.id
        ))
    })?;
    let hub = Hub::from_env().ok_or_else(|| {
        CliError::Input(format!(
            "HF_HUB_OFFLINE is set, so `{id}` is not downloaded: unset it"
        ))
    })?;
    let mut display = Display::new(&args.id, hub.endpoint());
    let folder = hub
        .download(&id, &hub::cache_dir(), &mut |e| display.event(e))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    outln!("{}", folder.display());
    Ok(())
}
