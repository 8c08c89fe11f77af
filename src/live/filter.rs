//! The caption rules, in one place for `earshot listen` and `earshot caption`: what happens to a
//! caption between the model and the outputs — the confidence threshold
//! (`captions.min_confidence`), the `captions.only` / `captions.ignore` lists and the speech
//! privacy mode (`privacy.speech`). The silence gate ([`super::gate`]) runs before the model and
//! the repeat hold-off ([`super::dedup`]) after these rules.
//!
//! Invariants:
//! - every caption gets exactly one [`Verdict`]; a caption that is not emitted says why
//!   ([`Verdict::Uncertain`], [`Verdict::Filtered`], [`Verdict::PrivacyDropped`]) so the
//!   callers count it — nothing is lost silently;
//! - the rules run in a fixed order: privacy `drop` first (nothing about a speech window leaves
//!   the device, whatever its confidence), then the threshold, then `only`, then `ignore`, then
//!   privacy `mask`;
//! - a caption without a `confidence` (a bundle without a `confidence` section) passes the
//!   threshold; a bundle without tags is matched on its caption words only;
//! - the rules run once per caption (never per sample) and never fail: any text, tags or list
//!   is valid input.
//!
//! Speech is detected from the AudioSet tags when the bundle has them, and always from the
//! caption words as well (privacy errs on the side of hiding): [`mentions_speech`].
//!
//! List matching ([`Pattern`]): case-insensitive, on whole words; a pattern of several words
//! matches them in a row; a word of the caption also matches the pattern's singular (`barks`
//! matches `bark`, `dogs` matches `dog`). A pattern matches a tag name the same way (`"speech"`
//! matches the tag "Male speech, man speaking"). The pattern `speech` also matches any window
//! detected as speech, so `ignore = ["speech"]` hides "a woman speaks" too.

use crate::model::Caption;

/// What `privacy.speech` does with a window detected as speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpeechPrivacy {
    /// Captions of speech are emitted as they are (their clips only with `privacy.speech_clips`).
    #[default]
    Keep,
    /// The caption becomes [`MASKED_CAPTION`] (tags and token ids kept out) and no clip is stored.
    Mask,
    /// Nothing about the window leaves the device: no caption, no clip (counted).
    Drop,
}

impl SpeechPrivacy {
    pub fn name(self) -> &'static str {
        match self {
            SpeechPrivacy::Keep => "keep",
            SpeechPrivacy::Mask => "mask",
            SpeechPrivacy::Drop => "drop",
        }
    }

    /// `"keep"`, `"mask"` or `"drop"` (any case).
    pub fn parse(s: &str) -> Option<SpeechPrivacy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "keep" => Some(SpeechPrivacy::Keep),
            "mask" => Some(SpeechPrivacy::Mask),
            "drop" => Some(SpeechPrivacy::Drop),
            _ => None,
        }
    }
}

/// The caption a masked speech window gets.
pub const MASKED_CAPTION: &str = "someone speaks";

/// Caption words that mean speech (lower case, whole words).
const SPEECH_WORDS: &[&str] = &[
    "speak",
    "speaks",
    "speaking",
    "speech",
    "spoken",
    "talk",
    "talks",
    "talking",
    "voice",
    "voices",
    "chatter",
    "chatters",
    "chattering",
    "conversation",
    "converse",
    "whisper",
    "whispers",
    "whispering",
    "says",
    "saying",
    "language",
    "narrates",
    "narration",
    "announces",
    "announcer",
];

/// Parts of AudioSet tag names that mean speech ("Speech", "Male speech, man speaking",
/// "Conversation", "Narration, monologue", "Whispering", "Babbling", ...), lower case.
const SPEECH_TAG_PARTS: &[&str] = &[
    "speech",
    "speaking",
    "conversation",
    "narration",
    "monologue",
    "whisper",
    "babbling",
    "chatter",
];

/// Lower-case alphanumeric words of `text`.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
}

/// True when the caption or its tags mention speech (tags when the bundle has them, the caption
/// words always).
pub fn mentions_speech(caption: &Caption) -> bool {
    let by_words = words(&caption.text).any(|w| SPEECH_WORDS.contains(&w.as_str()));
    let by_tags = caption.tags.as_ref().is_some_and(|tags| {
        tags.iter().any(|(name, _)| {
            let name = name.to_lowercase();
            SPEECH_TAG_PARTS.iter().any(|p| name.contains(p))
        })
    });
    by_words || by_tags
}

/// One entry of `captions.only` / `captions.ignore`: lower-case words matched in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// As configured (for messages and `--check-config`).
    pub text: String,
    words: Vec<String>,
}

