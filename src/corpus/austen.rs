//! Jane Austen's six novels, one document per chapter.
//!
//! The text is Project Gutenberg's, as packaged by the R package janeaustenr (Debian's
//! `r-cran-janeaustenr`): `data/Rdata.rdb` holds one character vector per novel, one element per
//! printed line, empty strings between paragraphs (read by [`super::rdata`]). Each vector is
//! recognised by its first line, the title.
//!
//! A chapter runs from its heading (`CHAPTER I`, `Chapter 1`, `CHAPTER XII`) to the next one;
//! what precedes chapter 1 (title, "By Jane Austen", the year, Northanger Abbey's
//! "Advertisement") is dropped, as are the paragraphs that are not Austen's text: volume headings
//! (`VOLUME II`), end marks (`FINIS`, `THE END`), the transcribers' bracketed notes
//! (`[End volume one of this edition. …]`), asterisk scene breaks, Northanger Abbey's footnote
//! and its closing "A NOTE ON THE TEXT". `_italic_` underscores and footnote asterisks go.

use std::path::Path;

use super::rdata::{self, RString};
use super::{CorpusError, Document, normalize};

/// Source name in document keys and the manifest.
pub const SOURCE: &str = "austen";
/// The lazy-load database inside janeaustenr's `data/` folder.
pub const DATABASE_FILE: &str = "Rdata.rdb";

/// The novels, in the order they are written out: (first line of the vector, book name).
const NOVELS: [(&str, &str); 6] = [
    ("EMMA", "emma"),
    ("MANSFIELD PARK", "mansfield-park"),
    ("NORTHANGER ABBEY", "northanger-abbey"),
    ("PERSUASION", "persuasion"),
    ("PRIDE AND PREJUDICE", "pride-and-prejudice"),
    ("SENSE AND SENSIBILITY", "sense-and-sensibility"),
];

/// The word that opens a chapter heading (compared without case).
const CHAPTER_WORD: &str = "chapter";
/// The word that opens a volume heading (compared without case).
const VOLUME_WORD: &str = "volume";
/// Paragraphs that close a novel (compared without case).
const END_MARKS: [&str; 2] = ["finis", "the end"];
/// A heading after which nothing is Austen's (Northanger Abbey's editorial note).
const END_MATTER_HEADING: &str = "A NOTE ON THE TEXT";
/// Marks a footnote (at the start of a paragraph) or its reference (after a word).
const FOOTNOTE_MARK: char = '*';
/// Gutenberg's mark for italics: `_word_`.
const ITALIC_MARK: char = '_';

/// The files read, relative to janeaustenr's `data/` folder.
pub fn source_files() -> Vec<String> {
    vec![DATABASE_FILE.to_owned()]
}

/// Reads the six novels from janeaustenr's `data/` folder: chapters in novel order.
pub fn read(dir: &Path) -> Result<Vec<Document>, CorpusError> {
    let path = dir.join(DATABASE_FILE);
    let bytes = super::read_source(&path)?;
    let vectors = rdata::read_string_vectors(&bytes).map_err(|detail| CorpusError::Austen {
        path: path.clone(),
        detail,
    })?;
    let error = |detail: String| CorpusError::Austen {
        path: path.clone(),
        detail,
    };
    let mut novels: Vec<Option<Vec<RString>>> = vec![None; NOVELS.len()];
    for lines in vectors {
        let title = lines.first().cloned().flatten().unwrap_or_default();
        let index = NOVELS
            .iter()
            .position(|(t, _)| t.eq_ignore_ascii_case(title.trim()))
            .ok_or_else(|| {
                error(format!(
                    "a record whose first line {title:?} is not one of the six novels' titles"
                ))
            })?;
        if novels[index].replace(lines).is_some() {
            return Err(error(format!("{title:?} appears twice")));
        }
    }
    let mut documents = Vec::new();
    for ((title, book), lines) in NOVELS.iter().zip(novels) {
        let lines = lines.ok_or_else(|| error(format!("{title} is missing")))?;
        let lines = lines
            .into_iter()
            .enumerate()
            .map(|(i, line)| line.ok_or_else(|| error(format!("{title}: line {} is NA", i + 1))))
            .collect::<Result<Vec<_>, _>>()?;
        let chapters = chapters(&lines);
        if chapters.is_empty() {
            return Err(error(format!("{title}: no chapter headings")));
        }
        documents.extend(
            chapters
                .into_iter()
                .enumerate()
                .map(|(i, text)| Document::new(SOURCE, book, i + 1, text)),
        );
    }
    Ok(documents)
}

