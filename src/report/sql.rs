//! The frozen score as one SQL `SELECT`, for account universes that outgrow
//! one machine: a warehouse, DuckDB or Spark SQL computes `score`,
//! `p_velocity_win` and `band` without this program.
//!
//! The SQL mirrors the polars expressions of [`crate::stages::features`] and
//! [`crate::stages::score`] operation by operation, in the same order and with every
//! constant written as a round-trip float, so IEEE arithmetic gives the same
//! bits. Two things keep it exact where engines differ:
//! - bin edges of log-scaled columns are compared on the raw scale, against
//!   the smallest raw value whose log reaches the edge (found here with the
//!   very function the model uses), so no engine's `LN` decides a bin;
//! - constants are typed as doubles in dialects whose plain literals are
//!   decimals (PostgreSQL, Snowflake), so no arithmetic happens in decimal.
//!
//! What remains engine-dependent is `LN` and `EXP` themselves, in the last bit.
//! Scores absorb that: a logit reaches a cut point within
//! [`crate::stages::model::CUT_TOLERANCE`] (accounts sit exactly on cut points, which
//! are quantiles of their own logits). `p_velocity_win` may differ in its
//! last digit where an engine's `EXP` rounds differently.

use std::fmt::Write;

use crate::config::ValidConfig;
use crate::domain::Band;
use crate::error::{IcpError, Result};
use crate::stages::features::{Feature, FeatureSpec, Variable, log_scale};
use crate::stages::model::ModelArtifact;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// DuckDB (also fine for most engines with ANSI SQL and DOUBLE).
    Duckdb,
    /// PostgreSQL 12+: constants cast to DOUBLE PRECISION, the CTEs
    /// MATERIALIZED (Postgres would otherwise inline the logit into each of
    /// the score's hundred branches).
    Postgres,
    /// Amazon Redshift: PostgreSQL's SQL without MATERIALIZED, which
    /// Redshift rejects (not run on a real Redshift).
    Redshift,
    /// Snowflake: constants cast to DOUBLE.
    Snowflake,
    /// SQLite 3.35+ built with its math functions (LN, EXP).
    Sqlite,
    /// Google BigQuery Standard SQL.
    Bigquery,
    /// Apache Spark SQL / Databricks.
    Spark,
}

impl Dialect {
    fn double(self) -> &'static str {
        match self {
            Dialect::Postgres | Dialect::Redshift => "DOUBLE PRECISION",
            Dialect::Bigquery => "FLOAT64",
            Dialect::Sqlite => "REAL",
            Dialect::Duckdb | Dialect::Snowflake | Dialect::Spark => "DOUBLE",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Dialect::Bigquery | Dialect::Spark => "STRING",
            Dialect::Sqlite => "TEXT",
            Dialect::Duckdb | Dialect::Postgres | Dialect::Redshift | Dialect::Snowflake => {
                "VARCHAR"
            }
        }
    }

    /// How a CTE that later steps read many times is introduced: computed
    /// once where the engine lets the query say so (PostgreSQL 12+, SQLite
    /// 3.35+, DuckDB), so no engine re-evaluates the model per branch.
    fn cte(self) -> &'static str {
        match self {
            Dialect::Postgres | Dialect::Sqlite | Dialect::Duckdb => "AS MATERIALIZED",
            Dialect::Redshift | Dialect::Snowflake | Dialect::Bigquery | Dialect::Spark => "AS",
        }
    }

    fn backslash_escapes(self) -> bool {
        matches!(self, Dialect::Bigquery | Dialect::Spark)
    }

    fn ident(self, name: &str) -> String {
        if self.backslash_escapes() {
            format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
        } else {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }

    fn string(self, s: &str) -> String {
        if self.backslash_escapes() {
            format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
        } else {
            format!("'{}'", s.replace('\'', "''"))
        }
    }

    /// A double constant, written so that it parses back to the same bits.
    fn num(self, x: f64) -> Result<String> {
        if !x.is_finite() {
            return Err(IcpError::Internal(format!(
                "the model holds a non-finite constant ({x}); it cannot be written as SQL"
            )));
        }
        let t = format!("{x:e}");
        Ok(match self {
            Dialect::Postgres | Dialect::Redshift | Dialect::Snowflake => {
                format!("CAST({t} AS {})", self.double())
            }
            _ => t,
        })
    }
}

