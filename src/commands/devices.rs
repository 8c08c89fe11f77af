//! `earshot devices`: the capture devices and the exact names to pass to `--device`.

use super::Fatal;

/// Lists input devices with their native and supported configurations.
#[cfg(feature = "mic")]
pub fn run() -> Result<u8, Fatal> {
    use crate::source::mic::list_devices;
    let list = list_devices().map_err(Fatal::input)?;
    if list.is_empty() {
        println!("No audio input devices found.");
        println!("Check `arecord -l`, the USB cable, and that this user is in the `audio` group.");
        return Ok(super::EXIT_INPUT_FAILED);
    }
    println!(
        "Audio input devices. Pass the quoted name (or any unique part of it, case-insensitive)"
    );
    println!(
        "to `earshot listen --device`, or set `device` in the [source] section of the config."
    );
    println!("Without --device the default device (*) is used.");
    for d in &list {
        println!();
        let mark = if d.is_default { "*" } else { " " };
        println!("{mark} \"{}\"", d.id);
        if !d.name.is_empty() && d.name != d.id {
            println!("    description: {}", d.name);
        }
        match &d.native {
            Some(n) => println!("    opens as:    {n}"),
            None => println!("    opens as:    (no default configuration reported)"),
        }
        for (i, c) in d.configs.iter().enumerate() {
            let label = if i == 0 { "supports:" } else { "         " };
            println!("    {label}    {c}");
        }
    }
    Ok(0)
}

#[cfg(not(feature = "mic"))]
pub fn run() -> Result<u8, Fatal> {
    Err(Fatal::input(anyhow::anyhow!(
        "this earshot was built without microphone support (cargo feature `mic`); \
         use `earshot listen --stdin` or `--file`"
    )))
}
