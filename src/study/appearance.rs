//! Trial images as participants fetch them: each appearance of an image (session, position, slot) has
//! its own opaque URL, a keyed hash resolved on the server, so the same image never has the same URL
//! twice and equal URLs tell nothing (a catch query is one of the references on screen, and a script
//! comparing URLs would solve it without looking). The bytes of each appearance differ too: a PNG gets
//! a private ancillary chunk, a JPEG a comment, holding the appearance's tag. Pixels stay identical, so
//! what humans see, and what the observer scored, does not change; a script must decode images to
//! compare them.

use crate::study::recruit::ParticipantKey;

/// The images of a trial, by content hash.
pub struct TrialImages<'a> {
    pub max_query: &'a str,
    pub min_query: &'a str,
    pub max_refs: &'a [String],
    pub min_refs: &'a [String],
}

/// Where an image appears on a trial's screen. Queries are numbered as shown (0 on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    MinRef(usize),
    MaxRef(usize),
    Query(usize),
}

impl Slot {
    fn code(self) -> String {
        match self {
            Self::MinRef(i) => format!("n{i}"),
            Self::MaxRef(i) => format!("x{i}"),
            Self::Query(i) => format!("q{i}"),
        }
    }
}

/// Hex characters of an appearance tag (128 bits).
pub const TAG_LEN: usize = 32;

/// The URLs of a trial's images at `position` of a session, as the trial payload lists them.
pub struct Urls {
    pub min_refs: Vec<String>,
    pub max_refs: Vec<String>,
    pub queries: [String; 2],
}

impl TrialImages<'_> {
    /// Every slot with its image, queries in the order shown.
    fn slots(&self, max_first: bool) -> impl Iterator<Item = (Slot, &str)> {
        let queries = if max_first {
            [self.max_query, self.min_query]
        } else {
            [self.min_query, self.max_query]
        };
        let min = self.min_refs.iter().enumerate();
        let max = self.max_refs.iter().enumerate();
        min.map(|(i, s)| (Slot::MinRef(i), s.as_str()))
            .chain(max.map(|(i, s)| (Slot::MaxRef(i), s.as_str())))
            .chain(
                queries
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| (Slot::Query(i), s)),
            )
    }

    pub fn urls(&self, key: &ParticipantKey, token: &str, session_id: i64, position: i32) -> Urls {
        let url = |slot: Slot| {
            format!(
                "/api/v1/sessions/{token}/images/{position}/{}",
                tag(key, session_id, position, slot)
            )
        };
        Urls {
            min_refs: (0..self.min_refs.len())
                .map(|i| url(Slot::MinRef(i)))
                .collect(),
            max_refs: (0..self.max_refs.len())
                .map(|i| url(Slot::MaxRef(i)))
                .collect(),
            queries: [url(Slot::Query(0)), url(Slot::Query(1))],
        }
    }

    /// The image behind an appearance tag of this trial at `position`, if the tag is one of them.
    pub fn resolve(
        &self,
        key: &ParticipantKey,
        session_id: i64,
        position: i32,
        max_first: bool,
        wanted: &str,
    ) -> Option<String> {
        if wanted.len() != TAG_LEN {
            return None;
        }
        self.slots(max_first)
            .find(|(slot, _)| tag(key, session_id, position, *slot) == wanted)
            .map(|(_, sha)| sha.to_string())
    }
}

fn tag(key: &ParticipantKey, session_id: i64, position: i32, slot: Slot) -> String {
    let mut tag = key.tag(
        "trial-image",
        &format!("{session_id}:{position}:{}", slot.code()),
    );
    tag.truncate(TAG_LEN);
    tag
}

