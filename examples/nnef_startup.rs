//! Start-up experiment: encoder load time from ONNX (parse + analyse + optimise) versus from a
//! pre-decluttered NNEF archive (parse + optimise). Usage: nnef_startup BUNDLE [REPEATS]
use std::time::Instant;
use tract_nnef::prelude::Framework as _;
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json"))?)?;
    let shape: Vec<usize> = m["encoder"]["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let onnx_path = dir.join(m["encoder"]["file"].as_str().unwrap());
    let nnef = tract_nnef::nnef().with_onnx();
    let tgz = std::env::temp_dir().join("earshot-encoder.nnef.tgz");
    for r in 0..reps {
        let t0 = Instant::now();
        let mut model = tract_onnx::onnx().model_for_path(&onnx_path)?;
        model.set_input_fact(0, f32::fact(&shape).into())?;
        let t1 = Instant::now();
        let typed = model.into_typed()?.into_decluttered()?;
        let t2 = Instant::now();
        let opt = typed.clone().into_optimized()?;
        let _plan = opt.into_runnable()?;
        let t3 = Instant::now();
        if r == 0 {
            nnef.write_to_tar(&typed, std::fs::File::create(&tgz)?)?;
        }
        let t4 = Instant::now();
        let loaded = nnef.model_for_path(&tgz)?;
        let t5 = Instant::now();
        let _plan2 = loaded.into_optimized()?.into_runnable()?;
        let t6 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        println!(
            "onnx: parse {:.0} ms, analyse+declutter {:.0} ms, optimise {:.0} ms = {:.0} ms | nnef ({} KiB): parse {:.0} ms, optimise {:.0} ms = {:.0} ms",
            ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t0, t3),
            std::fs::metadata(&tgz)?.len() / 1024,
            ms(t4, t5), ms(t5, t6), ms(t4, t6)
        );
    }
    Ok(())
}
