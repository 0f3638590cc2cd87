//! Segment files: each is exactly the accounts at or above its threshold.

use icp::domain::Segment;
use icp::stages::segments::segments;
use polars::prelude::*;
use proptest::prelude::*;

fn scores_frame(rows: &[(u32, Option<u8>)]) -> DataFrame {
    let ids: Vec<String> = rows.iter().map(|r| format!("A{:03}", r.0)).collect();
    let scores: Vec<Option<i64>> = rows.iter().map(|r| r.1.map(i64::from)).collect();
    let status: Vec<&str> = rows
        .iter()
        .map(|r| {
            if r.1.is_some() {
                "scored"
            } else {
                "insufficient_data: 0 of 5 model inputs known"
            }
        })
        .collect();
    let band: Vec<&str> = rows
        .iter()
        .map(|r| r.1.map(icp::stages::model::band).unwrap_or("unscored"))
        .collect();
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Column::new("account_id".into(), ids),
            Column::new("account_name".into(), vec!["x"; n]),
            Column::new("domain".into(), vec!["x.com"; n]),
            Column::new("score".into(), scores),
            Column::new("band".into(), band),
            Column::new("status".into(), status),
        ],
    )
    .expect("frame")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn segment_is_exactly_accounts_at_or_above(
        raw in proptest::collection::vec((0u32..500, proptest::option::weighted(0.9, 0u8..=100)), 0..200)
    ) {
        // unique ids
        let mut seen = std::collections::BTreeSet::new();
        let rows: Vec<(u32, Option<u8>)> = raw.into_iter().filter(|r| seen.insert(r.0)).collect();
        let df = scores_frame(&rows);
        let all = segments(&df).expect("segments");
        prop_assert_eq!(all.iter().map(|x| x.0).collect::<Vec<_>>(), Segment::THRESHOLDS.to_vec());
        for (t, seg) in all {
            let got: Vec<(String, u8)> = (0..seg.height())
                .map(|i| {
                    let id = seg.column("account_id").unwrap().str().unwrap().get(i).unwrap().to_string();
                    let s = seg.column("score").unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().get(i).unwrap() as u8;
                    (id, s)
                })
                .collect();
            let mut want: Vec<(String, u8)> = rows
                .iter()
                .filter_map(|r| r.1.filter(|s| *s >= t).map(|s| (format!("A{:03}", r.0), s)))
                .collect();
            want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            prop_assert_eq!(got, want);
        }
    }
}
