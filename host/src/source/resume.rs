//! Where a unit of objects (the objects one message names) is picked up again after a deadline
//! or a failure cut it off: which object, how many of its items were done, and, for formats that
//! can start mid-object (plain CSV and JSON Lines), the byte offset and line of the next item,
//! so the retry reads on from there with a ranged GET instead of reading and skipping what was
//! done. A resume is bound to the object's ETag: a changed object is read from its start.
//!
//! Readers report where they are after each item they yield ([`Tell`]); the object reader turns
//! that into one [`Resume`] per item ([`Marks`]), and the runner keeps the one after the last
//! item whose every effect completed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// The largest CSV header a resume carries (it travels in an SQS message attribute); a wider
/// header resumes by reading and skipping the done rows instead.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Where to go on reading a unit of objects (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// How many of the unit's objects were finished (they are not read again).
    #[serde(default)]
    pub object: usize,
    /// Items of the next object that are done (records and unreadable rows alike).
    pub items: u64,
    /// Where its next item starts, when its format can be read from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<At>,
    /// The object's ETag when it was read, if the store gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// A place in an object to read on from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct At {
    /// Bytes into the object as stored.
    pub offset: u64,
    /// Lines before `offset`: the next record's line numbers (its id) count on from there.
    pub lines: u64,
    /// The CSV header the rows after `offset` are read with (empty for JSON Lines, or before
    /// the header was read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header: Vec<String>,
    /// The byte before `offset` is a CR counted in `lines`: a LF at `offset` is its CRLF, not
    /// another line (CSV).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_cr: bool,
}

/// Where a reader stands: the offset, the lines before it, and whether it stands right after a
/// CR (see [`At::after_cr`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    pub offset: u64,
    pub lines: u64,
    pub after_cr: bool,
}

/// What a reader says of its place after the item it just yielded.
#[derive(Debug, Default)]
struct Told {
    /// Where the next item would start.
    place: Option<Place>,
    header: Vec<String>,
}

/// A reader's place, shared with whoever reads its items (one reader, one thread at a time).
#[derive(Debug, Clone, Default)]
pub struct Tell(Arc<Mutex<Told>>);

impl Tell {
    /// The next item starts `offset` bytes into the object, after `lines` lines.
    pub fn set(&self, offset: u64, lines: u64) {
        self.set_place(Place { offset, lines, after_cr: false });
    }

    /// The next item starts at this place.
    pub fn set_place(&self, place: Place) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).place = Some(place);
    }

    /// The reader cannot be started where it is (the rest of its input is unreadable).
    pub fn lose(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).place = None;
    }

    /// The CSV header rows after this are read with.
    pub fn set_header(&self, header: &[String]) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).header = header.to_vec();
    }

    #[cfg(test)]
    pub(crate) fn place(&self) -> Option<(u64, u64)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).place.map(|p| (p.offset, p.lines))
    }

    /// Where to start a reader for the next item, header included.
    #[cfg(test)]
    pub(crate) fn at(&self) -> Option<At> {
        let told = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        told.place.map(|p| At { offset: p.offset, lines: p.lines, header: told.header.clone(), after_cr: p.after_cr })
    }

    pub(crate) fn header(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).header.clone()
    }
}

/// One item's mark: the unit's place after it.
#[derive(Debug, Clone, Copy)]
struct Mark {
    object: usize,
    items: u64,
    place: Option<Place>,
}

#[derive(Debug, Default)]
struct Marked {
    /// Marks of items yielded and not yet confirmed done, oldest first.
    pending: VecDeque<Mark>,
    /// The mark of the last item confirmed done.
    done: Option<Mark>,
    /// Per object of the unit (by index): its ETag and the reader's place.
    objects: Vec<(Option<String>, Tell)>,
    /// The unit is not what its checkpoint was made for.
    stale: bool,
}

/// The places of a unit's items as they are read, and the last one confirmed done: what a
/// checkpoint saves. Memory stays bounded: confirmed marks are dropped.
#[derive(Debug, Clone, Default)]
pub struct Marks(Arc<Mutex<Marked>>);

