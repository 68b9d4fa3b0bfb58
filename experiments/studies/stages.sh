# The stages every study is made of (sourced by reproduce.sh, siblings.sh, headroom.sh, credit.sh):
# evaluate a setting, the SFT warm-up of one arch, GRPO for one arm, one arm trained + evaluated, and
# a blocks-only Bridge trained, stored in bf16 and evaluated.
#
# The sourcing script sets, before calling them:
#   RES        results directory (evaluate.py JSON files, walltime.jsonl)
#   STEPS      GRPO steps per arm
#   DTYPE, DEVICE
#   EVAL       array: the held-out protocol (evaluate.py flags)
#   TASK       array: task flags shared by the warm-up and GRPO (may be empty: the default task)
#   SFT_FLAGS  array: more train_sft.py flags (may be empty)
# and may define arm_eval_flags ARM (more evaluate.py flags for that arm; default none).
#
# Every stage skips what is already done, so a stopped sitting loses at most the command it was in:
# an arm whose results JSON exists is done; an arm with a checkpoint resumes its training
# (train_grpo.py --resume); a warm-up skips a finished checkpoint and reuses sampled data.
# Each trained arm is evaluated right after its training, so no large checkpoint has to outlive a
# sitting (CLEAN=1 deletes an arm's full-model checkpoint once its results are written).
# The wall time of every command is appended to $RES/walltime.jsonl with the machine it ran on.
#
# Where things go: a study trains in experiments/runs/<study>/seed{S}/{sft,grpo}_<arm>/ (scratch, never
# committed: the checkpoints), and keeps its results in $RES = experiments/results/<study>/: the evaluations
# <name>.json, beside each its arm's GRPO log <name>.log.jsonl (what the reports read), and each
# finished run's record (args.json, log.jsonl, stdout.txt, a warm-up's data.jsonl) copied to the
# same path under $RES (experiments/results/<study>/seed{S}/grpo_<arm>/). A warm-up in a fresh clone starts
# from its committed data.jsonl.

machine() { python -c "from bridgekit.result_files import machine; print(machine('$DEVICE'))"; }

timed() {  # $1 = stage name, then the command
  local stage=$1; shift
  local t0; t0=$(date +%s)
  "$@"
  local t1; t1=$(date +%s)
  printf '{"stage": "%s", "seconds": %d, "machine": "%s", "finished": "%s"}\n' \
    "$stage" $((t1 - t0)) "$(machine)" "$(date '+%Y-%m-%d %H:%M:%S')" >> "$RES/walltime.jsonl"
}