impl Pattern {
    /// `None` for a pattern without any word (empty or punctuation only).
    pub fn new(text: &str) -> Option<Pattern> {
        let words: Vec<String> = words(text).collect();
        (!words.is_empty()).then(|| Pattern {
            text: text.trim().to_string(),
            words,
        })
    }

    /// The words match in a row somewhere in `text` (a text word may carry a plural `s`/`es`).
    fn matches_text(&self, text: &str) -> bool {
        let have: Vec<String> = words(text).collect();
        let n = self.words.len();
        if have.len() < n {
            return false;
        }
        have.windows(n)
            .any(|w| w.iter().zip(&self.words).all(|(h, p)| word_matches(h, p)))
    }

    /// True when this pattern matches the caption's words, one of its tag names, or (for the
    /// pattern `speech`) a window detected as speech.
    pub fn matches(&self, caption: &Caption, speech: bool) -> bool {
        if speech && self.words.len() == 1 && self.words[0] == "speech" {
            return true;
        }
        self.matches_text(&caption.text)
            || caption
                .tags
                .as_ref()
                .is_some_and(|tags| tags.iter().any(|(name, _)| self.matches_text(name)))
    }
}

/// `have` is the pattern word `want`, or it with a plural ending.
fn word_matches(have: &str, want: &str) -> bool {
    have == want
        || have
            .strip_prefix(want)
            .is_some_and(|rest| rest == "s" || rest == "es")
}

/// The caption rules of one run (see the module doc for their order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CaptionRules {
    /// Captions with a confidence below this are not emitted. `None`: no threshold.
    pub min_confidence: Option<f64>,
    /// When not empty, only captions matching one of these are emitted.
    pub only: Vec<Pattern>,
    /// Captions matching one of these are not emitted.
    pub ignore: Vec<Pattern>,
    pub speech: SpeechPrivacy,
    /// Store clips of speech windows (only with `speech = keep`). Default false.
    pub speech_clips: bool,
}

/// What the rules decided for one caption.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Emit this caption (masked when it was speech under `mask`); `clip` says whether its
    /// audio may be stored.
    Emit { caption: Caption, clip: bool },
    /// Below `min_confidence`.
    Uncertain,
    /// Left out by `only` or `ignore`.
    Filtered,
    /// Speech under `privacy.speech = "drop"`.
    PrivacyDropped,
}

impl CaptionRules {
    /// No rule at all: every caption is emitted (and may have its clip).
    pub fn none() -> CaptionRules {
        CaptionRules {
            speech_clips: true,
            ..Default::default()
        }
    }

    /// Patterns from a list of strings; empty entries are skipped.
    pub fn patterns(list: &[String]) -> Vec<Pattern> {
        list.iter().filter_map(|s| Pattern::new(s)).collect()
    }

    /// True when the rules can leave a caption out (for summaries).
    pub fn is_active(&self) -> bool {
        self.min_confidence.is_some()
            || !self.only.is_empty()
            || !self.ignore.is_empty()
            || self.speech != SpeechPrivacy::Keep
    }

    /// Applies the rules to one caption.
    pub fn judge(&self, caption: Caption) -> Verdict {
        let speech = mentions_speech(&caption);
        if speech && self.speech == SpeechPrivacy::Drop {
            return Verdict::PrivacyDropped;
        }
        if let (Some(min), Some(c)) = (self.min_confidence, caption.confidence) {
            // A NaN confidence is not a confident one.
            if c.is_nan() || c < min {
                return Verdict::Uncertain;
            }
        }
        if !self.only.is_empty() && !self.only.iter().any(|p| p.matches(&caption, speech)) {
            return Verdict::Filtered;
        }
        if self.ignore.iter().any(|p| p.matches(&caption, speech)) {
            return Verdict::Filtered;
        }
        if !speech {
            return Verdict::Emit {
                caption,
                clip: true,
            };
        }
        match self.speech {
            SpeechPrivacy::Mask => Verdict::Emit {
                caption: masked(caption),
                clip: false,
            },
            _ => Verdict::Emit {
                caption,
                clip: self.speech_clips,
            },
        }
    }
}

