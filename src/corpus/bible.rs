//! The World English Bible with the deuterocanon, one document per chapter.
//!
//! The text is eBible.org's public-domain WEB as the CrossWire SWORD module `engWEB2015eb`
//! (Debian's `sword-text-web`), a zText module (read by [`super::sword`]) whose entries are OSIS
//! XML fragments (OSIS 2.1.1, <https://crosswire.org/osis/>). Concatenated in canonical order,
//! the fragments form one OSIS stream in which chapters are milestones,
//! `<chapter sID="Gen.1" osisID="Gen.1"/>` … `<chapter eID="Gen.1"/>`; a document is the text
//! between the two. The stripping keeps the words of the text and drops:
//!
//! - `<note>` (footnotes, cross-references) with everything in it;
//! - `<title>` headings ("BOOK 1", book titles) with their content, except the canonical ones
//!   (`canonical="true"`: the psalms' superscriptions, "A Psalm by David", which are Scripture);
//! - `<speaker>` (the Song of Solomon's "Beloved", "Friends" labels);
//! - anything inside `<div type="front|introduction|glossary">` (the preface, the introductions
//!   to the deuterocanon, the glossary), written as `sID`/`eID` milestones or as containers;
//! - everything outside a chapter (book titles, table-of-contents milestones);
//! - the tags themselves: inline ones (`<w lemma=…>word</w>`, `<q>`, `<name>`, `<seg>`,
//!   `<reference>`, …) without a trace, block ones (`<l>`, `<lg>`, `<lb/>`, `<div>`, `<list>`,
//!   `<item>`, `<milestone>`, …) as a space.
//!
//! Entities (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;`, numeric) are decoded after the tags are gone.
//! Two books are left out: "Esther (Greek)" and "Daniel (Greek)" repeat Esther's and Daniel's
//! text (a chapter of one in the training split and its twin in the validation split would leak),
//! and in this module osis2mod, whose NRSVA versification has neither, stored them out of order
//! (Greek Esther's verses appended to the wrong ones) or in one oversized entry.

use std::path::Path;

use super::sword::{self, Testament};
use super::{CorpusError, Document, normalize};

/// Source name in document keys and the manifest.
pub const SOURCE: &str = "bible";
/// The testaments, in order: each is `{name}.bzs`, `{name}.bzv`, `{name}.bzz`.
pub const TESTAMENTS: [&str; 2] = ["ot", "nt"];
/// The three files of a zText testament.
pub const TESTAMENT_EXTENSIONS: [&str; 3] = ["bzs", "bzv", "bzz"];
/// OSIS book ids left out (see the module docs).
const DUPLICATE_BOOKS: [&str; 2] = ["EsthGr", "DanGr"];

/// Characters that open a phrase: a space goes before them.
const OPENING_MARKS: &str = "([\u{201C}\u{2018}";
/// Elements dropped with their content.
const DROPPED_ELEMENTS: [&str; 3] = ["note", "title", "speaker"];
/// `<div type=…>` whose content is not Scripture.
const DROPPED_DIV_TYPES: [&str; 3] = ["front", "introduction", "glossary"];
/// Elements inside running text: removed without leaving a space.
const INLINE_ELEMENTS: [&str; 14] = [
    "w",
    "q",
    "name",
    "seg",
    "hi",
    "foreign",
    "transChange",
    "divineName",
    "reference",
    "rdg",
    "catchWord",
    "abbr",
    "inscription",
    "index",
];

/// The files read, relative to the module's folder.
pub fn source_files() -> Vec<String> {
    TESTAMENTS
        .iter()
        .flat_map(|t| TESTAMENT_EXTENSIONS.map(|ext| format!("{t}.{ext}")))
        .collect()
}

/// Reads both testaments from the module's folder: chapters in canonical order.
pub fn read(dir: &Path) -> Result<Vec<Document>, CorpusError> {
    let mut documents = Vec::new();
    for testament in TESTAMENTS {
        let [blocks, entries, data] = TESTAMENT_EXTENSIONS
            .map(|ext| super::read_source(&dir.join(format!("{testament}.{ext}"))));
        let (blocks, entries, data) = (blocks?, entries?, data?);
        let error = |detail: String| CorpusError::Bible {
            path: dir.join(testament),
            detail,
        };
        let texts = sword::entries(&Testament {
            blocks: &blocks,
            entries: &entries,
            data: &data,
        })
        .map_err(error)?;
        let osis = texts.join(" ");
        for chapter in osis_chapters(&osis, &DUPLICATE_BOOKS).map_err(error)? {
            documents.push(Document::new(
                SOURCE,
                &chapter.book,
                chapter.number,
                normalize(&chapter.text),
            ));
        }
    }
    Ok(documents)
}

/// A chapter's text with its tags stripped (entities decoded, whitespace not yet normalized).
#[derive(Debug, PartialEq)]
struct Chapter {
    book: String,
    number: usize,
    text: String,
}

/// One tag of the stream.
struct Tag<'a> {
    name: &'a str,
    closing: bool,
    empty: bool,
    attributes: &'a str,
}

