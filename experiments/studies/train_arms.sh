#!/usr/bin/env bash
# The real run of the training issue: the SFT warm-up, then GRPO at width 4 for the three arms of the
# paper's comparison (RLVR only, P-Match, Bridge), one seed, on the default model.
#
#   bash experiments/studies/train_arms.sh                 # CPU, fp32; resumes whatever is already done
#   STEPS=200 CHUNK=20 bash experiments/studies/train_arms.sh
#
# Every stage is resumable: the SFT runs skip what their checkpoint holds, and the GRPO arms advance
# round-robin CHUNK steps at a time (train_grpo.py --resume), so the three curves always cover the
# same steps and a stopped session loses at most one chunk of one arm. It trains in experiments/runs/repro/seed0
# (scratch); its run's record, which reproduce.sh continued, is committed in experiments/results/repro/seed0.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-200}     # GRPO steps per arm
CHUNK=${CHUNK:-10}      # GRPO steps per arm before moving to the next arm
DTYPE=${DTYPE:-fp32}  # bf16 autocast was slower for training on this CPU (docs/speed.md, "Training's forward and backward": experiments/bench/bench_logprobs.py)
SEED=${SEED:-0}
OUT=${OUT:-runs/repro/seed$SEED}
COMMON=(--seed "$SEED" --dtype "$DTYPE" --show-every 10)

sft() {  # $1 = arch
  local out=$OUT/sft_$1
  if [ -f "$out/checkpoint/state.pt" ]; then
    echo "== $out: warm-up done"; return
  fi
  mkdir -p "$out"
  # both warm-ups train on the same sampled answers (the base model's; sampling is the slow part),
  # the committed ones in a fresh clone
  local src
  for src in "$OUT/sft_bridge/data.jsonl" "experiments/results/repro/seed$SEED/sft_bridge/data.jsonl"; do
    if [ ! -f "$out/data.jsonl" ] && [ -f "$src" ]; then cp "$src" "$out/data.jsonl"; fi
  done
  python train_sft.py --fast --arch "$1" --out "$out" "${COMMON[@]}" 2>&1 | tee -a "$out/stdout.txt"
}

grpo_chunk() {  # $1 = arm name, $2 = target step count, then extra flags
  local arm=$1 target=$2; shift 2
  local out=$OUT/grpo_$arm done=0
  if [ -f "$out/log.jsonl" ]; then done=$(wc -l < "$out/log.jsonl"); fi
  if [ -f "$out/checkpoint/state.pt" ]; then
    [ "$done" -ge "$target" ] && return
    python train_grpo.py --fast --out "$out" --steps "$target" --resume "$@" "${COMMON[@]}" 2>&1 | tee -a "$out/stdout.txt"
  else
    mkdir -p "$out"
    python train_grpo.py --fast --out "$out" --steps "$target" "$@" "${COMMON[@]}" 2>&1 | tee -a "$out/stdout.txt"
  fi
}

sft bridge
sft pmatch
for ((target = CHUNK; target <= STEPS; target += CHUNK)); do
  grpo_chunk rlvr "$target" --arch none --train all
  grpo_chunk pmatch "$target" --arch pmatch --train all --init "$OUT/sft_pmatch/checkpoint/bridge.safetensors"
  grpo_chunk bridge "$target" --arch bridge --train all --init "$OUT/sft_bridge/checkpoint/bridge.safetensors"
done
python tools/reward_curves.py "$OUT/grpo_rlvr" "$OUT/grpo_pmatch" "$OUT/grpo_bridge" --out "$OUT/reward.png" --overwrite \
  --labels "RLVR only" "P-Match" "Bridge"
