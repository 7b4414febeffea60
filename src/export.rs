//! Pictures of image runs for posts that cannot embed the page: samples as one PNG grid, a whole
//! run as an animated PNG (APNG: each step's x_t beside the x̂₀ it predicted), an image as SVG.
//! Pixels are drawn as blocks, never smoothed, ink dark on a light ground; PNG and APNG come from
//! the `png` crate (image-rs), the SVG is a few `rect`s.

use thiserror::Error;

use crate::sampler::image::ImageStep;

/// Blank background between the images of a grid, in output pixels.
pub const GAP: usize = 2;
/// Largest picture side written, in output pixels.
pub const MAX_SIDE: usize = 8192;
/// Most frames of an animation: longer runs are sampled evenly (the last step always kept).
pub const MAX_FRAMES: usize = 120;

/// What can go wrong drawing a picture.
#[derive(Debug, Error)]
pub enum ExportError {
    /// Nothing to draw.
    #[error("there is nothing to draw: {0}")]
    Empty(&'static str),
    /// A picture larger than [`MAX_SIDE`].
    #[error(
        "the picture would be {width}×{height} pixels, more than {MAX_SIDE} a side: lower the scale or the count"
    )]
    TooLarge {
        /// Its width.
        width: usize,
        /// Its height.
        height: usize,
    },
    /// An image whose pixel count is not `side²`.
    #[error("an image has {found} pixels, not {side}×{side}")]
    Size {
        /// Pixels found.
        found: usize,
        /// The side expected.
        side: usize,
    },
    /// The encoder's own error.
    #[error("encoding the PNG failed: {0}")]
    Encode(String),
}

/// A grey picture, one byte per pixel (0 black, 255 white).
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major grey levels.
    pub gray: Vec<u8>,
}

/// The grey level of a pixel on the diffusion's scale (−1 blank, 1 ink): ink dark, clamped; a
/// value that is not a number is blank.
pub fn gray_of(value: f32) -> u8 {
    if value.is_nan() {
        return u8::MAX;
    }
    let ink = ((value.clamp(-1.0, 1.0) + 1.0) / 2.0).clamp(0.0, 1.0);
    (255.0 * (1.0 - ink)).round() as u8
}

/// `images` (each `side²` values, row-major, on the diffusion's scale) in rows of `columns`, each
/// pixel a `scale × scale` block, [`GAP`] blank pixels around and between them.
pub fn grid(
    images: &[&[f32]],
    side: usize,
    columns: usize,
    scale: usize,
) -> Result<Picture, ExportError> {
    if images.is_empty() || side == 0 || columns == 0 || scale == 0 {
        return Err(ExportError::Empty("no images, or a zero size"));
    }
    if let Some(image) = images.iter().find(|i| i.len() != side * side) {
        return Err(ExportError::Size {
            found: image.len(),
            side,
        });
    }
    let columns = columns.min(images.len());
    let rows = images.len().div_ceil(columns);
    let cell = side.saturating_mul(scale);
    let extent = |n: usize| {
        n.saturating_mul(cell.saturating_add(GAP))
            .saturating_add(GAP)
    };
    let (width, height) = (extent(columns), extent(rows));
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ExportError::TooLarge { width, height });
    }
    let mut gray = vec![255u8; width * height];
    for (n, image) in images.iter().enumerate() {
        let (x0, y0) = (
            GAP + (n % columns) * (cell + GAP),
            GAP + (n / columns) * (cell + GAP),
        );
        for (i, &v) in image.iter().enumerate() {
            let level = gray_of(v);
            let (px, py) = (x0 + (i % side) * scale, y0 + (i / side) * scale);
            for row in py..py + scale {
                gray[row * width + px..row * width + px + scale].fill(level);
            }
        }
    }
    Ok(Picture {
        width,
        height,
        gray,
    })
}

fn encoder_error(e: ::png::EncodingError) -> ExportError {
    ExportError::Encode(e.to_string())
}

/// A PNG of `picture`.
pub fn encode_png(picture: &Picture) -> Result<Vec<u8>, ExportError> {
    encode_apng(std::slice::from_ref(picture), 0)
}

/// An animated PNG of `frames` (all of one size), each shown `delay_ms`, looping; one frame is a
/// plain PNG.
pub fn encode_apng(frames: &[Picture], delay_ms: u16) -> Result<Vec<u8>, ExportError> {
    let first = frames.first().ok_or(ExportError::Empty("no frames"))?;
    let data: Vec<&[u8]> = frames
        .iter()
        .map(|f| {
            if (f.width, f.height) != (first.width, first.height) {
                return Err(ExportError::Empty("frames of different sizes"));
            }
            Ok(f.gray.as_slice())
        })
        .collect::<Result<_, _>>()?;
    encode(
        first.width,
        first.height,
        ::png::ColorType::Grayscale,
        &data,
        delay_ms,
    )
}