/// What the generated query reads and how it is introduced.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    pub dialect: Dialect,
    /// the accounts table, inserted as written (it may be schema-qualified)
    pub table: String,
}

struct Gen<'a> {
    d: Dialect,
    spec: &'a FeatureSpec,
    cfg: &'a ValidConfig,
    /// read each variable's cleaned value, pre-log value and transform from
    /// the `icp_values` step (`icp_v0`, `icp_u0`, `icp_t0`, ...) instead of
    /// computing them from the raw column at every use
    staged: bool,
}

impl Gen<'_> {
    /// A variable's position in the spec: its staged columns' number.
    fn index(&self, var: &Variable) -> usize {
        self.spec
            .variables
            .iter()
            .position(|x| std::ptr::eq(x, var))
            .expect("a variable of the model's spec")
    }

    fn column(&self, var: &Variable) -> String {
        self.d.ident(self.cfg.source("accounts", var.column()))
    }

    /// Text as the loader sees it: trimmed, empty = missing.
    fn text(&self, var: &Variable) -> String {
        if self.staged {
            return format!("icp_v{}", self.index(var));
        }
        format!(
            "NULLIF(TRIM(CAST({} AS {})), '')",
            self.column(var),
            self.d.text()
        )
    }

    /// A numeric input before the log: scaled, turned into an age, clipped at 0.
    fn pre_log(&self, var: &Variable) -> Result<String> {
        let Variable::Numeric {
            column,
            derived_age,
            log,
            ..
        } = var
        else {
            unreachable!("pre_log of a categorical variable")
        };
        if self.staged {
            return Ok(format!("icp_u{}", self.index(var)));
        }
        let mut x = format!("CAST({} AS {})", self.column(var), self.d.double());
        if let Some(s) = self.cfg.scale.get(column.as_str())
            && *s != 1.0
        {
            x = format!("({x} * {})", self.d.num(*s)?);
        }
        let zero = self.d.num(0.0)?;
        if *derived_age {
            let age = format!("({} - {x})", self.d.num(self.spec.reference_year as f64)?);
            x = format!("(CASE WHEN {age} < {zero} THEN {zero} ELSE {age} END)");
        } else if *log {
            x = format!("(CASE WHEN {x} < {zero} THEN {zero} ELSE {x} END)");
        }
        Ok(x)
    }

    /// The transformed value (null where missing).
    fn transformed(&self, var: &Variable) -> Result<String> {
        if self.staged {
            return Ok(format!("icp_t{}", self.index(var)));
        }
        let u = self.pre_log(var)?;
        let Variable::Numeric { log, .. } = var else {
            unreachable!()
        };
        Ok(if *log {
            format!("LN({u} + {})", self.d.num(1.0)?)
        } else {
            u
        })
    }

    /// `transformed >= edge` (or `<`), said on the pre-log scale where there
    /// is a log.
    fn compare(&self, var: &Variable, op: &str, edge: f64) -> Result<String> {
        let Variable::Numeric { log, .. } = var else {
            unreachable!()
        };
        let t = if *log { raw_threshold(edge) } else { edge };
        Ok(format!("{} {op} {}", self.pre_log(var)?, self.d.num(t)?))
    }

    fn at_least(&self, var: &Variable, edge: f64) -> Result<String> {
        self.compare(var, ">=", edge)
    }

    fn below(&self, var: &Variable, edge: f64) -> Result<String> {
        self.compare(var, "<", edge)
    }

    /// The raw input of a variable, null where missing: trimmed text of a
    /// category, the number of a numeric column.
    fn value(&self, var: &Variable) -> String {
        if self.staged {
            return format!("icp_v{}", self.index(var));
        }
        match var {
            Variable::Categorical { .. } => self.text(var),
            Variable::Numeric { .. } => {
                format!("CAST({} AS {})", self.column(var), self.d.double())
            }
        }
    }

    /// Condition of a category level or a numeric band (missing values take
    /// the band of the training median, as in the model).
    fn cell(&self, cell: &crate::stages::features::Cell) -> Result<String> {
        use crate::stages::features::Cell;
        match cell {
            Cell::Level { var, level } => {
                let v = &self.spec.variables[*var];
                Ok(format!("{} = {}", self.text(v), self.d.string(level)))
            }
            Cell::Bin { var, bin } => {
                let v = &self.spec.variables[*var];
                let Variable::Numeric { edges, median, .. } = v else {
                    unreachable!("bin of a categorical variable")
                };
                let lower = (*bin > 0).then(|| edges[bin - 1]);
                let upper = edges.get(*bin).copied();
                let mut parts = Vec::new();
                if let Some(l) = lower {
                    parts.push(self.at_least(v, l)?);
                }
                if let Some(u) = upper {
                    parts.push(self.below(v, u)?);
                }
                let cond = if parts.is_empty() {
                    format!("{} IS NOT NULL", self.pre_log(v)?)
                } else {
                    parts.join(" AND ")
                };
                let median_in =
                    lower.is_none_or(|l| *median >= l) && upper.is_none_or(|u| *median < u);
                Ok(if median_in {
                    format!("({} IS NULL OR ({cond}))", self.pre_log(v)?)
                } else {
                    format!("({cond})")
                })
            }
        }
    }

    fn indicator(&self, cond: &str) -> Result<String> {
        Ok(format!(
            "CASE WHEN {cond} THEN {} ELSE {} END",
            self.d.num(1.0)?,
            self.d.num(0.0)?
        ))
    }

    fn feature(&self, f: &Feature) -> Result<String> {
        use crate::stages::features::Cell;
        match f {
            Feature::Level { var, level } => self.indicator(&self.cell(&Cell::Level {
                var: *var,
                level: level.clone(),
            })?),
            Feature::Other { var } => {
                let v = &self.spec.variables[*var];
                let Variable::Categorical { levels, .. } = v else {
                    unreachable!()
                };
                let t = self.text(v);
                let mut cond = format!("{t} IS NOT NULL");
                for l in levels {
                    write!(cond, " AND {t} <> {}", self.d.string(l)).expect("string");
                }
                self.indicator(&cond)
            }
            Feature::Missing { var } => {
                let value = self.value(&self.spec.variables[*var]);
                self.indicator(&format!("{value} IS NULL"))
            }
            Feature::Linear { var } => {
                let v = &self.spec.variables[*var];
                let Variable::Numeric {
                    median, mean, sd, ..
                } = v
                else {
                    unreachable!()
                };
                // polars divides by a scalar as a product with its
                // reciprocal: so does the SQL, for the same bits
                Ok(format!(
                    "(COALESCE({}, {}) - {}) * {}",
                    self.transformed(v)?,
                    self.d.num(*median)?,
                    self.d.num(*mean)?,
                    self.d.num(1.0 / *sd)?
                ))
            }
            Feature::Bin { var, bin } => self.indicator(&self.cell(&Cell::Bin {
                var: *var,
                bin: *bin,
            })?),
            Feature::Spline { var, term } => {
                let v = &self.spec.variables[*var];
                let Variable::Numeric { median, knots, .. } = v else {
                    unreachable!()
                };
                // max(x - t, 0) cubed by two products, weighted and summed
                // left to right, as the model does it
                let x = format!(
                    "COALESCE({}, {})",
                    self.transformed(v)?,
                    self.d.num(*median)?
                );
                let mut parts = Vec::new();
                for (t, w) in crate::stages::features::spline_term(knots, *term) {
                    let t = self.d.num(t)?;
                    let d = format!(
                        "(CASE WHEN {x} > {t} THEN {x} - {t} ELSE {} END)",
                        self.d.num(0.0)?
                    );
                    parts.push(format!("{} * ({d} * {d} * {d})", self.d.num(w)?));
                }
                Ok(format!("({})", parts.join(" + ")))
            }
            Feature::Interaction { index } => {
                let it = &self.spec.interactions[*index];
                self.indicator(&format!(
                    "({}) AND ({})",
                    self.cell(&it.a)?,
                    self.cell(&it.b)?
                ))
            }
        }
    }
}