/// The bytes of one appearance: `image` with `tag` carried in a chunk (PNG) or comment (JPEG) that
/// decoders skip. Other formats are sent unchanged.
pub fn marked(image: Vec<u8>, tag: &str) -> Vec<u8> {
    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if image.starts_with(PNG_SIGNATURE) {
        // After the signature and IHDR (8 + 4 + 4 + 13 + 4 bytes), before any other chunk.
        let at = PNG_SIGNATURE.len() + 25;
        if image.len() < at || &image[12..16] != b"IHDR" {
            return image;
        }
        // Ancillary (lowercase 1st), private (lowercase 2nd), reserved bit clear, safe to copy.
        let kind = b"miTg";
        let mut chunk = Vec::with_capacity(12 + tag.len());
        chunk.extend_from_slice(&(tag.len() as u32).to_be_bytes());
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(tag.as_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(tag.as_bytes());
        chunk.extend_from_slice(&crc.finalize().to_be_bytes());
        let mut out = Vec::with_capacity(image.len() + chunk.len());
        out.extend_from_slice(&image[..at]);
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&image[at..]);
        return out;
    }
    if image.starts_with(&[0xFF, 0xD8]) {
        // A COM segment right after SOI.
        let mut out = Vec::with_capacity(image.len() + 4 + tag.len());
        out.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xFE]);
        out.extend_from_slice(&((tag.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(&image[2..]);
        return out;
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> (Vec<String>, Vec<String>) {
        let refs = |c: char| (0..3).map(|i| format!("{c}{i}")).collect::<Vec<_>>();
        (refs('a'), refs('b'))
    }

    #[test]
    fn every_appearance_has_its_own_url_and_resolves_to_its_image() {
        let key = ParticipantKey::new(b"k");
        let (max_refs, min_refs) = images();
        // The catch case: a query is one of the references.
        let trial = TrialImages {
            max_query: "a0",
            min_query: "b1",
            max_refs: &max_refs,
            min_refs: &min_refs,
        };
        for max_first in [true, false] {
            let urls = trial.urls(&key, "tok", 7, 3);
            let all: Vec<&String> = urls
                .min_refs
                .iter()
                .chain(&urls.max_refs)
                .chain(&urls.queries)
                .collect();
            let distinct: std::collections::HashSet<_> = all.iter().collect();
            assert_eq!(distinct.len(), all.len(), "URLs repeat: {all:?}");
            let resolve = |url: &str| {
                let tag = url.rsplit('/').next().unwrap();
                trial.resolve(&key, 7, 3, max_first, tag)
            };
            assert_eq!(resolve(&urls.max_refs[0]).as_deref(), Some("a0"));
            assert_eq!(resolve(&urls.min_refs[1]).as_deref(), Some("b1"));
            let (top, bottom) = if max_first {
                ("a0", "b1")
            } else {
                ("b1", "a0")
            };
            assert_eq!(resolve(&urls.queries[0]).as_deref(), Some(top));
            assert_eq!(resolve(&urls.queries[1]).as_deref(), Some(bottom));
        }
        // Another session, position or key: nothing resolves.
        let url = trial.urls(&key, "tok", 7, 3).queries[0].clone();
        let tag = url.rsplit('/').next().unwrap();
        assert_eq!(trial.resolve(&key, 8, 3, true, tag), None);
        assert_eq!(trial.resolve(&key, 7, 4, true, tag), None);
        assert_eq!(
            trial.resolve(&ParticipantKey::new(b"j"), 7, 3, true, tag),
            None
        );
    }

    #[test]
    fn marked_images_decode_to_the_same_pixels_with_different_bytes() {
        let pixels =
            image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 7]));
        for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
            let mut bytes = std::io::Cursor::new(Vec::new());
            pixels.write_to(&mut bytes, format).unwrap();
            let bytes = bytes.into_inner();
            let a = marked(bytes.clone(), &"1".repeat(TAG_LEN));
            let b = marked(bytes.clone(), &"2".repeat(TAG_LEN));
            assert_ne!(a, b, "{format:?}");
            let decode = |b: &[u8]| image::load_from_memory(b).unwrap().to_rgb8().into_raw();
            assert_eq!(decode(&a), decode(&bytes), "{format:?}");
            assert_eq!(decode(&b), decode(&bytes), "{format:?}");
        }
    }
}
