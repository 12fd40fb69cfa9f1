//! The frames of the last sample, handed back by the run loop once sent
//! ([`StatSource::recycle`](crate::source::StatSource::recycle)), whose memory the next
//! sample's frames are written into: their lists and strings. A zone's frame is some 24
//! lists and strings (its process rows' names, its pressure rows' resources, its devices);
//! made anew each sample they were 2,400 allocations a sample with 100 zones, each a cache
//! miss in a sample that starts with cold caches after a second's sleep.
//!
//! Owns that memory and nothing else. It must not carry a figure from one sample to the
//! next: every row is made anew by its caller, who takes only the memory of the old row's
//! strings ([`text`]), and a list keeps no row past those written ([`Refill::done`]).

/// `text` in `old`'s memory (a new string where there is none).
pub fn text(old: Option<String>, text: &str) -> String {
    let mut s = old.unwrap_or_default();
    s.clear();
    s.push_str(text);
    s
}

/// A list written anew in the memory of an old one: each row made by the caller from the
/// old row at its place ([`Refill::old`], for its strings) and written there
/// ([`Refill::push`]).
#[derive(Debug)]
pub struct Refill<T> {
    rows: Vec<T>,
    len: usize,
}

impl<T: Default> Refill<T> {
    /// Rows to be written over `rows`.
    pub fn new(rows: Vec<T>) -> Self {
        Refill { rows, len: 0 }
    }

    /// The old row at the next place, taken out (a default one past the old list's end).
    pub fn old(&mut self) -> T {
        self.rows.get_mut(self.len).map(std::mem::take).unwrap_or_default()
    }

    /// Writes the next row.
    pub fn push(&mut self, row: T) {
        match self.rows.get_mut(self.len) {
            Some(place) => *place = row,
            None => self.rows.push(row),
        }
        self.len += 1;
    }

    /// The rows written, and no old one after them.
    pub fn done(mut self) -> Vec<T> {
        self.rows.truncate(self.len);
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refilled_list_holds_the_rows_written_and_none_of_the_old_ones() {
        let old = vec![Some("long old name".to_owned()), Some("b".to_owned()), None];
        let first = old[0].as_deref().map(str::as_ptr);
        let mut rows = Refill::new(old);
        let reused = text(rows.old(), "a");
        assert_eq!(Some(reused.as_ptr()), first, "the old string's memory");
        rows.push(Some(reused));
        // An old row taken and not written over: the next row takes its place.
        assert_eq!(rows.old().as_deref(), Some("b"));
        rows.push(Some(text(None, "c")));
        assert_eq!(rows.done(), [Some("a".to_owned()), Some("c".to_owned())]);

        let mut longer = Refill::new(vec![1, 2]);
        for n in [7, 8, 9] {
            assert_eq!(longer.old(), [1, 2, 0][n - 7], "old rows, then default ones");
            longer.push(n);
        }
        assert_eq!(longer.done(), [7, 8, 9]);
        assert!(Refill::<u8>::new(vec![1, 2, 3]).done().is_empty());
    }
}
