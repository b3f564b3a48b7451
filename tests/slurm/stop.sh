#!/usr/bin/env bash
# Stops the processes tests/slurm/start.sh recorded (by PID, never by name), newest first,
# and removes its /etc/slurm links.
# Usage: tests/slurm/stop.sh [STATE_DIR]
set -uo pipefail

STATE=${1:-${BROWNFACE_SLURM_DIR:-/tmp/brownface-slurm}}
# The /etc/slurm links start.sh made go too: SLURM's clients (and the Snakemake plugin, which
# runs scontrol when it loads) otherwise wait ~10 s for a controller that is gone.
for conf in slurm.conf slurmdbd.conf gres.conf; do
    link=/etc/slurm/$conf
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$STATE/$conf" ]; then rm -f "$link"; fi
done
[ -f "$STATE/pids" ] || exit 0
tac "$STATE/pids" | while read -r name pid; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "slurm stop: $name ($pid) stopped" >&2
done
rm -f "$STATE/pids"