/// A colour picture, four bytes (red, green, blue, alpha) per pixel: what the browser draws a
/// text canvas into.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorPicture {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major RGBA bytes.
    pub rgba: Vec<u8>,
}

/// An animated PNG of colour `frames` (all of one size), as [`encode_apng`].
pub fn encode_apng_rgba(frames: &[ColorPicture], delay_ms: u16) -> Result<Vec<u8>, ExportError> {
    let first = frames.first().ok_or(ExportError::Empty("no frames"))?;
    let data: Vec<&[u8]> = frames
        .iter()
        .map(|f| {
            if (f.width, f.height) != (first.width, first.height) {
                return Err(ExportError::Empty("frames of different sizes"));
            }
            if f.rgba.len() != f.width.saturating_mul(f.height).saturating_mul(4) {
                return Err(ExportError::Empty("a frame's bytes are not its size"));
            }
            Ok(f.rgba.as_slice())
        })
        .collect::<Result<_, _>>()?;
    encode(
        first.width,
        first.height,
        ::png::ColorType::Rgba,
        &data,
        delay_ms,
    )
}

fn encode(
    width: usize,
    height: usize,
    color: ::png::ColorType,
    frames: &[&[u8]],
    delay_ms: u16,
) -> Result<Vec<u8>, ExportError> {
    if width > MAX_SIDE || height > MAX_SIDE || width == 0 || height == 0 {
        return Err(ExportError::TooLarge { width, height });
    }
    let size = |n: usize| u32::try_from(n).map_err(|_| ExportError::TooLarge { width, height });
    let mut out = Vec::new();
    {
        let mut encoder = ::png::Encoder::new(&mut out, size(width)?, size(height)?);
        encoder.set_color(color);
        encoder.set_depth(::png::BitDepth::Eight);
        if frames.len() > 1 {
            encoder
                .set_animated(size(frames.len())?, 0)
                .map_err(encoder_error)?;
            encoder
                .set_frame_delay(delay_ms, 1000)
                .map_err(encoder_error)?;
        }
        let mut writer = encoder.write_header().map_err(encoder_error)?;
        for frame in frames {
            writer.write_image_data(frame).map_err(encoder_error)?;
        }
        writer.finish().map_err(encoder_error)?;
    }
    Ok(out)
}

/// The steps an animation of `total` steps shows: all of them up to [`MAX_FRAMES`], else evenly
/// spaced ones, the last always included.
pub fn frame_steps(total: usize) -> Vec<usize> {
    if total <= MAX_FRAMES {
        return (0..total).collect();
    }
    let mut picked: Vec<usize> = (0..MAX_FRAMES)
        .map(|k| k * (total - 1) / (MAX_FRAMES - 1))
        .collect();
    picked.dedup();
    picked
}

/// The frames of a run's first image: x_t beside x̂₀ at each step of [`frame_steps`].
pub fn run_frames(
    steps: &[ImageStep],
    side: usize,
    scale: usize,
) -> Result<Vec<Picture>, ExportError> {
    let pixels = side * side;
    frame_steps(steps.len())
        .into_iter()
        .map(|i| {
            let s = &steps[i];
            let (x, x0) = (s.x.get(..pixels), s.x0.get(..pixels));
            match (x, x0) {
                (Some(x), Some(x0)) => grid(&[x, x0], side, 2, scale),
                _ => Err(ExportError::Size {
                    found: s.x.len().min(s.x0.len()),
                    side,
                }),
            }
        })
        .collect()
}

/// An SVG of one image: a `rect` per pixel that is not blank, on a white ground.
pub fn svg(image: &[f32], side: usize, scale: usize) -> Result<String, ExportError> {
    if image.len() != side * side || side == 0 {
        return Err(ExportError::Size {
            found: image.len(),
            side,
        });
    }
    let extent = side * scale;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{extent}\" height=\"{extent}\" viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\n<rect width=\"{side}\" height=\"{side}\" fill=\"#ffffff\"/>\n"
    );
    for (i, &v) in image.iter().enumerate() {
        let level = gray_of(v);
        if level < 255 {
            out.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"1\" height=\"1\" fill=\"#{level:02x}{level:02x}{level:02x}\"/>\n",
                i % side,
                i / side
            ));
        }
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// Hue for a confidence in [0, 1]: red (unsure) to green (sure), as the page colours tokens.
pub fn confidence_hue(confidence: f64) -> f64 {
    confidence.clamp(0.0, 1.0) * 130.0
}