impl Marks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Marked> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Object `object` of the unit is being read, with this ETag; its reader reports to `tell`.
    pub(crate) fn open(&self, object: usize, etag: Option<String>, tell: Tell) {
        let mut m = self.lock();
        if m.objects.len() <= object {
            m.objects.resize_with(object + 1, || (None, Tell::default()));
        }
        m.objects[object] = (etag, tell);
    }

    /// An item of object `object` was yielded; `items` of that object are yielded so far.
    pub(crate) fn item(&self, object: usize, items: u64) {
        let mut m = self.lock();
        let place =
            m.objects.get(object).and_then(|(_, tell)| tell.0.lock().unwrap_or_else(PoisonError::into_inner).place);
        m.pending.push_back(Mark { object, items, place });
    }

    /// The next `n` items yielded are done.
    pub fn confirm(&self, n: u64) {
        let mut m = self.lock();
        for _ in 0..n {
            match m.pending.pop_front() {
                Some(mark) => m.done = Some(mark),
                None => break,
            }
        }
    }

    /// Whether the checkpoint the unit was resumed from no longer fits it (see [`by_count`]).
    pub fn is_stale(&self) -> bool {
        self.lock().stale
    }

    /// Where to resume after the items confirmed done; `None` if none was.
    pub fn resume(&self) -> Option<Resume> {
        let m = self.lock();
        let mark = m.done?;
        let (etag, tell) = m.objects.get(mark.object).cloned().unwrap_or_default();
        let header = tell.header();
        let header_bytes: usize = header.iter().map(|h| h.len() + 1).sum();
        let at = mark.place.filter(|_| header_bytes <= MAX_HEADER_BYTES).map(|p| At {
            offset: p.offset,
            lines: p.lines,
            header,
            after_cr: p.after_cr,
        });
        Some(Resume { object: mark.object, items: mark.items, at, etag })
    }
}

/// Items of a unit that cannot start mid-way (a direct SNS event's messages): resumed by
/// skipping the `from.items` done, each item marked by its count. A read failure among the
/// skipped ones is yielded (the unit fails, its checkpoint stays); if the items end before that
/// many, the unit changed since its checkpoint: one failure saying so, and `marks` is
/// [`Marks::is_stale`] (its checkpoint is to be forgotten, so the retry starts over).
pub fn by_count(items: super::Items, from: Option<&Resume>, marks: &Marks) -> super::Items {
    use super::SourceItem;
    let skip = from.map_or(0, |r| r.items);
    let mut items = items.peekable();
    let mut skipped = 0;
    while skipped < skip && items.next_if(|item| !matches!(item, SourceItem::Failed(_))).is_some() {
        skipped += 1;
    }
    if skipped < skip && items.peek().is_none() {
        marks.lock().stale = true;
        let reason = format!(
            "has {skipped} items, fewer than the {skip} its checkpoint counts as done: it changed; retried from its start"
        );
        let failed = super::Unreadable { id: "(checkpoint)".into(), raw: String::new(), reason };
        return Box::new(std::iter::once(SourceItem::Failed(failed)));
    }
    marks.open(0, None, Tell::default());
    let (marks, mut count) = (marks.clone(), skipped);
    Box::new(items.inspect(move |_| {
        count += 1;
        marks.item(0, count);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_is_the_place_after_the_last_confirmed_item() {
        let marks = Marks::default();
        assert_eq!(marks.resume(), None, "nothing done yet");
        let tell = Tell::default();
        tell.set_header(&["a".into(), "b".into()]);
        marks.open(0, Some("\"e1\"".into()), tell.clone());
        for (i, offset) in [(1, 10), (2, 20), (3, 30)] {
            tell.set(offset, i + 1);
            marks.item(0, i);
        }
        marks.confirm(2);
        let at = At { offset: 20, lines: 3, header: vec!["a".into(), "b".into()], after_cr: false };
        assert_eq!(marks.resume(), Some(Resume { object: 0, items: 2, at: Some(at), etag: Some("\"e1\"".into()) }));
        // A reader that lost its place (a format that cannot start mid-object): items only.
        let other = Tell::default();
        marks.open(1, None, other.clone());
        other.lose();
        marks.item(1, 1);
        marks.confirm(5);
        assert_eq!(marks.resume(), Some(Resume { object: 1, items: 1, at: None, etag: None }));
    }
}