/// The smallest pre-log value `u` with `log_scale(u) >= edge`: comparing
/// `u >= that` is then exactly the model's `log_scale(u) >= edge`.
fn raw_threshold(edge: f64) -> f64 {
    let reaches = |u: f64| log_scale(u) >= edge;
    let mut u = edge.exp_m1().max(0.0);
    if u == 0.0 && reaches(0.0) {
        return 0.0;
    }
    while !reaches(u) {
        u = u.next_up();
    }
    while u > 0.0 && reaches(u.next_down()) {
        u = u.next_down();
    }
    u
}

/// The model as one `SELECT` over `opts.table` returning account_id, score,
/// p_velocity_win and band.
pub fn export(a: &ModelArtifact, opts: &SqlOptions) -> Result<String> {
    let d = opts.dialect;
    let spec = &a.model.spec;
    // the raw columns are read once, in `icp_values`; every later step
    // reads the staged values
    let raw = Gen {
        d,
        spec,
        cfg: &a.config,
        staged: false,
    };
    let g = Gen {
        staged: true,
        ..raw
    };
    let groups = group_sums(&g, a)?;
    let coverage = coverage_sql(&g)?;

    let mut q = String::new();
    let w_ = &mut q;
    write_header(w_, a, d);
    write_values(w_, &raw, a, opts)?;
    write_inputs(w_, a, opts, &groups, &coverage)?;
    write_scores(w_, a, d)?;
    Ok(q)
}

