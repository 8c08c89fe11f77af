//! The Rust log-mel front end against train/'s golden vectors (tests/golden/frontend/*.json),
//! within 1e-3 (absolute).

use earshot::model::frontend::FrontendSpec;
use earshot::model::frontend::LogMel;
use std::path::Path;

const TOL: f64 = 1e-3;

#[test]
fn frontend_matches_golden_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/frontend");
    let mut cases: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    if cases.is_empty() {
        eprintln!(
            "SKIP: no golden front-end vectors in {} (written by `python -m earshot_train.golden`)",
            dir.display()
        );
        return;
    }
    cases.sort();
    for path in cases {
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let spec: FrontendSpec = serde_json::from_value(v["spec"].clone())
            .unwrap_or_else(|e| panic!("{}: spec: {e}", path.display()));
        let samples: Vec<f32> = serde_json::from_value(v["samples"].clone()).unwrap();
        let expected: Vec<Vec<f64>> = serde_json::from_value(v["features"].clone()).unwrap();
        let mut lm = LogMel::new(&spec).unwrap();
        let got = lm.compute(&samples).unwrap();
        assert_eq!(got.n_mels, expected.len(), "{}: n_mels", path.display());
        assert_eq!(got.frames, expected[0].len(), "{}: frames", path.display());
        let mut worst = (0.0f64, 0, 0);
        for (m, row) in expected.iter().enumerate() {
            for (t, &e) in row.iter().enumerate() {
                let g = f64::from(got.at(m, t));
                let err = (g - e).abs();
                if err > worst.0 {
                    worst = (err, m, t);
                }
            }
        }
        let (err, m, t) = worst;
        eprintln!(
            "{}: {} x {}, worst error {err:.2e} at mel {m} frame {t}",
            path.file_name().unwrap().to_string_lossy(),
            got.n_mels,
            got.frames
        );
        assert!(
            err <= TOL,
            "{}: mel {m} frame {t}: got {} expected {} (error {err:.2e} > {TOL})",
            path.display(),
            got.at(m, t),
            expected[m][t]
        );
    }
}