/// Splits a novel's lines into its chapters' cleaned texts (empty chapters kept, so that chapter
/// numbers stay those of the book).
fn chapters(lines: &[String]) -> Vec<String> {
    let mut chapters: Vec<Vec<String>> = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut end_matter = false;
    for line in lines {
        let trimmed = line.trim();
        if trimmed == END_MATTER_HEADING {
            end_matter = true;
        }
        if end_matter {
            continue;
        }
        if is_chapter_heading(trimmed) {
            finish_paragraph(&mut paragraph, chapters.last_mut());
            chapters.push(Vec::new());
        } else if trimmed.is_empty() {
            finish_paragraph(&mut paragraph, chapters.last_mut());
        } else {
            paragraph.push(trimmed);
        }
    }
    finish_paragraph(&mut paragraph, chapters.last_mut());
    chapters
        .into_iter()
        .map(|paragraphs| normalize(&strip_marks(&paragraphs.join(" "))))
        .collect()
}

/// Ends the paragraph being read: kept in the chapter (if a chapter has begun and the paragraph
/// is Austen's text), then cleared.
fn finish_paragraph(paragraph: &mut Vec<&str>, chapter: Option<&mut Vec<String>>) {
    let text = paragraph.join(" ");
    paragraph.clear();
    if let Some(chapter) = chapter
        && !text.is_empty()
        && !is_apparatus(&text)
    {
        chapter.push(text);
    }
}

/// `CHAPTER XII`, `Chapter 1`, `CHAPTER 1.`: a chapter word then a Roman or Arabic number.
fn is_chapter_heading(line: &str) -> bool {
    is_numbered_heading(line, CHAPTER_WORD)
}

/// `word` (any case), whitespace, then a Roman or Arabic number, maybe with a full stop.
fn is_numbered_heading(line: &str, word: &str) -> bool {
    let mut parts = line.split_whitespace();
    let (Some(first), Some(number), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let number = number.strip_suffix('.').unwrap_or(number);
    first.eq_ignore_ascii_case(word)
        && !number.is_empty()
        && (number.bytes().all(|b| b.is_ascii_digit())
            || number.chars().all(|c| "IVXLCivxlc".contains(c)))
}

/// A paragraph that is not the novel's text: a volume heading, an end mark, a transcriber's
/// `[note]`, an asterisk scene break or a footnote (`*Vide …`).
fn is_apparatus(paragraph: &str) -> bool {
    is_numbered_heading(paragraph, VOLUME_WORD)
        || END_MARKS.iter().any(|m| m.eq_ignore_ascii_case(paragraph))
        || (paragraph.starts_with('[') && paragraph.ends_with(']'))
        || paragraph.starts_with(FOOTNOTE_MARK)
}

/// Removes Gutenberg's `_italic_` underscores and footnote reference asterisks.
fn strip_marks(text: &str) -> String {
    text.chars()
        .filter(|&c| c != ITALIC_MARK && c != FOOTNOTE_MARK)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn splits_chapters_and_drops_front_matter_and_apparatus() {
        let novel = lines(
            "EMMA\n\nBy Jane Austen\n\n\n\nVOLUME I\n\n\n\nCHAPTER I\n\n\nEmma Woodhouse, handsome,\n\
             clever, and _rich_.\n\nShe was the youngest.\n\n\n\nCHAPTER II\n\nMr. Weston* was a native.\n\n\
             * * * * *\n\n[End volume one of this edition.\nPrinted by T. and A. Constable]\n\nVOLUME II\n\n\
             CHAPTER I\n\n“Well,” said she.\n\nFINIS\n\n*Vide a letter.\n\nA NOTE ON THE TEXT\n\nIt was revised.",
        );
        assert_eq!(
            chapters(&novel),
            vec![
                "Emma Woodhouse, handsome, clever, and rich. She was the youngest.",
                "Mr. Weston was a native.",
                "\"Well,\" said she.",
            ]
        );
    }

    #[test]
    fn recognises_chapter_headings() {
        for heading in [
            "CHAPTER I",
            "Chapter 1",
            "CHAPTER XII",
            "CHAPTER 12.",
            "  CHAPTER  IV ",
        ] {
            assert!(is_chapter_heading(heading.trim()), "{heading}");
        }
        for line in [
            "CHAPTER",
            "chapters 1",
            "Chapter one",
            "the chapter I read",
            "CHAPTER I II",
        ] {
            assert!(!is_chapter_heading(line), "{line}");
        }
    }
}
