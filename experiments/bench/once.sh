# Sourced by experiments/bench/speed.sh and experiments/bench/speed_machine.sh: a stage that skips what is already done,
# and the first steps both take.
# once FILE COMMAND...: run COMMAND with its stdout going to FILE, written whole (through FILE.tmp)
# or not at all; skipped when FILE already holds something, so a stopped run resumes where it was.
# FILE says what is done: a COMMAND's own --out JSON beside it is rewritten (the callers pass
# --overwrite, which the tools need to replace an existing results file).
once() {
  local file=$1; shift
  [ -s "$file" ] && { echo "== $file: done"; return; }
  "$@" > "$file.tmp"
  mv "$file.tmp" "$file"
}

# same_machine DIR: DIR's machine.txt names the machine its files were measured on. Written on the
# first run; a later run on another machine stops here rather than mix two machines' numbers.
same_machine() {
  local here
  here=$(python -c "from bridgekit.result_files import machine; print(machine('cpu'))")
  if [ -s "$1/machine.txt" ] && [ "$(cat "$1/machine.txt")" != "$here" ]; then
    echo "error: $1 holds measurements of $(cat "$1/machine.txt"), and this is $here: measure it into" \
         "a folder of its own (bash experiments/bench/speed_machine.sh experiments/results/speed/machines/NAME)" >&2
    exit 2
  fi
  echo "$here" > "$1/machine.txt"
}

# measure_into DIR: DIR made, the hub offline (the default model is cached), DIR's machine checked.
measure_into() {
  mkdir -p "$1"
  export HF_HUB_OFFLINE=1
  same_machine "$1"
}

# profile_steps DIR: one decode step at width 16 (fp32), by kind of op: packed weights (fast.packed_linears),
# then F.linear.
profile_steps() {
  once "$1/profile_w16.md" python experiments/bench/profile_step.py --width 16 --out "$1/profile_w16.json" --overwrite
  once "$1/profile_w16_plain.md" python experiments/bench/profile_step.py --width 16 --plain --out "$1/profile_w16_plain.json" --overwrite
}
