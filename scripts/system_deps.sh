#!/usr/bin/env bash
# Install the Debian packages the test suite uses, when missing and when we are root.
set -u
need=()
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld slurmd slurm-client munge)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "not root: cannot install ${need[*]}"; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