/// Each group's weighted, centred features as one SQL sum (None for a
/// group without features).
/// Sums are written flat (`a + b + c`, which SQL adds left to right as the
/// binary does): nested parentheses over a wide model's terms overflow
/// SQLite's parser stack.
fn group_sums(g: &Gen<'_>, a: &ModelArtifact) -> Result<Vec<Option<String>>> {
    let d = g.d;
    let spec = g.spec;
    let w = &a.model.coefficients;
    let n_vars = spec.variables.len();
    let mut groups: Vec<Option<String>> = vec![None; spec.n_groups()];
    for (j, f) in spec.features.iter().enumerate() {
        let term = format!(
            "(({}) - {}) * {}",
            g.feature(f)?,
            d.num(spec.means[j])?,
            d.num(w[j])?
        );
        let k = f.group(n_vars);
        groups[k] = Some(match groups[k].take() {
            Some(acc) => format!("{acc}\n      + {term}"),
            None => term,
        });
    }
    Ok(groups)
}

/// The share of the model's inputs a row has known, as SQL.
fn coverage_sql(g: &Gen<'_>) -> Result<String> {
    let d = g.d;
    let spec = g.spec;
    let coverage = if spec.variables.is_empty() {
        d.num(1.0)?
    } else {
        let known: Vec<String> = spec
            .variables
            .iter()
            .map(|v| g.indicator(&format!("{} IS NOT NULL", g.value(v))))
            .collect::<Result<_>>()?;
        let sum = known
            .into_iter()
            .reduce(|acc, t| format!("{acc}\n      + {t}"))
            .expect("non-empty");
        format!("({sum}) / {}", d.num(spec.variables.len() as f64)?)
    };
    Ok(coverage)
}

