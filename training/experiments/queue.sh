# The resumable training queue of the E2 script (sourced, not run). The caller sets
#   DATA, RUNS, WARMUP, BUDGET (array of flags), ROWS (array of <labels>:<method>[:<variant>]) and
#   VARIANTS (associative array: variant -> extra flags), then calls run_queue; with RESULTS set, each
#   finished row's config.json, metrics.jsonl and final.json are kept under $RESULTS/<row> (committed).
# A finished row (final.pt) is skipped, an interrupted one resumes from last.pt. The two-network rows
# of one label set share their CE warm-up: `ce2` keeps its checkpoint at the end of the warm-up and the
# other two-network rows start from it (--warm-start), which gives the same weights as a run from
# scratch (training/tests/test_train.py) for WARMUP fewer epochs each.
run_queue() {
  local row noise method variant dir warm
  local -a args extra
  for row in "${ROWS[@]}"; do
    IFS=: read -r noise method variant <<< "$row"
    dir="$RUNS/$noise-$method${variant:+-$variant}"
    if [[ -f $dir/final.pt ]]; then
      echo "done: $dir"
      if [[ -n ${RESULTS:-} && ! -f $RESULTS/${dir##*/}/final.json ]]; then training/.venv/bin/asm-fer keep "$dir" --into "$RESULTS/${dir##*/}"; fi
      continue
    fi
    args=(--data "$DATA" --noise "$noise" --method "$method" "${BUDGET[@]}" --run-dir "$dir")
    extra=()
    if [[ -n $variant ]]; then read -r -a extra <<< "${VARIANTS[$variant]}"; fi
    warm=$RUNS/$noise-ce2/epoch-$(printf %02d "$WARMUP").pt
    if [[ $method == ce2 ]]; then
      args+=(--keep-epochs "$WARMUP")
    elif [[ -f $dir/last.pt ]]; then
      # an interrupted row resumes as it began, forked or not
      warm=$(training/.venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("warm_start", ""))' "$dir/config.json")
      args+=(${warm:+--warm-start "$warm"})
    elif [[ $method != ce && -f $warm ]]; then
      args+=(--warm-start "$warm")
    fi
    echo "=== $(date -u +%FT%TZ) $dir"
    training/.venv/bin/asm-fer train "${args[@]}" "${extra[@]}"
    # what the tables are built from, into the tracked results folder (RESULTS unset: not kept)
    if [[ -n ${RESULTS:-} ]]; then training/.venv/bin/asm-fer keep "$dir" --into "$RESULTS/${dir##*/}"; fi
  done
  echo "=== $(date -u +%FT%TZ) queue finished"
}