/// The masked form of a speech caption: the fixed text, nothing of what the model said (no
/// token ids or log-probabilities); the confidence and the tags stay (they name no words).
fn masked(caption: Caption) -> Caption {
    Caption {
        text: MASKED_CAPTION.to_string(),
        token_ids: Vec::new(),
        token_logprobs: Vec::new(),
        ..caption
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(text: &str, confidence: Option<f64>, tags: Option<&[&str]>) -> Caption {
        Caption {
            text: text.into(),
            token_ids: vec![5, 6, 2],
            token_logprobs: vec![-0.1, -0.2, -0.1],
            confidence,
            tags: tags.map(|t| t.iter().map(|n| (n.to_string(), 0.9)).collect()),
            ..Default::default()
        }
    }

    fn rules(
        min: Option<f64>,
        only: &[&str],
        ignore: &[&str],
        speech: SpeechPrivacy,
    ) -> CaptionRules {
        let list = |l: &[&str]| {
            CaptionRules::patterns(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        CaptionRules {
            min_confidence: min,
            only: list(only),
            ignore: list(ignore),
            speech,
            speech_clips: false,
        }
    }

    fn emitted(v: &Verdict) -> Option<&str> {
        match v {
            Verdict::Emit { caption, .. } => Some(caption.text.as_str()),
            _ => None,
        }
    }

    #[test]
    fn threshold_and_missing_confidence() {
        let r = rules(Some(0.5), &[], &[], SpeechPrivacy::Keep);
        assert_eq!(
            r.judge(cap("a dog barks", Some(0.49), None)),
            Verdict::Uncertain
        );
        assert_eq!(
            emitted(&r.judge(cap("a dog barks", Some(0.5), None))),
            Some("a dog barks")
        );
        assert_eq!(
            emitted(&r.judge(cap("a dog barks", None, None))),
            Some("a dog barks")
        );
        assert_eq!(
            r.judge(cap("a dog barks", Some(f64::NAN), None)),
            Verdict::Uncertain
        );
    }

    #[test]
    fn only_and_ignore_on_words_and_tags() {
        let r = rules(None, &["dog", "Glass"], &[], SpeechPrivacy::Keep);
        assert!(emitted(&r.judge(cap("Dogs bark loudly", None, None))).is_some());
        assert!(emitted(&r.judge(cap("a GLASS breaks", None, None))).is_some());
        assert_eq!(r.judge(cap("rain falls", None, None)), Verdict::Filtered);
        assert_eq!(
            r.judge(cap("a doghouse creaks", None, None)),
            Verdict::Filtered
        );
        // A tag name matches too.
        assert!(
            emitted(&r.judge(cap("something barks", None, Some(&["Dog", "Animal"])))).is_some()
        );
        let r = rules(None, &[], &["music", "engine idling"], SpeechPrivacy::Keep);
        assert_eq!(r.judge(cap("music plays", None, None)), Verdict::Filtered);
        assert_eq!(
            r.judge(cap("an engine idling nearby", None, None)),
            Verdict::Filtered
        );
        assert!(emitted(&r.judge(cap("an engine starts idling", None, None))).is_some());
        assert_eq!(
            r.judge(cap("a bell", None, Some(&["Music"]))),
            Verdict::Filtered
        );
        // `speech` matches a window detected as speech.
        let r = rules(None, &[], &["speech"], SpeechPrivacy::Keep);
        assert_eq!(
            r.judge(cap("a woman speaks", None, None)),
            Verdict::Filtered
        );
        assert!(Pattern::new(" ,, ").is_none());
    }

    #[test]
    fn privacy_modes() {
        let speech = cap("a man speaks in a foreign language", Some(0.2), None);
        let drop = rules(Some(0.9), &[], &[], SpeechPrivacy::Drop);
        assert_eq!(
            drop.judge(speech.clone()),
            Verdict::PrivacyDropped,
            "drop wins over the threshold"
        );
        let mask = rules(None, &[], &[], SpeechPrivacy::Mask);
        match mask.judge(speech.clone()) {
            Verdict::Emit { caption, clip } => {
                assert_eq!(caption.text, MASKED_CAPTION);
                assert!(caption.token_ids.is_empty() && caption.token_logprobs.is_empty());
                assert!(!clip);
            }
            v => panic!("{v:?}"),
        }
        let keep = rules(None, &[], &[], SpeechPrivacy::Keep);
        assert_eq!(
            keep.judge(speech.clone()),
            Verdict::Emit {
                caption: speech.clone(),
                clip: false
            },
            "by default a speech clip is never stored"
        );
        let keep_clips = CaptionRules {
            speech_clips: true,
            ..keep
        };
        assert!(matches!(
            keep_clips.judge(speech),
            Verdict::Emit { clip: true, .. }
        ));
        // Tags detect speech the words do not show.
        let tagged = cap("a sound", None, Some(&["Male speech, man speaking"]));
        assert_eq!(drop.judge(tagged), Verdict::PrivacyDropped);
        assert!(matches!(
            mask.judge(cap("a dog barks", None, Some(&["Dog"]))),
            Verdict::Emit { clip: true, .. }
        ));
        assert_eq!(SpeechPrivacy::parse(" MASK"), Some(SpeechPrivacy::Mask));
        assert_eq!(SpeechPrivacy::parse("hide"), None);
    }
}