/// Width of a text picture, in pixels: cells wrap onto a new line past it.
pub const TEXT_WIDTH: f64 = 760.0;
const FONT_PX: f64 = 14.0;
/// A monospace character's advance at [`FONT_PX`].
const CHAR_PX: f64 = 8.4;
const CELL_PAD: f64 = 4.0;
const CELL_GAP: f64 = 3.0;
const LINE_PX: f64 = 24.0;

fn xml_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// A text canvas as SVG, and its size in pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSvg {
    /// The document.
    pub svg: String,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// An SVG of a text canvas at one step, laid out as the page draws it: prompt tokens grey and
/// italic, masked cells hatched boxes, committed tokens on their confidence's colour (the step's
/// own commits stronger), the block being denoised outlined. At least `min_height` pixels tall
/// (an animation's frames share the tallest one's height).
pub fn cells_svg(cells: &[crate::page::Cell], min_height: u32) -> TextSvg {
    use crate::page::CellState;
    let (mut x, mut y) = (CELL_GAP, CELL_GAP);
    let mut body = String::new();
    for cell in cells {
        let shown = crate::page::replay::visible(&cell.text);
        let chars = shown.chars().count().max(2) as f64;
        let w = chars * CHAR_PX + 2.0 * CELL_PAD;
        if x + w > TEXT_WIDTH && x > CELL_GAP {
            x = CELL_GAP;
            y += LINE_PX + CELL_GAP;
        }
        let (fill, ink, style) = match cell.state {
            CellState::Prompt => ("none".to_string(), "#777777", " font-style=\"italic\""),
            CellState::Masked => ("url(#masked)".to_string(), "#000000", ""),
            CellState::Committed {
                confidence, fresh, ..
            } => (
                format!(
                    "hsl({:.0},75%,50%)\" fill-opacity=\"{}",
                    confidence_hue(confidence),
                    if fresh { 0.55 } else { 0.25 }
                ),
                "#111111",
                if fresh { " font-weight=\"bold\"" } else { "" },
            ),
        };
        let stroke = if cell.in_block {
            " stroke=\"#3b5bdb\" stroke-width=\"1\""
        } else {
            ""
        };
        body.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{LINE_PX}\" rx=\"4\" fill=\"{fill}\"{stroke}/>\n"
        ));
        if !shown.is_empty() {
            body.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{ink}\"{style} xml:space=\"preserve\">{}</text>\n",
                x + CELL_PAD,
                y + LINE_PX * 0.7,
                xml_text(&shown)
            ));
        }
        x += w + CELL_GAP;
    }
    let height = (y + LINE_PX + CELL_GAP).ceil().max(f64::from(min_height));
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{TEXT_WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {TEXT_WIDTH} {height:.0}\" font-family=\"ui-monospace, Menlo, monospace\" font-size=\"{FONT_PX}\">\n<defs><pattern id=\"masked\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f1f1f1\"/><rect width=\"2\" height=\"6\" fill=\"#d0d0d0\"/></pattern></defs>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n{body}</svg>\n"
    );
    TextSvg {
        svg,
        width: TEXT_WIDTH as u32,
        height: height as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (::png::OutputInfo, Vec<u8>, u32) {
        let decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let frames = reader
            .info()
            .animation_control()
            .map_or(1, |a| a.num_frames);
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        (info, buf, frames)
    }

    #[test]
    fn a_text_canvas_draws_every_cell_its_text_escaped_and_wraps() {
        use crate::page::{Cell, CellState};
        let cell = |position, text: &str, state| Cell {
            position,
            text: text.into(),
            state,
            in_block: position == 2,
            level: None,
        };
        let mut cells = vec![
            cell(0, "<b>&", CellState::Prompt),
            cell(1, "", CellState::Masked),
            cell(
                2,
                " word\n",
                CellState::Committed {
                    step: 0,
                    confidence: 1.0,
                    fresh: true,
                },
            ),
        ];
        let picture = cells_svg(&cells, 0);
        let svg = picture.svg.clone();
        assert_eq!(svg.matches("<rect x=").count(), 3, "{svg}");
        assert!(svg.contains("&lt;b&gt;&amp;</text>"), "{svg}");
        // Whitespace made visible as the page shows it; a sure fresh token green and bold.
        assert!(
            svg.contains(">·word↵</text>") || svg.contains("> word↵</text>"),
            "{svg}"
        );
        assert!(
            svg.contains("hsl(130,75%,50%)") && svg.contains("font-weight=\"bold\""),
            "{svg}"
        );
        assert!(svg.contains("stroke=\"#3b5bdb\""), "the block is outlined");
        assert_eq!(svg.matches("<text").count(), 2, "a masked cell has no text");
        assert!(
            svg.contains(&format!("height=\"{}\"", picture.height)),
            "{svg}"
        );
        // Enough cells wrap onto more lines: the picture grows taller; a frame keeps a height.
        cells.extend((3..200).map(|i| cell(i, "abc", CellState::Masked)));
        let tall = cells_svg(&cells, 0);
        assert!(tall.height > 5 * picture.height);
        assert_eq!(cells_svg(&cells[..3], tall.height).height, tall.height);
        assert_eq!(tall.width, picture.width);
    }

    #[test]
    fn colour_frames_make_an_animation_and_bad_sizes_are_refused() {
        let frame = |v: u8| ColorPicture {
            width: 2,
            height: 1,
            rgba: vec![v; 8],
        };
        let bytes = encode_apng_rgba(&[frame(0), frame(200), frame(90)], 100).unwrap();
        let (info, first, frames) = decode(&bytes);
        assert_eq!((info.width, info.height, frames), (2, 1, 3));
        assert_eq!(info.color_type, ::png::ColorType::Rgba);
        assert_eq!(first, vec![0; 8]);
        let short = ColorPicture {
            rgba: vec![0; 7],
            ..frame(0)
        };
        assert!(encode_apng_rgba(&[short], 100).is_err());
        let wide = ColorPicture {
            width: 3,
            rgba: vec![0; 12],
            ..frame(0)
        };
        assert!(encode_apng_rgba(&[frame(0), wide], 100).is_err());
        assert!(encode_apng_rgba(&[], 100).is_err());
    }

    #[test]
    fn ink_is_dark_paper_light_and_not_a_number_blank() {
        assert_eq!(gray_of(1.0), 0);
        assert_eq!(gray_of(-1.0), 255);
        assert_eq!(gray_of(7.0), 0);
        assert_eq!(gray_of(0.0), 128);
        assert_eq!(gray_of(f32::NAN), 255);
    }

    #[test]
    fn a_grid_draws_every_pixel_as_a_block_ink_dark_and_round_trips_through_png() {
        let ink = [1.0f32; 4];
        let blank = [-1.0f32; 4];
        let mut half = [-1.0f32; 4];
        half[3] = 1.0;
        let pic = grid(&[&ink, &blank, &half], 2, 2, 3).unwrap();
        // Two columns, two rows of 2×3-pixel cells with 2-pixel gaps.
        assert_eq!((pic.width, pic.height), (2 + 2 * (6 + 2), 2 + 2 * (6 + 2)));
        let at = |x: usize, y: usize| pic.gray[y * pic.width + x];
        assert_eq!(at(2, 2), 0, "ink is black");
        assert_eq!(at(2 + 8, 2), 255, "blank is white");
        // The third image's last pixel (row 1, column 1) is ink: its 3×3 block at (5, 13)..(8, 16).
        assert_eq!(at(2 + 3, 2 + 8 + 3), 0);
        assert_eq!(at(2 + 2, 2 + 8 + 2), 255);
        let (info, buf, frames) = decode(&encode_png(&pic).unwrap());
        assert_eq!(
            (info.width as usize, info.height as usize, frames),
            (pic.width, pic.height, 1)
        );
        assert_eq!(buf[..pic.gray.len()], pic.gray[..]);
    }

    #[test]
    fn an_animation_has_one_frame_per_shown_step_and_long_runs_are_sampled() {
        let step = |i: usize| ImageStep {
            index: i,
            model_calls: i + 1,
            t: 9 - i,
            noise_level: 0.5,
            x: vec![i as f32 / 10.0; 4],
            x0: vec![0.0; 4],
            class_prob: None,
        };
        let steps: Vec<ImageStep> = (0..10).map(step).collect();
        let frames = run_frames(&steps, 2, 2).unwrap();
        assert_eq!(frames.len(), 10);
        let (_, _, count) = decode(&encode_apng(&frames, 100).unwrap());
        assert_eq!(count, 10);
        let long = frame_steps(1000);
        assert_eq!(long.len(), MAX_FRAMES);
        assert_eq!((long[0], *long.last().unwrap()), (0, 999));
        assert!(long.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bad_sizes_are_errors_and_svg_draws_only_ink() {
        assert!(matches!(
            grid(&[&[0.0; 3]], 2, 1, 1),
            Err(ExportError::Size { .. })
        ));
        assert!(matches!(
            grid(&[&[0.0; 4]], 2, 1, 5000),
            Err(ExportError::TooLarge { .. })
        ));
        assert!(matches!(encode_apng(&[], 10), Err(ExportError::Empty(_))));
        let svg = svg(&[1.0, -1.0, -1.0, 0.0], 2, 10).unwrap();
        assert_eq!(svg.matches("<rect x=").count(), 2, "{svg}");
        assert!(svg.contains("fill=\"#000000\"") && svg.contains("fill=\"#808080\""));
    }
}