/// The comment block: what the query computes, from which columns, and on
/// which assumptions.
fn write_header(w_: &mut String, a: &ModelArtifact, d: Dialect) {
    let spec = &a.model.spec;
    writeln!(
        w_,
        "-- icp model {}: score, p_velocity_win and band for every row of an accounts table.",
        a.model_id
    )
    .expect("string");
    writeln!(
        w_,
        "-- Written by `icp export-sql` (icp {}, dialect {:?}). Same model, same",
        env!("CARGO_PKG_VERSION"),
        d
    )
    .expect("string");
    writeln!(
        w_,
        "-- accounts: same scores as `icp score --model` (see README, \"Scoring in SQL\")."
    )
    .expect("string");
    writeln!(w_, "-- Reads the columns: {}.", {
        let mut cols: Vec<String> =
            std::iter::once(a.config.source("accounts", "account_id").to_string())
                .chain(
                    spec.variables
                        .iter()
                        .map(|v| a.config.source("accounts", v.column()).to_string()),
                )
                .collect();
        cols.dedup();
        cols.join(", ")
    })
    .expect("string");
    writeln!(
        w_,
        "-- Numeric columns must be numbers (or NULL); rows are assumed to pass `icp validate`."
    )
    .expect("string");
    writeln!(
        w_,
        "-- Accounts with fewer than {:.0}% of the model's inputs known get band 'unscored'.",
        a.min_feature_coverage * 100.0
    )
    .expect("string");
}

/// `icp_inputs`: the account id, the coverage and one column per group.
fn write_inputs(
    w_: &mut String,
    a: &ModelArtifact,
    opts: &SqlOptions,
    groups: &[Option<String>],
    coverage: &str,
) -> Result<()> {
    let d = opts.dialect;
    let spec = &a.model.spec;
    let n_vars = spec.variables.len();
    writeln!(w_, "icp_inputs {} (\n  SELECT\n    account_id,", d.cte()).expect("string");
    writeln!(w_, "    {coverage} AS coverage,").expect("string");
    for (k, grp) in groups.iter().enumerate() {
        let sep = if k + 1 == groups.len() { "" } else { "," };
        let name = if k < n_vars {
            spec.variables[k].display_name()
        } else {
            spec.describe_feature(
                spec.features
                    .iter()
                    .position(|f| *f == Feature::Interaction { index: k - n_vars })
                    .expect("every interaction has a feature"),
            )
        };
        writeln!(w_, "    -- {}", name.replace('\n', " ")).expect("string");
        writeln!(
            w_,
            "    {} AS g{k}{sep}",
            grp.clone().unwrap_or(d.num(0.0)?)
        )
        .expect("string");
    }
    writeln!(w_, "  FROM icp_values\n),").expect("string");
    Ok(())
}

/// `icp_values`: each variable's raw column read once, as the loader reads
/// it (`icp_v`: trimmed text, or the number), with a numeric variable's
/// pre-log value (`icp_u`) and transform (`icp_t`): later steps use each
/// many times, and an engine need not recompute them per use.
fn write_values(
    w_: &mut String,
    raw: &Gen<'_>,
    a: &ModelArtifact,
    opts: &SqlOptions,
) -> Result<()> {
    let d = opts.dialect;
    writeln!(
        w_,
        "WITH icp_values {} (\n  SELECT\n    {} AS account_id",
        d.cte(),
        d.ident(a.config.source("accounts", "account_id"))
    )
    .expect("string");
    for (i, v) in raw.spec.variables.iter().enumerate() {
        write!(w_, "    , {} AS icp_v{i}", raw.value(v)).expect("string");
        if matches!(v, Variable::Numeric { .. }) {
            write!(w_, "\n    , {} AS icp_u{i}", raw.pre_log(v)?).expect("string");
            write!(w_, "\n    , {} AS icp_t{i}", raw.transformed(v)?).expect("string");
        }
        writeln!(w_, "  -- {}", v.display_name().replace('\n', " ")).expect("string");
    }
    writeln!(w_, "  FROM {}\n),", opts.table).expect("string");
    Ok(())
}