record() {  # $1 = a run directory experiments/runs/<study>/PATH: its small files copied to $RES/PATH
  local to=$RES/${1#experiments/runs/*/} f
  mkdir -p "$to"
  for f in args.json log.jsonl stdout.txt data.jsonl; do
    if [ -f "$1/$f" ]; then cp "$1/$f" "$to/$f"; fi
  done
}

logged() {  # $1 = run directory, then the command: its console is also appended to DIR/stdout.txt
  local out=$1; shift
  "$@" 2>&1 | tee -a "$out/stdout.txt"   # the caller's `set -o pipefail` keeps python's exit status
}

evaluate() {  # $1 = results name, then evaluate.py flags
  local name=$1; shift
  [ -f "$RES/$name.json" ] && { echo "== $RES/$name.json: done"; return; }
  # (--overwrite: a $name.json.tmp left by a stopped sitting is this stage's own, not a result)
  timed "eval/$name" python evaluate.py --fast "$@" "${EVAL[@]}" --out "$RES/$name.json.tmp" --overwrite
  mv "$RES/$name.json.tmp" "$RES/$name.json"
}

sft() {  # $1 = seed dir, $2 = seed, $3 = arch
  local out=$1/sft_$3
  [ -f "$out/checkpoint/state.pt" ] && { echo "== $out: warm-up done"; return; }
  mkdir -p "$out"
  # both warm-ups of a seed train on the same sampled answers (sampling is the slow part): the
  # Bridge warm-up's of this sitting, else those the study committed
  local src
  for src in "$1/sft_bridge/data.jsonl" "$RES/${1#experiments/runs/*/}/sft_bridge/data.jsonl"; do
    if [ ! -f "$out/data.jsonl" ] && [ -f "$src" ]; then cp "$src" "$out/data.jsonl"; fi
  done
  timed "${1#experiments/runs/}/sft_$3" logged "$out" python train_sft.py --fast --arch "$3" --out "$out" --seed "$2" \
    "${SFT_FLAGS[@]}" "${TASK[@]}" --dtype "$DTYPE" --device "$DEVICE" --show-every 10
  record "$out"
}

train_arm() {  # $1 = seed dir, $2 = seed, $3 = arm, then train_grpo.py flags; trains to STEPS steps
  local dir=$1 seed=$2 arm=$3; shift 3
  local out=$dir/grpo_$arm resume=() steps=0
  [ -f "$out/log.jsonl" ] && steps=$(wc -l < "$out/log.jsonl")
  if [ -f "$out/checkpoint/state.pt" ]; then
    [ "$steps" -ge "$STEPS" ] && { echo "== $out: trained ($steps steps)"; return; }
    resume=(--resume)
  fi
  mkdir -p "$out"
  timed "${dir#experiments/runs/}/grpo_$arm" logged "$out" python train_grpo.py --fast --out "$out" --steps "$STEPS" \
    "${resume[@]}" "$@" "${TASK[@]}" --seed "$seed" --dtype "$DTYPE" --device "$DEVICE" --show-every 10
  steps=$(wc -l < "$out/log.jsonl")
  [ "$steps" -eq "$STEPS" ] || { echo "$out: log has $steps steps, expected $STEPS" >&2; exit 1; }
  record "$out"
}

arm() {  # $1 = seed dir, $2 = seed, $3 = arm, $4 = results name, then train_grpo.py flags
  local dir=$1 seed=$2 arm=$3 name=$4; shift 4
  local out=$dir/grpo_$arm
  [ -f "$RES/$name.json" ] && { echo "== $RES/$name.json: done"; return; }
  train_arm "$dir" "$seed" "$arm" "$@"
  local flags=()  # --train all wrote a whole model (HF layout) beside the blocks; --train new only the blocks
  [ -f "$out/checkpoint/config.json" ] && flags+=(--model "$out/checkpoint")
  [ -f "$out/checkpoint/bridge.safetensors" ] && flags+=(--bridge "$out/checkpoint/bridge.safetensors")
  if declare -F arm_eval_flags > /dev/null; then
    local more; read -ra more <<< "$(arm_eval_flags "$arm")"
    flags+=("${more[@]}")
  fi
  evaluate "$name" "${flags[@]}"
  cp "$out/log.jsonl" "$RES/$name.log.jsonl"  # the train reward per step, committed with the results
  if [ "${CLEAN:-0}" = 1 ] && [ -f "$out/checkpoint/config.json" ]; then rm -rf "$out/checkpoint"; fi
}

three_arms() {  # $1 = seed dir, $2 = seed: warm-ups, then RLVR only, P-Match, Bridge (train + evaluate)
  local dir=$1 seed=$2
  sft "$dir" "$seed" bridge
  sft "$dir" "$seed" pmatch
  arm "$dir" "$seed" rlvr "seed${seed}_rlvr" --arch none --train all
  arm "$dir" "$seed" pmatch "seed${seed}_pmatch" --arch pmatch --train all \
    --init "$dir/sft_pmatch/checkpoint/bridge.safetensors"
  arm "$dir" "$seed" bridge "seed${seed}_bridge" --arch bridge --train all \
    --init "$dir/sft_bridge/checkpoint/bridge.safetensors"
}

blocks_only() {  # $1 = seed dir, $2 = results name, $3 = the Bridge file to write, then evaluate.py flags:
  # only the new blocks train (--train new, a file of a few MB), from seed 0's warm-up; they are
  # stored in bf16 as $3, and that file is what is evaluated
  local dir=$1 name=$2 file=$3; shift 3
  [ -f "$RES/$name.json" ] && { echo "== $RES/$name.json: done"; return; }
  sft "$dir" 0 bridge
  train_arm "$dir" 0 bridge_new --arch bridge --train new --init "$dir/sft_bridge/checkpoint/bridge.safetensors"
  mkdir -p "$(dirname "$file")"
  python -c "import sys; from bridgekit import checkpoint; checkpoint.convert_bridge(sys.argv[1], sys.argv[2], 'bf16')" \
    "$dir/grpo_bridge_new/checkpoint/bridge.safetensors" "$file"
  evaluate "$name" --bridge "$file" "$@"
  cp "$dir/grpo_bridge_new/log.jsonl" "$RES/$name.log.jsonl"
}
