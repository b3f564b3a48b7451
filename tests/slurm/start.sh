#!/usr/bin/env bash
# A single-node SLURM on localhost for the workflow's SLURM test: installs the Debian packages
# when missing (root), then starts munged, a private MariaDB, slurmdbd, slurmctld and slurmd by
# hand (no systemd), each under setsid in the foreground, with its PID recorded in $STATE/pids
# so stop.sh stops exactly these processes. Usage: tests/slurm/start.sh [STATE_DIR]
set -euo pipefail

STATE=${1:-${BROWNFACE_SLURM_DIR:-/tmp/brownface-slurm}}
DB_PORT=${BROWNFACE_SLURM_DB_PORT:-33069}
CLUSTER=brownface
NODE=$(hostname -s)
GPUS=2  # stand-in GPUs (see gres.conf below)
log() { echo "slurm start: $*" >&2; }
HERE=$(cd "$(dirname "$0")" && pwd)
die() {  # one line, then stop whatever this script started
    echo "slurm start: error: $*" >&2
    [ -f "$STATE/pids" ] && "$HERE/stop.sh" "$STATE" 2>/dev/null
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (packages, /etc/slurm, the munge user)"
for port in 6817 6818 6819 "$DB_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is in use (SLURM needs 6817-6819 and $DB_PORT for MariaDB)"
    fi
done

packages="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v mariadbd >/dev/null; then
    log "installing $packages"
    # Keep the packages' scripts from starting daemons; this script starts its own.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages \
        >"${TMPDIR:-/tmp}/brownface-slurm-apt.log" 2>&1 \
        || die "apt-get install failed (log: ${TMPDIR:-/tmp}/brownface-slurm-apt.log)"
    rm -f /usr/sbin/policy-rc.d
fi

rm -rf "$STATE"
mkdir -p "$STATE"/{state,spool,log,mysql}
: >"$STATE/pids"
start() {  # name, command...: start in the foreground under setsid, record the PID
    local name=$1
    shift
    setsid "$@" >"$STATE/log/$name.out" 2>&1 </dev/null &
    echo "$name $!" >>"$STATE/pids"
}
wait_port() {  # port, name
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "$2 did not open port $1 (log: $STATE/log/$2.out)"
}

# munge: the key, the socket directory, the daemon as the munge user.
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
start munged runuser -u munge -- /usr/sbin/munged --foreground
for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
[ -S /run/munge/munge.socket.2 ] || die "munged did not start (log: $STATE/log/munged.out)"

# MariaDB in a private datadir on a private port, for slurmdbd (so sacct works).
mariadb-install-db --datadir="$STATE/mysql" --user=root --auth-root-authentication-method=normal \
    >"$STATE/log/mariadb-install.out" 2>&1 || die "mariadb-install-db failed"
start mariadbd /usr/sbin/mariadbd --datadir="$STATE/mysql" --user=root --port="$DB_PORT" \
    --bind-address=127.0.0.1 --socket="$STATE/mysql.sock" --pid-file="$STATE/mariadb.pid" \
    --innodb-lock-wait-timeout=900
wait_port "$DB_PORT" mariadbd

mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cpus=$(nproc)
mkdir -p /etc/slurm
cat >"$STATE/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=600
DefMemPerCPU=1024
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
AccountingStoreFlags=job_comment
GresTypes=gpu
AccountingStorageTRES=gres/gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$STATE/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=root
StorageLoc=slurm_acct_db
CONF
chmod 600 "$STATE/slurmdbd.conf"
# Stand-in GPUs: slurmd counts a gpu GRES only by its device files, so two harmless character
# devices play them. Jobs asking for --gpus are scheduled and accounted as on a GPU node (and
# get CUDA_VISIBLE_DEVICES), and run on the CPU.
echo "NodeName=$NODE Name=gpu File=/dev/null,/dev/zero" >"$STATE/gres.conf"
# The daemons and the job steps read /etc/slurm (the jobstep plugin drops SLURM_CONF).
ln -sfn "$STATE/slurm.conf" /etc/slurm/slurm.conf
ln -sfn "$STATE/slurmdbd.conf" /etc/slurm/slurmdbd.conf
ln -sfn "$STATE/gres.conf" /etc/slurm/gres.conf

start slurmdbd /usr/sbin/slurmdbd -D
wait_port 6819 slurmdbd
sacctmgr -i add cluster "$CLUSTER" >"$STATE/log/sacctmgr.out" 2>&1 || true
start slurmctld /usr/sbin/slurmctld -D -i
wait_port 6817 slurmctld
start slurmd /usr/sbin/slurmd -D -N "$NODE"
for _ in $(seq 100); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && { log "up: node $NODE idle, state in $STATE"; exit 0; }
    sleep 0.1
done
die "the node did not become idle (logs: $STATE/log/)"
