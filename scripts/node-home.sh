# Sourced by the `--node-bin` wrappers (scripts/per-node-bin.sh, scripts/heaptrack-node.sh):
# node_home ARGS... prints the value of the last `--home` in a cairn-node command line
# (empty if none).
node_home() {
  local prev="" home="" a
  for a in "$@"; do
    [ "$prev" = "--home" ] && home="$a"
    prev="$a"
  done
  printf '%s\n' "$home"
}
