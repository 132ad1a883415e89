#!/bin/bash
# A single-node Slurm on localhost for the integration test
# (sweep/slurm_integration_test.go), or by hand:
#
#   slurm-local.sh start WORKDIR CTLD_PORT SLURMD_PORT   (as root)
#   export SLURM_CONF=WORKDIR/slurm.conf; sbatch ...
#   slurm-local.sh stop WORKDIR
#
# start writes WORKDIR/slurm.conf (its own ports, munge socket, state and
# logs, so a system Slurm or munge is left alone), starts munged (-F, as
# user munge), slurmctld and slurmd (-D) in the background, writes
# their PIDs to WORKDIR/pids (one "name pid" per line) and waits until the
# node is idle. stop kills those PIDs. Needs Debian's slurmctld, slurmd,
# slurm-client and munge, and root (slurmd starts jobs as their users;
# munged runs as user munge, slurmctld drops to user slurm).
set -euo pipefail

die() { echo "slurm-local.sh: $*" >&2; exit 1; }

stop() {
	local work=$1 name pid
	[[ -f $work/pids ]] || return 0
	# All at once (one at a time takes twice as long), then wait.
	while read -r name pid; do kill "$pid" 2>/dev/null || true; done <"$work/pids"
	while read -r name pid; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done <"$work/pids"
	rm -f "$work/pids"
}

start() {
	local work=$1 ctld_port=$2 slurmd_port=$3
	[[ $(id -u) == 0 ]] || die "must run as root (slurmd launches jobs as their users)"
	for c in munged slurmctld slurmd sbatch squeue scontrol sinfo setpriv; do
		command -v "$c" >/dev/null || die "$c not found (apt-get install slurmctld slurmd slurm-client munge)"
	done
	[[ $work == /* && $work != *[[:space:]]* ]] || die "WORKDIR must be an absolute path without spaces (slurm.conf holds it)"
	mkdir -p "$work/state" "$work/spool" "$work/log"
	chmod 755 "$work"
	chown slurm:slurm "$work/state" "$work/log"
	: > "$work/pids"

	# munge: a munged of our own on a socket of our own (AuthInfo below),
	# with the system's key, so a system munged is neither needed nor
	# disturbed and two test runs do not share one.
	if [[ ! -s /etc/munge/munge.key ]]; then
		mkdir -p /etc/munge
		dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
		chown munge:munge /etc/munge/munge.key
		chmod 400 /etc/munge/munge.key
	fi
	# munged's default folders, which it checks even when not using them.
	mkdir -p /run/munge
	chown munge:munge /run/munge
	chmod 755 /run/munge
	local sock=$work/munge/munge.socket
	mkdir -p "$work/munge"
	chown munge:munge "$work/munge"
	chmod 755 "$work/munge"
	setpriv --reuid=munge --regid=munge --init-groups munged -F --socket="$sock" \
		--pid-file="$work/munge/munged.pid" --seed-file="$work/munge/munged.seed" \
		--log-file="$work/munge/munged.log" >"$work/log/munged.out" 2>&1 &
	echo "munged $!" >>"$work/pids"
	for _ in $(seq 100); do
		munge --socket="$sock" -n </dev/null 2>/dev/null | unmunge --socket="$sock" >/dev/null 2>&1 && break
		sleep 0.1
	done
	munge --socket="$sock" -n </dev/null | unmunge --socket="$sock" >/dev/null ||
		die "munged did not start: $(cat "$work/log/munged.out" "$work/munge/munged.log" 2>/dev/null)"

	# The node's CPU line as slurmd sees it (CPUs=, Boards=, Sockets..., RealMemory=).
	local cpus
	cpus=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* *//')
	cat >"$work/slurm.conf" <<CONF
ClusterName=seqbenchtest
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=socket=$sock
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 $cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
	export SLURM_CONF=$work/slurm.conf
	slurmctld -D -f "$SLURM_CONF" >"$work/log/slurmctld.out" 2>&1 &
	echo "slurmctld $!" >>"$work/pids"
	slurmd -D -f "$SLURM_CONF" >"$work/log/slurmd.out" 2>&1 &
	echo "slurmd $!" >>"$work/pids"

	local state=""
	for _ in $(seq 300); do
		state=$(sinfo --noheader --nodes=localhost --format=%t 2>/dev/null || true)
		[[ $state == idle ]] && return 0
		sleep 0.1
	done
	echo "--- slurmctld.log" >&2; tail -n 20 "$work/log/slurmctld.log" >&2 || true
	echo "--- slurmd.log" >&2; tail -n 20 "$work/log/slurmd.log" >&2 || true
	stop "$work"
	die "the node did not become idle in 30 s (sinfo says '${state}')"
}

case "${1:-}" in
start) [[ $# == 4 ]] || die "usage: $0 start WORKDIR CTLD_PORT SLURMD_PORT"; start "$2" "$3" "$4" ;;
stop) [[ $# == 2 ]] || die "usage: $0 stop WORKDIR"; stop "$2" ;;
*) die "usage: $0 start WORKDIR CTLD_PORT SLURMD_PORT | stop WORKDIR" ;;
esac
