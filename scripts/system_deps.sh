#!/usr/bin/env bash
# Install the Debian packages the test suite uses, when missing and when we are root:
#   slurmctld slurmd slurm-client munge   a real local Slurm cluster for tests/slurm (about 10 s with
#                                          a warm apt cache). Tests that need a package that could
#                                          not be installed are skipped with the reason.
#   chromium                              headless rendering check of the run report (tests/report)
set -u
need=()
PATH=$PATH:/usr/sbin:/sbin
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "system_deps: not root: cannot install ${need[*]}" >&2; exit 1; fi
if ! command -v apt-get >/dev/null 2>&1; then echo "system_deps: no apt-get: install ${need[*]} yourself" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
echo "system_deps: installing ${need[*]}"
apt-get update -qq >/dev/null || { echo "system_deps: apt-get update failed" >&2; exit 1; }
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || { echo "system_deps: apt-get install ${need[*]} failed" >&2; exit 1; }
