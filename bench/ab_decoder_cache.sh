#!/bin/bash
# A/B of the key/value-cached decoder: the same earshot binary and bundle, EARSHOT_DECODER_CACHE
# off then on, two interleaved rounds (docs/performance.md, speed work item 7).
#   bench/ab_decoder_cache.sh BUNDLE... (bundles with a decoder_cached section)
#   EARSHOT=target/release/earshot N=6 bench/ab_decoder_cache.sh /tmp/effb2-cached
set -euo pipefail
B=${EARSHOT:-target/release/earshot}
for m in "$@"; do
  for round in 1 2; do
    for cache in off on; do
      EARSHOT_DECODER_CACHE=$cache "$B" bench --model "$m" --windows "${N:-6}" --warmup 2 --json |
        python3 -c "
import json, sys
r = json.load(sys.stdin); s = r['stages_ms']
print('$m round $round cache=$cache: load %.0f ms, decoder %.1f ms (%d steps, %.2f ms/step), '
      'encoder %.1f ms, total %.1f ms, RTF %.4f, peak RSS %.1f MiB' % (
      r['load_ms'], s['decoder']['median'], s['decoder_steps']['median'], r['decoder_ms_per_step'],
      s['encoder']['median'], s['total']['median'], r['real_time_factor'], r['peak_rss_mb']))"
    done
  done
done
