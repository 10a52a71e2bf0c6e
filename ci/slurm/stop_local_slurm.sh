#!/usr/bin/env bash
# Stop exactly the daemons that start_local_slurm.sh started with the same SLURM_CI_STATE (their pid files);
# nothing else. Packages, config and slurm state stay, so that the next start takes seconds.
# Adapted from the team's local-slurm scripts (shared/tools/local-slurm/).
#   SLURM_CI_CANCEL_JOBS=1  (default) when we started slurmctld, cancel its jobs first, so that no job
#                           processes outlive the cluster
set -uo pipefail
log() { printf '[stop_local_slurm %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[[ $(id -u) -eq 0 ]] || { log "must run as root"; exit 1; }
STATE=${SLURM_CI_STATE:-/var/lib/slurm-ci}

if [[ ${SLURM_CI_CANCEL_JOBS:-1} == 1 && -s $STATE/slurmctld.pid ]] && command -v squeue >/dev/null; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [[ -n ${jobs// /} ]]; then
    log "cancelling jobs: $jobs"; timeout 10 scancel $jobs 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [[ -z $(timeout 5 squeue -h -t R,CG -o %i 2>/dev/null) ]] && break; sleep 0.2
    done
  fi
fi

# running PID: alive and not a zombie (minimal init processes reap exited daemons slowly)
running() { [[ -r /proc/$1/stat ]] && [[ $(sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -d' ' -f1) != Z ]]; }
stop_one() { # stop_one NAME: the pid recorded for NAME, if it still runs NAME
  local name=$1 pf=$STATE/$1.pid pid
  [[ -s $pf ]] || return 0
  pid=$(tr -dc 0-9 < "$pf")
  if [[ -n $pid ]] && running "$pid" && [[ $(cat /proc/$pid/comm 2>/dev/null) == "$name"* ]]; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then log "$name ($pid) ignored SIGTERM -> SIGKILL"; kill -KILL "$pid" 2>/dev/null; sleep 0.2; fi
    log "stopped $name (pid $pid)"
  else
    log "$name (pid ${pid:-?}) not running (stale pid file)"
  fi
  rm -f "$pf"
}
# reverse start order
stop_one slurmd
stop_one slurmctld
stop_one munged
exit 0
