//! The domain's words as types, in one place: a deal's [`Outcome`] and an
//! account's score [`Band`] with its thresholds. Modules above use these
//! instead of repeating "high" or 70.

pub use crate::config::Outcome;

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
}
