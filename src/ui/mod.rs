//! The page: Leptos components over the [`page`](crate::page) state and the model worker.
//!
//! [`app`] holds the state and talks to the worker; [`canvas`] draws the tokens, [`digits`] the images of Gaussian diffusion, [`words`] Diffusion-LM's words, [`plots`] the
//! SVG charts, [`timeline`] the player, [`controls`] the sampler knobs, model loading, sharing and
//! trajectory files. Every text from a prompt, a token or a URL is inserted as a text node, never
//! as HTML.

pub mod app;
pub mod canvas;
pub mod controls;
pub mod digits;
pub mod plots;
pub mod timeline;
pub mod unified;
pub mod words;

pub use app::mount;
