//! Scoring with an approved model: the daily publication (`icp score
//! --data`) and a scoring directory for one accounts file, written in
//! pieces when it is larger than memory should hold.

use std::path::Path;

use anyhow::Context;
use polars::prelude::*;

use crate::config::ValidConfig;
use crate::domain::Segment;
use crate::io::load::{self, InputFile};
use crate::io::publish::RunWriter;
use crate::stages::model::ModelArtifact;
use crate::stages::ranked::Buckets;
use crate::stages::score;
use crate::stages::segments;

/// The manifest's counts of `rejects.csv`: rows rejected, and cells read
/// as missing (lines of rejects.csv too, counted apart) when there are any.
fn reject_counts(rejects: &DataFrame) -> Vec<(String, usize)> {
    let mut out = vec![(
        "rejects".to_string(),
        crate::io::load::rejected_rows(rejects),
    )];
    let noted = crate::io::load::noted_cells(rejects);
    if noted > 0 {
        out.push(("cells_read_as_missing".into(), noted));
    }
    out
}

/// Write scores, segment files and rejects; returns the counts for the manifest.
/// With `crm`, also the CRM's import file (`icp score`; a run's scores are a
/// proposal until approved, so `icp run` passes None).
pub fn write_scoring(
    w: &mut RunWriter,
    scores: &DataFrame,
    rejects: &DataFrame,
    parquet: bool,
    crm: Option<&crate::config::CrmImport>,
) -> anyhow::Result<Vec<(String, usize)>> {
    w.csv("scores.csv", scores)?;
    if let Some(names) = crm {
        w.csv(
            crate::feed::CRM_IMPORT,
            &crate::feed::crm_import(scores, names)?,
        )?;
    }
    if parquet {
        w.parquet("scores.parquet", scores)?;
    }
    let mut counts = vec![("accounts_scored".to_string(), scores.height())];
    // rendered once; each file a prefix of the same rows
    let r = segments::render(scores)?;
    for &(t, rows, bytes) in &r.cuts {
        counts.push((Segment::ScoreAtLeast(t).name(), rows));
        w.bytes(
            &crate::domain::Segment::ScoreAtLeast(t).file_name(),
            &[&r.header, &r.body[..bytes]],
            rows,
        )?;
    }
    for (b, n) in segments::band_counts(scores)? {
        counts.push((segments::band_count_key(&b), n));
    }
    w.csv_for_people("rejects.csv", rejects)?;
    counts.extend(reject_counts(rejects));
    Ok(counts)
}

/// The daily job's inputs (`icp score --data DIR`).
pub struct Daily<'a> {
    /// the data directory
    pub data: &'a Path,
    /// a config for the files' column names; by default the model's
    pub config: Option<&'a Path>,
    pub reports: &'a Path,
    pub quiet: bool,
}

/// What the daily job published.
pub struct DailyOutcome {
    pub artifact: ModelArtifact,
    pub inputs: Vec<InputFile>,
    /// ("band_high", accounts), ...
    pub bands: Vec<(String, usize)>,
    pub published: crate::feed::Published,
}

