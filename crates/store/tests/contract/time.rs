use chrono::{DateTime, Duration, SubsecRound, Utc};
use clinicflow_domain::{AppointmentStatus, Interval, PageRequest};
use clinicflow_ports::{AppointmentFilter, AppointmentRepo};
use clinicflow_store::Backend;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::support::{Ctx, appointment, at};

/// Whether `s` is `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]+00:00`, the text sqlx writes for a microsecond instant.
fn is_stored_form(s: &str) -> bool {
    let Some(body) = s.strip_suffix("+00:00") else {
        return false;
    };
    let (seconds, fraction) = body.split_at(body.len().min(19));
    let shape_ok = seconds.len() == 19
        && seconds.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        });
    let fraction_ok = fraction.is_empty()
        || (fraction.starts_with('.')
            && matches!(fraction.len(), 4 | 7)
            && fraction[1..].chars().all(|c| c.is_ascii_digit()));
    shape_ok && fraction_ok
}

pub async fn stored_instants_compare_in_time_order(ctx: Ctx) {
    let clinic = ctx.clinic("A").await;
    let ada = ctx.patient(clinic, "Ada", "Lovelace").await;
    let house = ctx.practitioner(clinic, "Gregory", "House").await;
    // Fractions that sqlx prints with 0, 3, 6 and (before truncation) 9 digits.
    let base = at(9, 0);
    let offsets = [
        Duration::zero(),
        Duration::microseconds(1),
        Duration::milliseconds(120),
        Duration::microseconds(123_456),
        Duration::nanoseconds(123_456_789),
        Duration::milliseconds(500),
        Duration::seconds(1),
        Duration::nanoseconds(999_999_999),
    ];
    let mut stored: Vec<DateTime<Utc>> = Vec::new();
    for offset in offsets {
        let mut a = appointment(&ada, &house, base + offset, 30);
        // Inactive, so the PostgreSQL no-overlap rule leaves these stacked appointments alone.
        a.status = AppointmentStatus::Cancelled;
        let a = ctx.appointment(a).await;
        let mut tx = ctx.read().await;
        let back = AppointmentRepo::get(&ctx.store, &mut tx, clinic, a.id)
            .await
            .unwrap()
            .unwrap();
        let expected = (base + offset).trunc_subsecs(6);
        assert_eq!(
            back.interval,
            Interval::new(expected, expected + Duration::minutes(30)).unwrap()
        );
        stored.push(expected);
    }
    stored.sort();

    let starts = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            let filter = AppointmentFilter {
                from,
                to,
                ..Default::default()
            };
            AppointmentRepo::list(&ctx.store, &mut tx, clinic, &filter, PageRequest::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|a| a.interval.start())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(starts(None, None).await, stored, "listed in instant order");
    for bound in [
        base,
        base + Duration::nanoseconds(1),
        base + Duration::microseconds(1),
        base + Duration::milliseconds(120),
        base + Duration::nanoseconds(123_456_500),
        base + Duration::microseconds(123_456),
        base + Duration::milliseconds(500),
        base + Duration::seconds(1),
        base + Duration::seconds(2),
    ] {
        let at_or_after: Vec<_> = stored.iter().copied().filter(|s| *s >= bound).collect();
        let before: Vec<_> = stored.iter().copied().filter(|s| *s < bound).collect();
        assert_eq!(
            starts(Some(bound), None).await,
            at_or_after,
            "from {bound:?}"
        );
        assert_eq!(starts(None, Some(bound)).await, before, "to {bound:?}");
    }

    // Span bounds finer than a microsecond still compare exactly with stored instants.
    let grace = ctx.patient(clinic, "Grace", "Hopper").await;
    let wilson = ctx.practitioner(clinic, "James", "Wilson").await;
    let end = base + Duration::microseconds(123_456);
    let mut early = appointment(&grace, &wilson, base - Duration::minutes(30), 30);
    early.interval = Interval::new(base - Duration::minutes(30), end).unwrap();
    let early = ctx.appointment(early).await;
    let late_start = base + Duration::seconds(2) + Duration::microseconds(1);
    let late = ctx
        .appointment(appointment(&grace, &wilson, late_start, 30))
        .await;
    let active = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let ctx = &ctx;
        async move {
            let mut tx = ctx.read().await;
            ctx.store
                .active_for_practitioner(
                    &mut tx,
                    clinic,
                    wilson.id,
                    Interval::new(from, to).unwrap(),
                )
                .await
                .unwrap()
        }
    };
    let ns = Duration::nanoseconds;
    assert_eq!(
        active(end - ns(1), end + ns(1)).await,
        std::slice::from_ref(&early)
    );
    assert_eq!(active(end, end + ns(1)).await, []);
    assert_eq!(active(end + ns(1), late_start).await, []);
    assert_eq!(
        active(end + ns(1), late_start + ns(1)).await,
        std::slice::from_ref(&late)
    );
    assert_eq!(active(end - ns(1), late_start + ns(1)).await, [early, late]);

    if ctx.backend() == Backend::Sqlite {
        let raw = sea_orm::Database::connect(ctx.db.url.as_str())
            .await
            .unwrap();
        let rows = raw
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT CAST(starts_at AS TEXT) AS starts_at, typeof(starts_at) AS kind FROM appointments",
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), offsets.len() + 2);
        for row in rows {
            let text: String = row.try_get("", "starts_at").unwrap();
            let kind: String = row.try_get("", "kind").unwrap();
            assert_eq!(kind, "text");
            assert!(is_stored_form(&text), "unexpected stored instant {text}");
        }
    }
}