impl<'a> Tag<'a> {
    /// Parses what lies between `<` and `>`.
    fn parse(inner: &'a str) -> Result<Self, String> {
        let closing = inner.starts_with('/');
        let inner = inner.trim_start_matches('/');
        let empty = inner.ends_with('/');
        let inner = inner.trim_end_matches('/');
        let name_end = inner
            .find(|c: char| c.is_whitespace())
            .unwrap_or(inner.len());
        let name = &inner[..name_end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("malformed tag <{inner}>"));
        }
        Ok(Self {
            name,
            closing,
            empty,
            attributes: &inner[name_end..],
        })
    }

    /// The value of attribute `key`, if present.
    fn attribute(&self, key: &str) -> Option<&'a str> {
        let mut rest = self.attributes;
        while let Some(eq) = rest.find("=\"") {
            let name = rest[..eq].trim();
            let value_start = eq + 2;
            let value_end = value_start + rest[value_start..].find('"')?;
            if name == key {
                return Some(&rest[value_start..value_end]);
            }
            rest = &rest[value_end + 1..];
        }
        None
    }
}

/// Where the stream is.
enum Position {
    /// Between chapters: text is dropped.
    Outside,
    /// In a chapter that is kept.
    In(Chapter),
    /// In a chapter of a left-out book, whose milestones need not pair up.
    Skipping,
}

/// Splits an OSIS stream into its chapters' texts, leaving out the chapters of `skipped_books`.
fn osis_chapters(osis: &str, skipped_books: &[&str]) -> Result<Vec<Chapter>, String> {
    let mut chapters = Vec::new();
    let mut position = Position::Outside;
    // Elements being dropped with their content, innermost last.
    let mut dropping: Vec<&str> = Vec::new();
    // `sID`s of open non-Scripture div milestones.
    let mut dropped_milestones: Vec<&str> = Vec::new();
    // Whether dropped content was just left (a note may stand for the space between two words).
    let mut after_dropped = false;
    let mut rest = osis;
    while !rest.is_empty() {
        let (text, after) = match rest.find('<') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if let Position::In(chapter) = &mut position
            && dropping.is_empty()
            && dropped_milestones.is_empty()
            && !text.is_empty()
        {
            let text = decode_entities(text)?;
            if std::mem::take(&mut after_dropped) && needs_space_before(&chapter.text, &text) {
                chapter.text.push(' ');
            }
            chapter.text.push_str(&text);
        }
        if after.is_empty() {
            break;
        }
        let close = after
            .find('>')
            .ok_or_else(|| format!("unterminated tag {:?}", truncate(after)))?;
        let tag = Tag::parse(&after[1..close])?;
        rest = &after[close + 1..];

        if !dropping.is_empty() {
            // Inside dropped content: only follow nesting.
            if tag.closing {
                dropping.pop();
                after_dropped = dropping.is_empty();
            } else if !tag.empty {
                dropping.push(tag.name);
            }
            continue;
        }
        let dropped_div = tag.name == "div"
            && tag
                .attribute("type")
                .is_some_and(|t| DROPPED_DIV_TYPES.contains(&t));
        match (tag.name, tag.closing, tag.empty) {
            ("chapter", false, _) => {
                let (start, id) = match (tag.attribute("eID"), tag.attribute("osisID")) {
                    (Some(id), _) => (false, id),
                    (None, Some(id)) => (true, id),
                    (None, None) => return Err("a <chapter> without osisID or eID".into()),
                };
                let (book, number) = id
                    .rsplit_once('.')
                    .and_then(|(b, n)| Some((b, n.parse().ok()?)))
                    .ok_or_else(|| format!("chapter id {id:?} is not Book.N"))?;
                let skipped = skipped_books.contains(&book);
                position = match (std::mem::replace(&mut position, Position::Outside), start) {
                    (Position::In(open), _)
                        if start || open.book != book || open.number != number =>
                    {
                        let event = if start { "starts" } else { "ends" };
                        return Err(format!("{id} {event} inside {}.{}", open.book, open.number));
                    }
                    (Position::In(open), _) => {
                        chapters.push(open);
                        Position::Outside
                    }
                    (_, true) if skipped => Position::Skipping,
                    (_, true) => Position::In(Chapter {
                        book: book.to_owned(),
                        number,
                        text: String::new(),
                    }),
                    (_, false) if skipped => Position::Outside,
                    (_, false) => return Err(format!("{id} ends but never began")),
                };
            }
            ("chapter", true, _) => {
                return Err("a </chapter> container; expected milestones".into());
            }
            (name, false, false) if DROPPED_ELEMENTS.contains(&name) || dropped_div => {
                if tag.attribute("canonical") == Some("true") && name == "title" {
                    continue;
                }
                dropping.push(name);
            }
            ("div", false, true) if dropped_div => {
                match (tag.attribute("sID"), tag.attribute("eID")) {
                    (Some(id), _) => dropped_milestones.push(id),
                    (_, Some(id)) => dropped_milestones.retain(|&open| open != id),
                    _ => {}
                }
            }
            (name, _, _) if INLINE_ELEMENTS.contains(&name) => {}
            _ => {
                if let Position::In(chapter) = &mut position {
                    chapter.text.push(' ');
                }
            }
        }
    }
    if let Position::In(open) = position {
        return Err(format!("{}.{} never ends", open.book, open.number));
    }
    Ok(chapters)
}

