//! Page-number pagination shared by every list.

use crate::InvalidValue;

/// Default number of items on a page.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 200;

/// A validated request for one page of a list (1-based page number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    page: u32,
    size: u32,
}

impl PageRequest {
    /// Parses optional page and page size, applying the defaults.
    pub fn parse(page: Option<u64>, size: Option<u64>) -> Result<Self, InvalidValue> {
        let page = page.unwrap_or(1);
        let size = size.unwrap_or(u64::from(DEFAULT_PAGE_SIZE));
        if page == 0 || page > 1_000_000 {
            return Err(InvalidValue::new("page must be between 1 and 1000000"));
        }
        if size == 0 || size > u64::from(MAX_PAGE_SIZE) {
            return Err(InvalidValue::new(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        Ok(Self {
            page: page as u32,
            size: size as u32,
        })
    }

    /// The first page of `size` items (clamped to 1..=MAX_PAGE_SIZE), for internal reads.
    pub fn first(size: u32) -> Self {
        Self {
            page: 1,
            size: size.clamp(1, MAX_PAGE_SIZE),
        }
    }

    /// The page after this one.
    pub fn next(&self) -> Self {
        Self {
            page: self.page.saturating_add(1),
            size: self.size,
        }
    }

    /// The 1-based page number.
    pub fn page(&self) -> u32 {
        self.page
    }

    /// Items per page.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Number of items before this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.size)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// One page of results with the total count of the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Total number of items in the list.
    pub total: u64,
    /// The request that produced this page.
    pub request: PageRequest,
}

impl<T> Page<T> {
    /// Whether a page follows this one.
    pub fn has_next(&self) -> bool {
        self.request.offset() + (self.items.len() as u64) < self.total
    }

    /// Whether a page precedes this one.
    pub fn has_previous(&self) -> bool {
        self.request.page > 1
    }

    /// Converts the items, keeping the paging data.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            request: self.request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_absent() {
        let p = PageRequest::parse(None, None).expect("defaults are valid");
        assert_eq!((p.page(), p.size(), p.offset()), (1, 50, 0));
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(None, Some(201)).is_err());
        assert!(PageRequest::parse(None, Some(0)).is_err());
        assert_eq!(
            PageRequest::parse(Some(3), Some(20)).map(|p| p.offset()),
            Ok(40)
        );
    }

    #[test]
    fn first_pages_are_clamped_and_next_keeps_the_size() {
        assert_eq!(PageRequest::first(500).size(), MAX_PAGE_SIZE);
        assert_eq!(PageRequest::first(0).size(), 1);
        let next = PageRequest::first(20).next();
        assert_eq!((next.page(), next.size(), next.offset()), (2, 20, 20));
    }

    #[test]
    fn next_and_previous_follow_the_total() {
        let request = PageRequest::parse(Some(2), Some(10)).expect("valid");
        let page = Page {
            items: vec![0; 10],
            total: 25,
            request,
        };
        assert!(page.has_next() && page.has_previous());
        let last = Page {
            items: vec![0; 5],
            total: 25,
            request: PageRequest::parse(Some(3), Some(10)).expect("valid"),
        };
        assert!(!last.has_next());
    }
}
