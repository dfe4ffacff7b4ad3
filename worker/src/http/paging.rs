//! listmonk's paging of lists (`page`, `per_page`), read the way listmonk reads them, so
//! that a script written against listmonk's `GET /api/bounces` gets the same page.
//!
//! listmonk (v6.2, `cmd/main.go`) builds its paginator with `github.com/knadh/paginator`
//! v1.0.1: `DefaultPerPage: 20`, `AllowAll: true`. That package's `NewFromURL` and `New`
//! decide everything here; they are small enough that following them by hand is clearer
//! than any general-purpose crate, none of which has their fallbacks.

use super::error::ApiError;

/// listmonk's `DefaultPerPage`.
pub const DEFAULT_PER_PAGE: i64 = 20;

/// One page of a list: what the query fetches and what the answer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// At least 1.
    pub page: i64,
    /// 0 means every row (`per_page=all`, or any negative number).
    pub per_page: i64,
    pub offset: i64,
}

impl Paging {
    /// The page asked for by the raw `page` and `per_page` values (the first of each, as
    /// Go's `url.Values.Get` takes): `per_page=all` or a negative number is every row, 0 or
    /// anything that is not a number is 20, and `page` below 1 or not a number is 1. The one
    /// refusal is an offset beyond 64 bits (listmonk's overflows and its query fails).
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Paging, ApiError> {
        let per_page = match per_page {
            Some("all") => 0,
            raw => match atoi(raw.unwrap_or("")) {
                n if n < 0 => 0,
                0 => DEFAULT_PER_PAGE,
                n => n,
            },
        };
        let page = atoi(page.unwrap_or("")).max(1);
        let offset = (page - 1).checked_mul(per_page).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "invalid page: page {page} of {per_page} rows is beyond the largest offset"
            ))
        })?;
        Ok(Paging {
            page,
            per_page,
            offset,
        })
    }

    /// The SQL `LIMIT`: none for every row.
    pub fn limit(&self) -> Option<i64> {
        (self.per_page > 0).then_some(self.per_page)
    }

    /// listmonk's answer around `results`: `models.PageResults`. An empty page is
    /// `PageResults{Results: []}`, so its total, page and per_page are all 0 (listmonk's
    /// `GetBounces` in `cmd/bounce.go`).
    pub fn answer<T: serde::Serialize>(&self, results: Vec<T>, total: i64) -> serde_json::Value {
        let (total, per_page, page) = if results.is_empty() {
            (0, 0, 0)
        } else {
            (total, self.per_page, self.page)
        };
        serde_json::json!({
            "data": {
                "results": results,
                "search": "",
                "query": "",
                "total": total,
                "per_page": per_page,
                "page": page,
            }
        })
    }
}

/// Go's `strconv.Atoi` as listmonk uses it (its error ignored): a decimal number with an
/// optional sign, 0 for anything else, and the nearest 64-bit bound when out of range.
pub fn atoi(s: &str) -> i64 {
    use std::num::IntErrorKind;
    match s.parse::<i64>() {
        Ok(n) => n,
        Err(e) => match e.kind() {
            IntErrorKind::PosOverflow => i64::MAX,
            IntErrorKind::NegOverflow => i64::MIN,
            _ => 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(page: &str, per_page: &str) -> Paging {
        Paging::parse(Some(page), Some(per_page)).unwrap()
    }

    /// knadh/paginator v1.0.1, `New`: `perPage < 0 && AllowAll` → 0 (all); `perPage < 1`
    /// → `DefaultPerPage`; `page < 1` → 1; `Offset = (page - 1) * perPage`.
    #[test]
    fn listmonks_paginator() {
        assert_eq!(
            Paging::parse(None, None).unwrap(),
            Paging {
                page: 1,
                per_page: 20,
                offset: 0
            }
        );
        assert_eq!(paging("", "").per_page, 20);
        assert_eq!(paging("1", "0").per_page, 20);
        assert_eq!(paging("1", "x").per_page, 20);
        assert_eq!(paging("1", "-1").per_page, 0);
        assert_eq!(paging("1", "all").per_page, 0);
        assert_eq!(paging("1", "ALL").per_page, 20, "only `all` is all");
        assert_eq!(paging("1", "100000").per_page, 100_000, "no maximum");
        assert_eq!(paging("0", "5").page, 1);
        assert_eq!(paging("-3", "5").page, 1);
        assert_eq!(paging("x", "5").page, 1);
        assert_eq!(paging("3", "5").offset, 10);
        assert_eq!(paging("3", "all").offset, 0);
        assert_eq!(paging("3", "all").page, 3);
        assert_eq!(paging("+2", "5").offset, 5, "Atoi takes a sign");
        assert_eq!(paging("3", "all").limit(), None);
        assert_eq!(paging("3", "5").limit(), Some(5));
    }

    #[test]
    fn an_offset_beyond_64_bits_is_refused() {
        let e = Paging::parse(Some("9223372036854775807"), None).unwrap_err();
        assert!(e.to_string().starts_with("invalid page"), "{e}");
        let e = Paging::parse(Some("99999999999999999999"), Some("2")).unwrap_err();
        assert!(e.to_string().starts_with("invalid page"), "{e}");
        assert_eq!(paging("9223372036854775807", "all").offset, 0);
    }

    #[test]
    fn atoi_as_go() {
        assert_eq!(atoi("42"), 42);
        assert_eq!(atoi("-7"), -7);
        assert_eq!(atoi("007"), 7);
        for zero in ["", "x", "1.5", " 1", "1 ", "0x10", "+", "1_000"] {
            assert_eq!(atoi(zero), 0, "{zero:?}");
        }
        assert_eq!(atoi("99999999999999999999"), i64::MAX);
        assert_eq!(atoi("-99999999999999999999"), i64::MIN);
    }

    #[test]
    fn an_empty_page_reports_zeros() {
        let p = paging("9", "5");
        let empty: Vec<u8> = Vec::new();
        assert_eq!(
            p.answer(empty, 7),
            serde_json::json!({"data": {"results": [], "search": "", "query": "",
                                        "total": 0, "per_page": 0, "page": 0}})
        );
        assert_eq!(p.answer(vec![1], 7)["data"]["page"], 9);
        assert_eq!(p.answer(vec![1], 7)["data"]["per_page"], 5);
        assert_eq!(p.answer(vec![1], 7)["data"]["total"], 7);
    }
}