/// Whether `next` needs a space after `text` once something between them was dropped: a note
/// often stands for the space between two words (`God<note>…</note><w>created</w>`), but not
/// before punctuation (`coins<note>…</note>.`).
fn needs_space_before(text: &str, next: &str) -> bool {
    let follows_word = text.chars().next_back().is_some_and(|c| !c.is_whitespace());
    let starts_word = next
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || OPENING_MARKS.contains(c));
    follows_word && starts_word
}

/// Replaces XML's five named entities and numeric character references.
fn decode_entities(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let end = rest[amp..]
            .find(';')
            .ok_or_else(|| format!("unterminated entity {:?}", truncate(&rest[amp..])))?;
        let entity = &rest[amp + 1..amp + end];
        let decoded = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("unknown entity &{entity};"))?,
        };
        out.push(decoded);
        rest = &rest[amp + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The start of `s`, for error messages.
fn truncate(s: &str) -> &str {
    const SHOWN: usize = 60;
    s.char_indices().nth(SHOWN).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(osis: &str) -> Vec<(String, usize, String)> {
        osis_chapters(osis, &["DanGr"])
            .unwrap()
            .into_iter()
            .map(|c| (c.book, c.number, normalize(&c.text)))
            .collect()
    }

    #[test]
    fn keeps_words_and_drops_notes_titles_and_front_matter() {
        let osis = r#"<div sID="gen2" type="front"/><title>Preface</title>Preface text.<div eID="gen2" type="front"/>
            <chapter osisID="DanGr.4" sID="DanGr.4"/>Left out.<chapter osisID="DanGr.5" sID="DanGr.5"/>
            Out of order.<chapter eID="DanGr.5"/><chapter eID="DanGr.4"/>
            <div canonical="true" osisID="Ps" sID="b1" type="book"/><title type="main">The Psalms</title>
            <chapter n="3" osisID="Ps.3" sID="Ps.3"/><title>BOOK 1</title>
            <title canonical="true" type="psalm">A Psalm by <w lemma="strong:H1732">David</w>.</title>
            <lg sID="g1"/><l level="1" sID="g2"/><w lemma="strong:H3068">Yahweh</w>, how my
            <w lemma="x">adversaries</w><note placement="foot"><reference type="annotateRef">3:1 </reference>Hebrew: <catchWord>foes</catchWord></note>
            have increased!<l eID="g2" level="1"/><l sID="g3"/>Salt &amp; light &#8212; &#x41;&lt;&gt;<lb/>end.
            <chapter eID="Ps.3"/>
            <chapter osisID="Song.1" sID="Song.1"/><div type="introduction"><p>An <div>intro</div> here.</p></div>
            <speaker>Beloved</speaker> Let him kiss me.<chapter eID="Song.1"/>"#;
        assert_eq!(
            texts(osis),
            vec![
                (
                    "Ps".to_owned(),
                    3,
                    "A Psalm by David. Yahweh, how my adversaries have increased! Salt & light — A<> end."
                        .to_owned()
                ),
                ("Song".to_owned(), 1, "Let him kiss me.".to_owned()),
            ]
        );
    }

    #[test]
    fn inline_tags_leave_no_space_and_block_tags_do() {
        let osis = r#"<chapter osisID="Gen.1" sID="Gen.1"/>In <w>the</w><note>a</note><w>beginning</w>,<note>b</note>“<w>God</w><note>1</note>, <q who="Jesus">said</q>:<l sID="a"/>“<w>Light</w>.”<l eID="a"/><l sID="b"/>It was.<chapter eID="Gen.1"/>"#;
        assert_eq!(
            texts(osis)[0].2,
            "In the beginning, \"God, said: \"Light.\" It was."
        );
    }

    #[test]
    fn rejects_broken_structure() {
        let chapters = |osis: &str| osis_chapters(osis, &[]);
        let gen1 = r#"<chapter osisID="Gen.1" sID="Gen.1"/>"#;
        assert!(chapters(&format!("{gen1}text")).is_err());
        assert!(chapters(r#"<chapter osisID="Gen" sID="Gen"/>"#).is_err());
        assert!(chapters(&format!(r#"{gen1}a <d<chapter eID="Gen.1"/>"#)).is_err());
        assert!(chapters(&format!(r#"{gen1}<chapter osisID="Gen.2" sID="Gen.2"/>"#)).is_err());
        assert!(chapters(&format!(r#"{gen1}<chapter eID="Gen.2"/>"#)).is_err());
        assert!(chapters(r#"<chapter eID="Gen.2"/>"#).is_err());
        assert!(decode_entities("a &bogus; b").is_err());
    }
}
