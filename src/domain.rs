//! Layer 1, the domain's words as types, in one place: a deal's
//! [`Outcome`], an account's score [`Band`] with its thresholds, its
//! [`CrmStatus`], the feed's [`Audience`], and which loss reasons say
//! nothing specific. Modules above use these instead of repeating "high",
//! "won" or 70.

use serde::{Deserialize, Serialize};

/// Canonical outcome of an opportunity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Won,
    Lost,
    Churned,
    Open,
}

impl Outcome {
    /// An outcome as the loaded tables write it (lower case, no spaces):
    /// no allocation, for per-row use.
    pub fn canonical(s: &str) -> Option<Outcome> {
        match s {
            "won" => Some(Outcome::Won),
            "lost" => Some(Outcome::Lost),
            "churned" => Some(Outcome::Churned),
            "open" => Some(Outcome::Open),
            _ => None,
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::canonical(&s.trim().to_ascii_lowercase())
    }
    /// Won, including won and churned since: the deal was won.
    pub fn was_won(self) -> bool {
        matches!(self, Outcome::Won | Outcome::Churned)
    }

    /// The outcome as a polars literal, for expressions over the
    /// `outcome` column.
    pub fn lit(self) -> polars::prelude::Expr {
        polars::prelude::lit(self.as_str())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Won => "won",
            Outcome::Lost => "lost",
            Outcome::Churned => "churned",
            Outcome::Open => "open",
        }
    }
}

/// Where an account stands in the CRM today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmStatus {
    /// won and not churned, or active in customers
    Customer,
    /// won once, churned since
    ChurnedCustomer,
    /// an open deal, and not a customer
    OpenOpportunity,
    Prospect,
}

impl CrmStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CrmStatus::Customer => "customer",
            CrmStatus::ChurnedCustomer => "churned_customer",
            CrmStatus::OpenOpportunity => "open_opportunity",
            CrmStatus::Prospect => "prospect",
        }
    }
    pub fn parse(s: &str) -> Option<CrmStatus> {
        Some(match s {
            "customer" => CrmStatus::Customer,
            "churned_customer" => CrmStatus::ChurnedCustomer,
            "open_opportunity" => CrmStatus::OpenOpportunity,
            "prospect" => CrmStatus::Prospect,
            _ => return None,
        })
    }
}

/// Who the targeting segments hold (`[publish] audience`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// prospects and open opportunities (new business)
    #[default]
    Prospects,
    /// every scored account, customers included (upsell)
    All,
}

/// The `status` of a scored account in scores.csv (an unscored one says why).
pub const STATUS_SCORED: &str = "scored";

/// A score band: what a seller does with an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Band {
    High,
    Medium,
    Low,
}

impl Band {
    /// Lowest score of the high band.
    pub const HIGH_FROM: u8 = 70;
    /// Lowest score of the medium band.
    pub const MEDIUM_FROM: u8 = 40;
    /// Every band, best first (the order of every summary).
    pub const ALL: [Band; 3] = [Band::High, Band::Medium, Band::Low];
    /// [`Band::ALL`] as written in files.
    pub const NAMES: [&'static str; 3] = ["high", "medium", "low"];
    /// The band of an account that could not be scored (too little data).
    pub const UNSCORED: &'static str = "unscored";

    pub fn of(score: u8) -> Band {
        if score >= Band::HIGH_FROM {
            Band::High
        } else if score >= Band::MEDIUM_FROM {
            Band::Medium
        } else {
            Band::Low
        }
    }

    pub fn as_str(self) -> &'static str {
        Band::NAMES[self as usize]
    }

    pub fn parse(s: &str) -> Option<Band> {
        Band::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// The band's score range in words: "70+", "40-69", "39 or less".
    pub fn range_words(self) -> String {
        match self {
            Band::High => format!("{}+", Band::HIGH_FROM),
            Band::Medium => format!("{}-{}", Band::MEDIUM_FROM, Band::HIGH_FROM - 1),
            Band::Low => format!("{} or less", Band::MEDIUM_FROM - 1),
        }
    }
}

/// A targeting segment of the feed: the accounts at or above a score, or
/// in a band. Its name is the segment file's name and the feed's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    ScoreAtLeast(u8),
    Band(Band),
}