/// `icp score --data DIR`: score with the active model and publish.
pub fn publish_daily(args: &Daily) -> anyhow::Result<DailyOutcome> {
    let dir = args.data;
    let Some(model_path) = crate::review::active_model(args.reports)? else {
        anyhow::bail!(
            "no active model in {}: the daily job publishes only an approved model; review a run and approve it first (icp approve RUN --by NAME --accept-all-exclusions)",
            args.reports.display()
        );
    };
    let artifact = ModelArtifact::read(&model_path)?;
    let cfg = match args.config {
        Some(p) => ValidConfig::load(Some(p))?,
        None => artifact.config.clone(),
    };
    let stages = crate::util::progress::Stages::new("icp score", args.quiet);
    stages.start("load");
    let data = load::load_dir_with(
        dir,
        &cfg,
        load::Need::ScoringOnly,
        Some(&artifact.extra_column_kinds),
    )?;
    super::require_accounts(&data, None)?;
    if cfg.publish.audience == crate::domain::Audience::Prospects
        && data.opportunities.is_none()
        && data.customers.is_none()
    {
        anyhow::bail!(
            "{}: no opportunities or customers file, so customers cannot be told from prospects and would be targeted; add them to the data directory, or set [publish] audience = \"all\" to target every account",
            dir.display()
        );
    }
    stages.start("score");
    stages.rows(data.accounts.df.height());
    let scores = score::score(&artifact, &data.accounts.df)
        .with_context(|| format!("scoring {}", dir.display()))?;
    stages.start("publish");
    let crm = crate::feed::crm_status(
        &scores,
        data.opportunities.as_ref().map(|t| &t.df),
        data.customers.as_ref().map(|t| &t.df),
    )?;
    let criteria = crate::review::active_exclusions(args.reports)?;
    let excluded =
        crate::feed::criteria_matches(&artifact.model.spec, &data.accounts.df, &criteria)?;
    let p = crate::feed::publish(&crate::feed::Publish {
        reports: args.reports,
        by: "score",
        model_id: &artifact.model_id,
        as_of: crate::evidence::measure::newest_date(&data).map(|d| d.to_string()),
        audience: cfg.publish.audience,
        control_share: cfg.publish.control_share,
        inputs: data.inputs(),
        scores: &scores,
        crm: &crm,
        excluded: &excluded,
        rejects: &data.rejects,
        crm_import: &cfg.crm_import(),
    })?;
    crate::review::log_event(
        args.reports,
        &serde_json::json!({
            "event": "publication",
            "at": chrono::Utc::now().to_rfc3339(),
            "publication_id": p.id,
            "previous_id": p.previous,
            "by": "score",
            "model_id": artifact.model_id,
            "changes": p.actions,
        }),
    )?;
    stages.finish();
    let bands = crate::stages::segments::band_counts(&scores)?
        .into_iter()
        .map(|(b, n)| (segments::band_count_key(&b), n))
        .collect();
    Ok(DailyOutcome {
        artifact,
        inputs: data.inputs(),
        bands,
        published: p,
    })
}

/// `icp score --accounts FILE`: the file and how it is read and written.
pub struct Pieces<'a> {
    pub accounts: &'a Path,
    /// accounts checked and scored at a time
    pub chunk_rows: usize,
    /// also write scores.parquet
    pub parquet: bool,
}

/// Check and score the accounts `--chunk-rows` at a time. A file of one
/// piece is written straight from memory; a larger one is spilled by score
/// and written back in rank order, so memory stays bounded by the piece
/// size. Both give the same bytes.
pub fn score_in_pieces(
    w: &mut RunWriter,
    args: &Pieces,
    artifact: &ModelArtifact,
    cfg: &ValidConfig,
    stages: &crate::util::progress::Stages,
    inputs: &mut Vec<InputFile>,
) -> anyhow::Result<Vec<(String, usize)>> {
    let path = args.accounts;
    let context = || format!("loading {}", path.display());
    let hints = Some(&artifact.extra_column_kinds);
    stages.start("load");
    let mut pieces = load::Pieces::open(path, args.chunk_rows, cfg).with_context(context)?;
    let mut seen = load::SeenIds::default();
    let mut rejects = Vec::new();
    let (mut rows, mut used) = (0usize, 0usize);
    let mut whole: Option<DataFrame> = None;
    let mut buckets: Option<Buckets> = None;
    while let Some(raw) = {
        stages.start("load");
        pieces.next_piece().with_context(context)?
    } {
        let table = load::accounts_piece(raw, path, cfg, hints, &mut seen, &mut rejects)
            .with_context(context)?;
        rows += table.input.rows;
        used += table.df.height();
        stages.start("score");
        stages.rows(table.df.height());
        let scores = score::score(artifact, &table.df)
            .with_context(|| format!("scoring {}", path.display()))?;
        drop(table);
        if pieces.is_done() && buckets.is_none() {
            whole = Some(scores);
        } else {
            stages.start("segments");
            if buckets.is_none() {
                buckets = Some(Buckets::new(&w.scratch("pieces")?));
            }
            if let Some(b) = &mut buckets {
                b.add(&scores)?;
            }
        }
    }
    let mut trace = crate::util::progress::Trace::start();
    let rejects = load::concat_rejects(rejects)?;
    let input = InputFile {
        table: "accounts".into(),
        file: load::file_name(path),
        sha256: load::sha256_file(path)?,
        rows,
        used,
        rejected: load::rejected_rows(&rejects),
        footer_lines: pieces.footer_lines(),
    };
    trace.lap("accounts: fingerprint");
    inputs.push(input.clone());
    super::require_rows(&input, None)?;
    stages.start("publish");
    stages.rows(used);
    match (whole, buckets) {
        (Some(scores), _) => {
            write_scoring(w, &scores, &rejects, args.parquet, Some(&cfg.crm_import()))
        }
        (None, Some(b)) => write_ranked(w, b, &rejects, args.parquet, &cfg.crm_import()),
        (None, None) => anyhow::bail!("{}: no piece of accounts was read", path.display()),
    }
}

