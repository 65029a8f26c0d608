#!/usr/bin/env bash
# Reproduces the LEADER paper's experiment on real MIMIC-IV (hosp module, v2.2 or later): the same pipeline
# as scripts/reproduce-mimic3.sh (read its header for the arguments and environment variables) with the
# MIMIC-IV settings of configs/reproduce-mimic4-*.toml: top-1001 procedures, 4000 teacher steps,
# student batch 16, alpha 0.8, beta 0.01.
#
# Usage: scripts/reproduce-mimic4.sh MIMIC_DIR AUX_DIR LLAMA OUT   (MIMIC_DIR: the folder holding hosp/)
set -euo pipefail
DATASET=mimic4 exec bash "$(dirname "${BASH_SOURCE[0]}")/reproduce-mimic3.sh" "$@"
