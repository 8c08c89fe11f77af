#!/usr/bin/env bash
# Regenerates samples/woman-speaks.wav: project-made female speech (espeak-ng, voice en+f3)
# over a little pink-noise room tone, 16 kHz mono 16-bit WAV. Needs: espeak-ng sox.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
text="Good morning. The kettle is on, and the post has just arrived. \
Could you please close the window before you leave the house?"
espeak-ng -v en+f3 -s 150 -p 55 -w "$tmp/voice.wav" "$text"
# Voice at 16 kHz mono with half a second of lead-in and tail.
sox -D "$tmp/voice.wav" -r 16000 -c 1 "$tmp/voice16.wav" pad 0.5 0.5 norm -3
len=$(soxi -D "$tmp/voice16.wav")
# Quiet pink noise for the same length (fixed seed: reproducible bytes).
sox -R -D -n -r 16000 -c 1 "$tmp/noise.wav" synth "$len" pinknoise vol 0.02
sox -R -D -m "$tmp/voice16.wav" "$tmp/noise.wav" -b 16 woman-speaks.wav norm -1
soxi woman-speaks.wav