impl Segment {
    /// The score thresholds with a segment of their own.
    pub const THRESHOLDS: [u8; 7] = [30, 40, 50, 60, 70, 80, 90];

    /// Every segment in the feed's order: by score, then by band.
    pub fn all() -> impl Iterator<Item = Segment> {
        Segment::THRESHOLDS
            .into_iter()
            .map(Segment::ScoreAtLeast)
            .chain(Band::ALL.into_iter().map(Segment::Band))
    }

    /// "score_gte_70", "band_high".
    pub fn name(self) -> String {
        match self {
            Segment::ScoreAtLeast(t) => format!("score_gte_{t}"),
            Segment::Band(b) => format!("band_{}", b.as_str()),
        }
    }

    /// A run directory's file of the segment: "segments/score_gte_70.csv".
    pub fn file_name(self) -> String {
        format!("segments/{}.csv", self.name())
    }
}

/// What the workflow engine does with one account in one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Add,
    Move,
    Remove,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Add, Action::Move, Action::Remove];

    /// As changes.csv writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Move => "move",
            Action::Remove => "remove",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Loss reasons that name no specifics: the picklist words every CRM
/// ships ("Price", "Competitor", "No Decision"), their usual spellings, and
/// the placeholders. They cannot tell a segment that does not fit from a
/// deal that was lost the usual way. `[signals] generic_reasons` replaces it.
pub const GENERIC_LOSS_REASONS: &[&str] = &[
    "-",
    "other",
    "others",
    "unknown",
    "none",
    "n/a",
    "na",
    "lost",
    "no reason",
    "not specified",
    "unspecified",
    "misc",
    "miscellaneous",
    "closed lost",
    "tbd",
    "price",
    "pricing",
    "too expensive",
    "cost",
    "price too high",
    "budget",
    "no budget",
    "lack of budget",
    "competitor",
    "competition",
    "lost to competitor",
    "went with competitor",
    "chose competitor",
    "competitor chosen",
    "no decision",
    "no-decision",
    "no decision / non-responsive",
    "non-responsive",
    "unresponsive",
    "no response",
    "went dark",
    "ghosted",
    "timing",
    "bad timing",
    "not now",
    "not the right time",
    "status quo",
    "do nothing",
];

/// A reason as compared: lower case, punctuation as spaces, one space
/// between words ("No Decision / Non-Responsive" and "no decision non
/// responsive" are one reason).
pub fn reason_key(r: &str) -> String {
    let lower = r.to_lowercase();
    let spaced: String = lower
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The built-in generic reasons as keys.
pub fn default_generic_reasons() -> Vec<String> {
    let mut v: Vec<String> = GENERIC_LOSS_REASONS
        .iter()
        .map(|r| reason_key(r))
        .filter(|r| !r.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cut_at_70_and_40() {
        assert_eq!(Band::of(100), Band::High);
        assert_eq!(Band::of(70), Band::High);
        assert_eq!(Band::of(69), Band::Medium);
        assert_eq!(Band::of(40), Band::Medium);
        assert_eq!(Band::of(39), Band::Low);
        assert_eq!(Band::of(0), Band::Low);
        for b in Band::ALL {
            assert_eq!(Band::parse(b.as_str()), Some(b));
        }
        assert_eq!(Band::parse(Band::UNSCORED), None);
        assert_eq!(Band::Medium.range_words(), "40-69");
    }

    /// The contract's segment files and changes.csv words, written out.
    #[test]
    fn segment_names_and_actions_are_the_contracts() {
        let names: Vec<String> = Segment::all().map(Segment::name).collect();
        assert_eq!(
            names,
            [
                "score_gte_30",
                "score_gte_40",
                "score_gte_50",
                "score_gte_60",
                "score_gte_70",
                "score_gte_80",
                "score_gte_90",
                "band_high",
                "band_medium",
                "band_low"
            ]
        );
        assert_eq!(
            Segment::Band(Band::Low).file_name(),
            "segments/band_low.csv"
        );
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Action::parse("Add"), None);
        for o in [Outcome::Won, Outcome::Lost, Outcome::Churned, Outcome::Open] {
            assert_eq!(Outcome::canonical(o.as_str()), Some(o));
        }
    }
}
