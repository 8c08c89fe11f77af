//! Board profiles (`boards/*.toml`): per-Raspberry-Pi defaults for `earshot listen`.
//!
//! The profiles are embedded in the binary with `include_str!`, so `--board pi4` works the same
//! from a build tree and from an installed package. A profile only supplies *defaults*: the
//! config layer it produces ([`BoardProfile::config_layer`]) sits under the config file, which
//! sits under command-line flags, and the merged result goes through the config module's one
//! validation path.

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::config::file::RawConfig;

/// The embedded profiles, in the order they are listed to users (smallest board first).
const EMBEDDED: &[(&str, &str)] = &[
    ("pi-zero-2w", include_str!("../../boards/pi-zero-2w.toml")),
    ("pi3", include_str!("../../boards/pi3.toml")),
    ("pi4", include_str!("../../boards/pi4.toml")),
    ("pi5", include_str!("../../boards/pi5.toml")),
];

/// Rust targets a profile may name (the ones `scripts/cross-build.sh` builds).
pub const TARGET_64BIT: &str = "aarch64-unknown-linux-gnu";
pub const TARGET_32BIT: &str = "armv7-unknown-linux-gnueabihf";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    pub board: BoardInfo,
    pub build: BuildInfo,
    pub runtime: RuntimeDefaults,
    pub microphone: MicrophoneNotes,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoardInfo {
    pub name: String,
    pub title: String,
    pub soc: String,
    pub cores: u32,
    pub ram_mb: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildInfo {
    /// Recommended Rust target (64-bit OS).
    pub target: String,
    /// Debian architecture of the package for `target`.
    pub deb_arch: String,
    /// Supported alternative for a 32-bit OS.
    pub target_32bit: String,
    pub deb_arch_32bit: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeDefaults {
    /// Inference threads (tract's matrix products); the remaining cores serve capture and DSP.
    pub threads: u32,
    pub window_seconds: f64,
    pub hop_seconds: f64,
    /// Model variant: the name of a bundle directory under the models directory.
    pub model: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MicrophoneNotes {
    pub notes: String,
}

/// Names of the known boards, in listing order.
pub fn known_boards() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(name, _)| *name).collect()
}

/// All embedded profiles, parsed and checked.
pub fn all() -> Result<Vec<BoardProfile>> {
    EMBEDDED
        .iter()
        .map(|(name, text)| {
            BoardProfile::parse(text).with_context(|| format!("board profile boards/{name}.toml"))
        })
        .collect()
}

impl BoardProfile {
    /// The profile for `name` (case-insensitive, `_` accepted for `-`). An unknown name is an
    /// error that lists the known boards.
    pub fn by_name(name: &str) -> Result<BoardProfile> {
        let wanted = name.trim().to_ascii_lowercase().replace('_', "-");
        match EMBEDDED.iter().find(|(n, _)| *n == wanted) {
            Some((n, text)) => {
                let p = BoardProfile::parse(text)
                    .with_context(|| format!("board profile boards/{n}.toml"))?;
                if p.board.name != *n {
                    bail!(
                        "board profile boards/{n}.toml names itself {:?}",
                        p.board.name
                    );
                }
                Ok(p)
            }
            None => bail!(
                "unknown board {name:?}; known boards: {}",
                known_boards().join(", ")
            ),
        }
    }

    /// Parses and checks one profile.
    pub fn parse(text: &str) -> Result<BoardProfile> {
        let p: BoardProfile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<()> {
        let b = &self.board;
        if b.name.is_empty()
            || !b
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            bail!(
                "board.name {:?} must be lowercase letters, digits and '-'",
                b.name
            );
        }
        if b.cores == 0 {
            bail!("board.cores must be at least 1");
        }
        let known = [(TARGET_64BIT, "arm64"), (TARGET_32BIT, "armhf")];
        for (target, arch, key) in [
            (&self.build.target, &self.build.deb_arch, "build.target"),
            (
                &self.build.target_32bit,
                &self.build.deb_arch_32bit,
                "build.target_32bit",
            ),
        ] {
            match known.iter().find(|(t, _)| t == target) {
                Some((_, a)) if a == arch => {}
                Some((_, a)) => bail!("{key} {target} is Debian architecture {a}, not {arch:?}"),
                None => {
                    bail!("{key} {target:?} is not a supported target ({TARGET_64BIT}, {TARGET_32BIT})")
                }
            }
        }
        let r = &self.runtime;
        if r.threads == 0 || r.threads > b.cores {
            bail!(
                "runtime.threads = {} must be between 1 and the board's {} cores",
                r.threads,
                b.cores
            );
        }
        if !(r.window_seconds.is_finite() && r.window_seconds > 0.0) {
            bail!("runtime.window_seconds must be a positive number of seconds");
        }
        if !(r.hop_seconds.is_finite() && r.hop_seconds > 0.0 && r.hop_seconds <= r.window_seconds)
        {
            bail!("runtime.hop_seconds must be positive and at most runtime.window_seconds");
        }
        if r.model.is_empty() || r.model.contains('/') || r.model.starts_with('.') {
            bail!(
                "runtime.model {:?} must be a bundle directory name (no path)",
                r.model
            );
        }
        if self.microphone.notes.trim().is_empty() {
            bail!("microphone.notes must not be empty");
        }
        Ok(())
    }

    /// The config layer this profile contributes: only the caption window and hop. It is meant
    /// to be merged *under* the config file and the command line (`layer.merge(file).merge(cli)`).
    pub fn config_layer(&self) -> RawConfig {
        let mut raw = RawConfig::default();
        raw.captions.window_seconds = Some(self.runtime.window_seconds);
        raw.captions.hop_seconds = Some(self.runtime.hop_seconds);
        raw
    }

    /// A one-line description (for listings and the log line that says which profile applies).
    pub fn summary(&self) -> String {
        format!(
            "{}: {} ({}); target {} (32-bit: {}); {} inference thread(s), window {} s, hop {} s, model {:?}",
            self.board.name,
            self.board.title,
            self.board.soc,
            self.build.target,
            self.build.target_32bit,
            self.runtime.threads,
            self.runtime.window_seconds,
            self.runtime.hop_seconds,
            self.runtime.model
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_profile_parses_and_matches_its_file_name() {
        let all = all().unwrap();
        assert_eq!(all.len(), 4);
        for (p, name) in all.iter().zip(known_boards()) {
            assert_eq!(p.board.name, name);
            assert_eq!(BoardProfile::by_name(name).unwrap(), *p);
        }
    }

    #[test]
    fn issue_boards_are_all_there() {
        assert_eq!(known_boards(), ["pi-zero-2w", "pi3", "pi4", "pi5"]);
        // 64-bit recommended everywhere, 32-bit armv7 supported everywhere.
        for p in all().unwrap() {
            assert_eq!(p.build.target, TARGET_64BIT);
            assert_eq!(p.build.target_32bit, TARGET_32BIT);
        }
    }

    #[test]
    fn unknown_board_lists_the_known_ones() {
        let err = BoardProfile::by_name("pi2").unwrap_err().to_string();
        assert!(err.contains("\"pi2\""), "{err}");
        for n in known_boards() {
            assert!(err.contains(n), "{err}");
        }
    }

    #[test]
    fn lookup_is_lenient_about_case_and_underscores() {
        assert_eq!(BoardProfile::by_name("PI4").unwrap().board.name, "pi4");
        assert_eq!(
            BoardProfile::by_name("pi_zero_2w").unwrap().board.name,
            "pi-zero-2w"
        );
    }

    #[test]
    fn smaller_boards_get_lighter_defaults() {
        let zero = BoardProfile::by_name("pi-zero-2w").unwrap();
        let pi5 = BoardProfile::by_name("pi5").unwrap();
        assert!(zero.runtime.hop_seconds > pi5.runtime.hop_seconds);
        assert!(zero.runtime.threads <= pi5.runtime.threads);
        assert!(zero.board.ram_mb < pi5.board.ram_mb);
    }

    #[test]
    fn config_layer_sets_window_and_hop_and_yields_to_the_file() {
        let p = BoardProfile::by_name("pi3").unwrap();
        let layer = p.config_layer();
        assert_eq!(layer.captions.window_seconds, Some(10.0));
        assert_eq!(layer.captions.hop_seconds, Some(5.0));
        let file = RawConfig::parse("[captions]\nhop_seconds = 7.5\n").unwrap();
        let merged = layer.merge(file);
        assert_eq!(merged.captions.hop_seconds, Some(7.5));
        assert_eq!(merged.captions.window_seconds, Some(10.0));
    }

    fn pi4_text() -> String {
        include_str!("../../boards/pi4.toml").to_string()
    }

    #[test]
    fn bad_profiles_are_rejected_with_the_key_named() {
        let cases = [
            ("threads = 2", "threads = 0", "runtime.threads"),
            ("threads = 2", "threads = 9", "runtime.threads"),
            (
                "hop_seconds = 5.0",
                "hop_seconds = 20.0",
                "runtime.hop_seconds",
            ),
            (
                "hop_seconds = 5.0",
                "hop_seconds = -1.0",
                "runtime.hop_seconds",
            ),
            (
                "window_seconds = 10.0",
                "window_seconds = 0.0",
                "runtime.window_seconds",
            ),
            (
                "target = \"aarch64-unknown-linux-gnu\"",
                "target = \"riscv64gc-unknown-linux-gnu\"",
                "build.target",
            ),
            (
                "deb_arch = \"arm64\"",
                "deb_arch = \"armhf\"",
                "build.target",
            ),
            ("model = \"default\"", "model = \"../x\"", "runtime.model"),
            ("cores = 4", "cores = 4\ngpu = true", "gpu"),
        ];
        for (from, to, key) in cases {
            let text = pi4_text();
            assert!(text.contains(from), "{from}");
            let err = BoardProfile::parse(&text.replacen(from, to, 1))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{to}: {err}");
        }
    }
}
