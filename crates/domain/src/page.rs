//! Pagination shared by every list: page numbers, and keyset positions for the large lists
//! (patients, appointments) whose pages must stay stable while rows are inserted.

use chrono::{DateTime, Utc};

use crate::{Appointment, AppointmentId, InvalidValue, Patient, PatientId, PersonName};

/// Default number of items on a page.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Highest page number a client may ask for.
pub const MAX_PAGE: u64 = 1_000_000;

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
        if page == 0 || page > MAX_PAGE {
            return Err(InvalidValue::new(format!(
                "page must be between 1 and {MAX_PAGE}"
            )));
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

/// A validated keyset page size: 1 to [`MAX_PAGE_SIZE`] items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    /// Parses an optional page size, [`DEFAULT_PAGE_SIZE`] when absent.
    pub fn parse(raw: Option<u32>) -> Result<Self, InvalidValue> {
        match raw.unwrap_or(DEFAULT_PAGE_SIZE) {
            size @ 1..=MAX_PAGE_SIZE => Ok(Self(size)),
            _ => Err(InvalidValue::new(format!(
                "must be between 1 and {MAX_PAGE_SIZE}"
            ))),
        }
    }

    /// Items per page.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Rows to fetch for a page: one more than it holds tells whether another page follows
    /// without a count query.
    pub fn fetch(self) -> u32 {
        self.0 + 1
    }

    /// Cuts rows fetched with [`Limit::fetch`] to the page; `true` when another page follows.
    pub fn cut<T>(self, rows: &mut Vec<T>) -> bool {
        let more = rows.len() > self.0 as usize;
        rows.truncate(self.0 as usize);
        more
    }
}

/// A patient's position in the patient list's order (family name, given name, id, as
/// stored; for a name search, the name as the search matched it, then id): a keyset page
/// continues strictly after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientKey {
    /// The name, compared family name first.
    pub name: PersonName,
    /// The id, which makes the order total.
    pub id: PatientId,
}

impl PatientKey {
    /// The position of `patient`.
    pub fn of(patient: &Patient) -> Self {
        Self {
            name: patient.name.clone(),
            id: patient.id,
        }
    }
}

/// An appointment's position in the appointment list's order (start, id): a keyset page
/// continues strictly after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppointmentKey {
    /// The start.
    pub starts_at: DateTime<Utc>,
    /// The id, which makes the order total.
    pub id: AppointmentId,
}

impl AppointmentKey {
    /// The position of `appointment`.
    pub fn of(appointment: &Appointment) -> Self {
        Self {
            starts_at: appointment.interval.start(),
            id: appointment.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_limits_default_and_are_bounded() {
        assert_eq!(Limit::parse(None).map(Limit::get), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(Limit::parse(Some(200)).map(Limit::get), Ok(200));
        assert!(Limit::parse(Some(0)).is_err());
        assert!(Limit::parse(Some(201)).is_err());
    }

    #[test]
    fn a_fetch_of_one_extra_row_is_cut_to_the_page_and_tells_more_follow() {
        let limit = Limit::parse(Some(2)).expect("valid");
        assert_eq!(limit.fetch(), 3);
        let mut full = vec![1, 2, 3];
        assert!(limit.cut(&mut full));
        assert_eq!(full, [1, 2]);
        let mut last = vec![1, 2];
        assert!(!limit.cut(&mut last));
        assert_eq!(last, [1, 2]);
    }

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
