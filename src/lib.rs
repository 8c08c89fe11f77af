//! earshot: offline audio captioning for small boards.
//!
//! The modules follow the path of a sample:
//!
//! 1. [`source`] — where audio comes from (`listen`: microphone, stdin, a file played live),
//!    into the lock-free [`source::ring`];
//! 2. [`audio`] — samples → model-rate windows: PCM formats and the non-finite-sample policy,
//!    decoding, downmix, resampling, windows ([`audio::stream::WindowStream`]);
//! 3. [`model`] — a window → a caption: the bundle, the log-mel front end, the encoder/decoder
//!    backends, the search, the [`Captioner`];
//! 4. [`live`] — `listen`'s DSP and inference threads, silence gate, the caption rules
//!    ([`live::filter`]: threshold, only/ignore, speech privacy; `caption` uses them too),
//!    dedup, health;
//! 5. [`sink`] — where captions go (`caption` and `listen`): one event family, one sink trait,
//!    one formatter per line shape; stdout/file lines, serial, MQTT; and [`clips`], the audio
//!    behind a caption saved by its own writer thread.
//!
//! Around them: [`config`] (listen's settings: file shape, validation, board profiles),
//! [`commands`] (one file per subcommand, exit codes) and [`cli`] (the command line).

// The stages, in the order a sample travels.
// 1. where audio comes from
pub mod source;
// 2. samples → model-rate windows
pub mod audio;
// 3. a window → a caption
pub mod model;
// 4. listen's threads
pub mod live;
// 5. where captions go
pub mod sink;
// 5b. the audio behind a caption, saved to disk
pub mod clips;

// Around the stages.
pub mod cli;
pub mod commands;
pub mod config;

// The facade: what a library user needs to caption a window or a file.
pub use commands::caption::caption_file;
pub use model::{Caption, Captioner, LoadOptions, Model, Timings, WindowCaptioner};
pub use sink::{CaptionEvent, Event, EventSink};