/// The score: how many of the ascending cut points `reach` the logit
/// reaches (plus `base`), as nested CASEs that halve the points at each
/// level, so an engine makes seven comparisons per account, not up to a
/// hundred. The artifact's check guarantees the points ascend; a NULL logit
/// reaches none (every comparison goes ELSE), as in a ladder.
fn percentile(reach: &[String], base: usize, indent: usize) -> String {
    if reach.is_empty() {
        return base.to_string();
    }
    let mid = reach.len() / 2;
    let pad = " ".repeat(4 * indent);
    format!(
        "CASE WHEN logit >= {}\n{pad}THEN {}\n{pad}ELSE {} END",
        reach[mid],
        percentile(&reach[mid + 1..], base + mid + 1, indent + 1),
        percentile(&reach[..mid], base, indent + 1)
    )
}

/// `icp_logits`, `icp_scores` and the final `SELECT`: logit, score
/// (percentile of the reference logits), p_velocity_win and band.
fn write_scores(w_: &mut String, a: &ModelArtifact, d: Dialect) -> Result<()> {
    let spec = &a.model.spec;
    let logit = (0..spec.n_groups()).fold(d.num(a.model.base())?, |acc, k| format!("{acc} + g{k}"));
    writeln!(
        w_,
        "icp_logits {} (\n  SELECT account_id, coverage, {logit} AS logit\n  FROM icp_inputs\n),",
        d.cte()
    )
    .expect("string");
    let reach = a
        .reference
        .iter()
        .map(|c| d.num(c - crate::stages::model::CUT_TOLERANCE))
        .collect::<Result<Vec<_>>>()?;
    let pct = percentile(&reach, 0, 2);
    writeln!(
        w_,
        "icp_scores {} (\n  SELECT account_id, logit,\n    CASE WHEN coverage < {} THEN NULL ELSE {pct}\n    END AS score\n  FROM icp_logits\n)",
        d.cte(),
        d.num(a.min_feature_coverage)?
    )
    .expect("string");
    let one = d.num(1.0)?;
    let million = d.num(1e6)?;
    writeln!(
        w_,
        "SELECT\n  account_id,\n  score,\n  CASE WHEN score IS NULL THEN NULL\n    ELSE ROUND({one} / ({one} + EXP(-logit)) * {million}) / {million} END AS p_velocity_win,\n  CASE WHEN score IS NULL THEN {}\n    WHEN score >= {} THEN {}\n    WHEN score >= {} THEN {}\n    ELSE {} END AS band\nFROM icp_scores",
        d.string(crate::domain::Band::UNSCORED),
        Band::HIGH_FROM,
        d.string(Band::High.as_str()),
        Band::MEDIUM_FROM,
        d.string(Band::Medium.as_str()),
        d.string(Band::Low.as_str())
    )
    .expect("string");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_thresholds_decide_bins_exactly_like_the_log() {
        for u in [0.0, 1.0, 9.0, 10.0, 49.0, 50.0, 499.0, 2.5e6, 123_456.789] {
            let edge = log_scale(u);
            let r = raw_threshold(edge);
            assert!(log_scale(r) >= edge && (r == 0.0 || log_scale(r.next_down()) < edge));
            // the account whose value made the edge is in the upper bin
            assert!(u >= r, "{u} vs {r}");
        }
        assert_eq!(raw_threshold(-1.0), 0.0);
    }

    #[test]
    fn literals_round_trip_and_strings_are_escaped() {
        for x in [0.1, -3.25e-9, 1e300, 12345.678901234567] {
            let t = Dialect::Duckdb.num(x).expect("finite");
            assert_eq!(t.parse::<f64>().expect("parses"), x);
        }
        assert_eq!(
            Dialect::Postgres.num(0.5).expect("finite"),
            "CAST(5e-1 AS DOUBLE PRECISION)"
        );
        assert_eq!(Dialect::Duckdb.string("O'Brien"), "'O''Brien'");
        assert_eq!(Dialect::Spark.string("O'Brien\\"), "'O\\'Brien\\\\'");
        assert_eq!(Dialect::Bigquery.ident("a`b"), "`a\\`b`");
        assert!(Dialect::Duckdb.num(f64::NAN).is_err());
    }
}