/// [`write_scoring`] for scores spilled in buckets: the same files, counts
/// and bytes, written one bucket at a time.
fn write_ranked(
    w: &mut RunWriter,
    buckets: Buckets,
    rejects: &DataFrame,
    parquet: bool,
    crm: &crate::config::CrmImport,
) -> anyhow::Result<Vec<(String, usize)>> {
    let like = buckets
        .like()
        .cloned()
        .context("no scored piece to write")?;
    let mut scores = w.csv_stream("scores.csv", &like)?;
    let mut crm_out = w.csv_stream(
        crate::feed::CRM_IMPORT,
        &crate::feed::crm_import(&like, crm)?,
    )?;
    let seg_like = segments::columns(&like)?;
    let mut segs = Segment::THRESHOLDS
        .iter()
        .map(|&t| {
            Ok((
                t,
                w.csv_stream(
                    &crate::domain::Segment::ScoreAtLeast(t).file_name(),
                    &seg_like,
                )?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut pq = match parquet {
        true => {
            let (_, f) = w.open("scores.parquet")?;
            Some(ParquetWriter::new(f).batched(like.schema())?)
        }
        false => None,
    };
    let mut seg_rows = vec![0usize; segs.len()];
    let mut bands = segments::band_counts(&like)?; // every band, at zero
    let mut total = 0;
    buckets.drain(|score, bucket| {
        scores.write(&bucket)?;
        crm_out.write(&crate::feed::crm_import(&bucket, crm)?)?;
        if let Some(pw) = &mut pq {
            pw.write_batch(&bucket)?;
        }
        if let Some(s) = score {
            // rendered once, written to every segment the score reaches
            let seg = segments::columns(&bucket)?;
            let bytes = crate::io::csv_out::rows(&seg)?;
            for (i, (t, out)) in segs.iter_mut().enumerate() {
                if s >= *t as i64 {
                    out.write_rendered(&bytes, seg.height())?;
                    seg_rows[i] += seg.height();
                }
            }
        }
        for (b, n) in segments::band_counts(&bucket)? {
            if let Some(x) = bands.iter_mut().find(|x| x.0 == b) {
                x.1 += n;
            }
        }
        total += bucket.height();
        Ok(())
    })?;
    w.close(scores)?;
    w.close(crm_out)?;
    if let Some(pw) = pq {
        pw.finish()?;
        w.record("scores.parquet", total)?;
    }
    let mut counts = vec![("accounts_scored".to_string(), total)];
    for ((t, out), n) in segs.into_iter().zip(seg_rows) {
        counts.push((Segment::ScoreAtLeast(t).name(), n));
        w.close(out)?;
    }
    for (b, n) in bands {
        counts.push((segments::band_count_key(&b), n));
    }
    w.csv_for_people("rejects.csv", rejects)?;
    counts.extend(reject_counts(rejects));
    Ok(counts)
}
